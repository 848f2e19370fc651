"""CapacityTracker: atomic reserve, idempotent release, and free == total - sum(active) always."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.errors import AgoraError
from agora.models.capability import Capability, GiB, fits
from agora.resources.capacity import CapacityTracker, Reservation

TOTAL = Capability(
    cpu_millis=4000,
    memory_bytes=8 * GiB,
    disk_bytes=20 * GiB,
    gpu_count=2,
    gpu_model="T4",
    gpu_vram_bytes=16 * GiB,
    arch="x86_64",
    executors=frozenset({"wasm", "process"}),
)
QUANTITIES = ("cpu_millis", "memory_bytes", "disk_bytes", "gpu_count")


def test_reserve_and_release() -> None:
    t = CapacityTracker(TOTAL)
    need = Capability(cpu_millis=1500, memory_bytes=3 * GiB, gpu_count=1, executors=frozenset({"wasm"}))
    res = t.reserve("a1", need)
    assert res == Reservation("a1", need)
    assert (t.free.cpu_millis, t.free.memory_bytes, t.free.gpu_count) == (2500, 5 * GiB, 1)
    assert t.free.executors == TOTAL.executors and t.free.gpu_model == "T4"
    assert dict(t.allocations) == {"a1": res}
    assert t.release("a1") == res
    assert t.free == TOTAL
    assert t.release("a1") is None  # idempotent
    assert t.free == TOTAL
    assert t.release("never-reserved") is None


def test_insufficient_capacity_lists_reasons_and_changes_nothing() -> None:
    t = CapacityTracker(TOTAL)
    t.reserve("a1", Capability(cpu_millis=3000, memory_bytes=GiB))
    before = (t.free, dict(t.allocations))
    with pytest.raises(AgoraError) as e:
        t.reserve("a2", Capability(cpu_millis=2000, memory_bytes=8 * GiB, executors=frozenset({"docker"})))
    assert e.value.code == "insufficient_capacity"
    assert e.value.retryable
    assert [r["text"] for r in e.value.details["reasons"]] == [
        "insufficient_cpu: need 2 cores, free 1 core",
        "insufficient_memory: need 8 GiB, free 7 GiB",
        "executor_unavailable: docker",
    ]
    assert (t.free, dict(t.allocations)) == before
    assert not t.check(Capability(cpu_millis=2000)).ok
    assert t.check(Capability(cpu_millis=1000)).ok


def test_double_reserve_of_one_alloc_is_refused_and_not_counted_twice() -> None:
    t = CapacityTracker(TOTAL)
    t.reserve("a1", Capability(cpu_millis=1000))
    with pytest.raises(AgoraError) as e:
        t.reserve("a1", Capability(cpu_millis=1000))
    assert e.value.code == "already_exists"
    assert t.free.cpu_millis == 3000
    assert len(t.allocations) == 1


def test_bad_arguments() -> None:
    with pytest.raises(AgoraError) as e:
        CapacityTracker("8 cores")  # type: ignore[arg-type]
    assert e.value.code == "invalid_argument"
    t = CapacityTracker(TOTAL)
    for alloc_id, need in (("", Capability()), (7, Capability()), ("a", {"cpu_millis": 1})):
        with pytest.raises(AgoraError) as e:
            t.reserve(alloc_id, need)  # type: ignore[arg-type]
        assert e.value.code == "invalid_argument"
    assert t.free == TOTAL and not t.allocations


def test_allocations_view_is_read_only() -> None:
    t = CapacityTracker(TOTAL)
    t.reserve("a1", Capability(cpu_millis=1))
    with pytest.raises(TypeError):
        t.allocations["a2"] = Reservation("a2", Capability())  # type: ignore[index]


needs = st.builds(
    Capability,
    cpu_millis=st.integers(0, 3000),
    memory_bytes=st.integers(0, 6 * GiB),
    disk_bytes=st.integers(0, 12 * GiB),
    gpu_count=st.integers(0, 2),
    executors=st.sets(st.sampled_from(["wasm", "process", "docker"]), max_size=2).map(frozenset),
)
ops = st.lists(
    st.tuples(st.sampled_from(["reserve", "release"]), st.integers(0, 7), needs),
    max_size=60,
)


@settings(max_examples=200)
@given(ops)
def test_free_is_always_total_minus_active(sequence: list[tuple[str, int, Capability]]) -> None:
    t = CapacityTracker(TOTAL)
    model: dict[str, Capability] = {}
    for op, n, need in sequence:
        alloc_id = f"a{n}"
        if op == "reserve":
            free_before = t.free
            try:
                t.reserve(alloc_id, need)
            except AgoraError as e:
                assert e.code in ("already_exists", "insufficient_capacity")
                assert (e.code == "already_exists") == (alloc_id in model)
                assert e.code == "already_exists" or not fits(need, free_before).ok
                assert t.free == free_before
            else:
                assert alloc_id not in model and fits(need, free_before).ok
                model[alloc_id] = need
        else:
            released = t.release(alloc_id)
            assert (released is not None) == (alloc_id in model)
            model.pop(alloc_id, None)
        for q in QUANTITIES:
            used = sum(getattr(c, q) for c in model.values())
            assert getattr(t.free, q) == getattr(TOTAL, q) - used
            assert getattr(t.free, q) >= 0
        assert set(t.allocations) == set(model)
    for alloc_id in list(model):
        t.release(alloc_id)
    assert t.free == TOTAL


def test_listeners_hear_every_change_of_free_capacity_and_nothing_else() -> None:
    t = CapacityTracker(TOTAL)
    heard: list[int] = []
    remove = t.on_change(lambda: heard.append(t.free.cpu_millis))

    def broken() -> None:
        raise RuntimeError("a listener's bug")

    t.on_change(broken)
    t.reserve("a1", Capability(cpu_millis=1000))
    with pytest.raises(AgoraError):
        t.reserve("a2", Capability(cpu_millis=10_000))  # refused: nothing changed, nobody is told
    t.release("a1")
    t.release("a1")  # released already: no change
    assert heard == [3000, 4000]
    remove()
    remove()
    t.reserve("a3", Capability(cpu_millis=1))
    assert heard == [3000, 4000] and t.free.cpu_millis == 3999
