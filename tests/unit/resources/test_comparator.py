"""Ranking: fitting machines by weighted soft preferences with the breakdown, rejections with reasons."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agora.errors import AgoraError
from agora.models.capability import Capability, GiB, PriceSchedule
from agora.resources.comparator import Weights, rank, reason_counts

NEED = Capability(cpu_millis=1000, memory_bytes=2 * GiB, executors=frozenset({"wasm"}))


def box(**kw: object) -> Capability:
    base: dict[str, object] = {"cpu_millis": 4000, "memory_bytes": 8 * GiB, "executors": frozenset({"wasm"})}
    base.update(kw)
    return Capability(**base)  # type: ignore[arg-type]


def test_fitting_first_best_score_first() -> None:
    machines = {
        "small": box(memory_bytes=GiB, price=1, benchmark_score=9000),
        "slow-cheap": box(benchmark_score=1000, price=10, trust=0.9, latency_ms=10),
        "fast-dear": box(benchmark_score=2000, price=12, trust=0.9, latency_ms=10),
    }
    ranked = rank(NEED, machines, Weights(quality=1, cost=1, trust=0, latency=0))
    assert [r.machine_id for r in ranked] == ["fast-dear", "slow-cheap", "small"]
    assert ranked[0].score == pytest.approx((1 + 10 / 12) / 2)
    assert ranked[1].score == pytest.approx((0.5 + 1) / 2)
    assert not ranked[2].ok and ranked[2].score == 0.0 and ranked[2].breakdown == {}


def test_breakdown_is_kept_and_tie_breaks_on_cost() -> None:
    machines = {
        "fast-dear": box(benchmark_score=2000, price=20),
        "slow-cheap": box(benchmark_score=1000, price=10),
    }
    ranked = rank(NEED, machines, Weights(quality=1, cost=1, trust=0, latency=0))
    assert [r.machine_id for r in ranked] == ["slow-cheap", "fast-dear"]
    assert [r.position for r in ranked] == [1, 2]
    first = ranked[0]
    assert first.cost == 10 * 3600
    assert first.breakdown["quality"].value == 1000
    assert first.breakdown["quality"].score == 0.5
    assert first.breakdown["cost"].score == 1.0
    assert first.breakdown["trust"].weight == 0.0
    assert first.score == pytest.approx(0.75)
    assert ranked[1].breakdown["cost"].score == 0.5
    assert first.to_dict()["breakdown"]["cost"] == {"value": 36000, "score": 1.0, "weight": 1.0, "weighted": 1.0}


def test_weights_change_the_order() -> None:
    machines = {"trusted": box(trust=1.0, latency_ms=100), "near": box(trust=0.2, latency_ms=1)}
    by_trust = rank(NEED, machines, Weights(quality=0, cost=0, trust=1, latency=0))
    by_latency = rank(NEED, machines, Weights(quality=0, cost=0, trust=0, latency=1))
    assert [r.machine_id for r in by_trust] == ["trusted", "near"]
    assert [r.machine_id for r in by_latency] == ["near", "trusted"]
    assert by_latency[0].breakdown["latency"].score == 1.0
    assert by_latency[1].breakdown["latency"].score == pytest.approx(2 / 101)


def test_non_fitting_machines_are_listed_with_reasons_and_counted() -> None:
    machines = [
        ("ok", box()),
        ("no-wasm", box(executors=frozenset({"docker"}))),
        ("tiny", box(cpu_millis=500, memory_bytes=GiB, executors=frozenset())),
    ]
    ranked = rank(NEED, machines)
    assert [(r.machine_id, r.ok, r.position) for r in ranked] == [
        ("ok", True, 1),
        ("no-wasm", False, None),
        ("tiny", False, None),
    ]
    assert [x.text for x in ranked[2].reasons] == [
        "insufficient_cpu: need 1 core, free 0.5 cores",
        "insufficient_memory: need 2 GiB, free 1 GiB",
        "executor_unavailable: wasm",
    ]
    assert reason_counts(ranked) == {"executor_unavailable": 2, "insufficient_cpu": 1, "insufficient_memory": 1}


def test_schedules_and_unpriced_machines_compare_on_cost_for_the_need() -> None:
    need = Capability(cpu_millis=1000, gpu_count=1)
    machines = {
        "gpu-sched": box(gpu_count=1, price=PriceSchedule(cpu_second=1, gpu_second=9)),
        "gpu-flat": box(gpu_count=1, price=5),
        "free": box(gpu_count=1),
    }
    ranked = rank(need, machines, Weights(quality=0, cost=1, trust=0, latency=0), cost_seconds=1)
    assert [(r.machine_id, r.cost) for r in ranked] == [("free", 0), ("gpu-flat", 5), ("gpu-sched", 10)]
    assert [r.breakdown["cost"].score for r in ranked] == [1.0, 0.0, 0.0]


def test_all_zero_weights_rank_by_cost_then_id() -> None:
    ranked = rank(NEED, {"b": box(price=2), "a": box(price=2), "c": box(price=1)}, Weights(0, 0, 0, 0))
    assert [r.machine_id for r in ranked] == ["c", "a", "b"]
    assert {r.score for r in ranked} == {0.0}


def test_bad_input_is_rejected() -> None:
    with pytest.raises(AgoraError) as e:
        rank(NEED, [("a", box()), ("a", box())])
    assert e.value.code == "invalid_argument"
    with pytest.raises(AgoraError):
        rank(NEED, [("a", "not a capability")])  # type: ignore[list-item]
    with pytest.raises(AgoraError):
        Weights(quality=-1)
    with pytest.raises(AgoraError):
        Weights(cost=float("inf"))


machine = st.builds(
    box,
    memory_bytes=st.integers(0, 4).map(lambda g: g * GiB),
    benchmark_score=st.none() | st.floats(0, 5000),
    price=st.none() | st.integers(0, 50),
    trust=st.none() | st.floats(0, 1),
    latency_ms=st.none() | st.floats(0, 500),
)


@given(st.dictionaries(st.text("abcdef", min_size=1, max_size=4), machine, max_size=8), st.randoms())
def test_rank_does_not_depend_on_input_order(machines: dict[str, Capability], rnd: object) -> None:
    pairs = list(machines.items())
    shuffled = pairs[:]
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    a, b = rank(NEED, pairs), rank(NEED, shuffled)
    assert [r.machine_id for r in a] == [r.machine_id for r in b]
    assert all(0.0 <= r.score <= 1.0 for r in a)
    fitting = [r for r in a if r.ok]
    assert [r.position for r in fitting] == list(range(1, len(fitting) + 1))
    assert all(r.reasons for r in a[len(fitting) :])
    # scores closer than 1e-12 count as equal (float noise) and fall to the tie-breaks: cost, then id
    keys = [(-round(r.score, 12), r.cost, r.machine_id) for r in fitting]
    assert keys == sorted(keys)
