from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace
from typing import Any

import pytest

from agora.errors import AgoraError
from agora.sim import World, parse, simulate
from agora.sim.report import dumps
from agora.sim.world import Replica
from tests.unit.sim.conftest import tiny


def _values(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v["value"] for k, v in doc["metrics"].items()}


def test_a_small_world_runs_with_churn_and_loses_no_job(tiny_doc: dict[str, Any]) -> None:
    m = _values(simulate(parse(tiny_doc)))
    assert m["jobs_submitted"] > 100 and m["jobs_completed"] > 0
    assert m["jobs_lost"] == 0
    assert m["ledger_sum_max_abs"] == 0
    assert m["churn"].get("crash", 0) > 0 and m["replacements"] > 0
    assert m["invariant_checks"] > m["jobs_submitted"]
    assert m["jobs_submitted"] == m["jobs_completed"] + m["jobs_expired"] + m["jobs_rejected"] + m["jobs_in_flight"]


def test_the_same_seed_gives_the_same_report_byte_for_byte(tiny_doc: dict[str, Any]) -> None:
    a = dumps(simulate(parse(tiny_doc)))
    assert a == dumps(simulate(parse(tiny_doc)))
    assert a != dumps(simulate(parse({**tiny_doc, "seed": 8})))


def test_pay_after_pays_by_transfer_and_records_unpaid_work() -> None:
    before = _values(simulate(parse(tiny(payment={"mode": "pay_before"}))))
    after = _values(simulate(parse(tiny(payment={"mode": "pay_after", "requester_default": 0.5}))))
    assert before["escrow_held_max"] > 0 and before["unpaid_work_total"] == 0
    assert after["escrow_held_max"] == 0 and after["refunds_total"] == 0
    assert after["unpaid_work_total"] > 0


def test_redundancy_catches_dishonest_providers_and_trust_falls() -> None:
    doc = tiny(jobs={"redundancy": 2, "deadline": "2h"})
    doc["providers"] = {**doc["providers"], "dishonest": 0.3}
    m = _values(simulate(parse(doc)))
    assert m["wrong_results_caught"] > 0 and m["wrong_results_accepted"] == 0
    assert m["trust_end"]["dishonest"] < m["trust_end"]["honest"]


def test_short_random_scenarios_break_no_invariant() -> None:
    rng = random.Random(20261203)
    for i in range(6):
        doc = {
            "name": f"fuzz-{i}",
            "seed": rng.randrange(10**6),
            "duration": f"{rng.randint(1, 3)}h",
            "sample_every": "15m",
            "payment": {"mode": rng.choice(["pay_before", "pay_after"]), "requester_default": rng.random() / 4},
            "providers": {
                "count": rng.randint(3, 30),
                "cores": {"choice": [1, 2, 4, 8]},
                "price": {"uniform": [0, 10]},
                "reliability": {"uniform": [0.6, 1.0]},
                "dishonest": rng.random() / 2,
            },
            "requesters": {
                "count": rng.randint(1, 6),
                "funds": rng.choice([10**5, 10**7, 10**10]),
                "arrivals": {
                    "process": rng.choice(["poisson", "diurnal", "burst"]),
                    "rate_per_hour": 150,
                    "every": "30m",
                    "size": 40,
                    "amplitude": 0.5,
                },
            },
            "jobs": {
                "cores": {"choice": [1, 2, 4, 8]},
                "redundancy": {"choice": [1, 2, 3]},
                "deadline": "40m",
                "max_price": {"uniform": [100, 50000]},
                "strategy": rng.choice(["balanced", "cheapest", "fastest", "binpack", "spread"]),
            },
            "churn": {
                k: rng.uniform(0, 8)
                for k in ("join_per_hour", "leave_per_hour", "crash_per_hour", "partition_per_hour")
            },
            "matching": {"k": rng.randint(1, 4), "sample": rng.choice([0, 3, 16]), "retry_every": 120},
        }
        m = _values(simulate(parse(doc)))  # a violation raises sim_invariant_violated
        assert m["jobs_lost"] == 0, doc
        assert m["ledger_sum_max_abs"] == 0, doc


def test_a_double_booking_fails_the_run_with_its_event_trail(
    tiny_doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    original = World._end_replica

    def leaky(self: World, rep: Replica, state: str) -> Any:  # forgets to give the capacity back
        p = self.providers[rep.provider]
        release = p.book.release
        p.book.release = lambda award_id: None  # type: ignore[method-assign]
        try:
            return original(self, rep, state)
        finally:
            p.book.release = release  # type: ignore[method-assign]

    monkeypatch.setattr(World, "_end_replica", leaky)
    with pytest.raises(AgoraError) as err:
        simulate(parse(tiny_doc))
    assert err.value.code == "sim_invariant_violated"
    assert err.value.details["invariant"] == "capacity"
    trail = err.value.details["trail"]
    assert trail and any(("finish" in t or "fail" in t or "crash" in t or "partition" in t) for t in trail[-1:])


def test_an_escrow_released_twice_or_an_unbalanced_entry_is_a_violation(tiny_doc: dict[str, Any]) -> None:
    w = World(parse(tiny_doc))
    w.inv.released("c.j1.0.1")
    with pytest.raises(AgoraError) as err:
        w.inv.released("c.j1.0.1")
    assert err.value.details["invariant"] == "escrow_once"
    bad = SimpleNamespace(seq=9, kind="transfer", postings=[SimpleNamespace(amount=5), SimpleNamespace(amount=-4)])
    with pytest.raises(AgoraError) as err:
        w.inv.entry_appended(bad)  # type: ignore[arg-type]
    assert err.value.details["invariant"] == "ledger_sum"


def test_an_overloaded_market_expires_jobs_at_their_deadline() -> None:
    doc = tiny(
        providers={"count": 3, "cores": 2},
        requesters={"count": 2, "arrivals": {"process": "burst", "rate_per_hour": 0, "every": "50m", "size": 300}},
        jobs={"cores": 2, "deadline": "10m", "duration": 1800},
        churn={},
        matching={"retry_batch": 2},  # the FIFO retry reaches only the head of the queue
    )
    w = World(parse(doc))
    asyncio.run(w.run())
    m = w.metrics
    assert m.expired > 0 and m.rejections["no_candidates"] > 0
    late = [k for k in w.pending if w.clock.now() - w.jobs[k[0]].deadline > doc_retry_s(w)]
    assert late == []  # nothing waits in the queue long past its deadline


def doc_retry_s(w: World) -> float:
    return w.sc.matching.retry_every_s


def _burst_then_quiet() -> dict[str, Any]:
    """One provider with one core; 20 one-core jobs arrive at 1 h with a 10 min deadline; the only samples are
    at 0 and at 1 h 30 (the end): the queue is empty at both, though 19 replicas waited and expired between."""
    return tiny(
        duration="90m",
        sample_every="90m",
        providers={"count": 1, "cores": 1, "reliability": 1.0, "dishonest": 0},
        requesters={"count": 1, "arrivals": {"process": "burst", "rate_per_hour": 0, "every": "1h", "size": 20}},
        jobs={"cores": 1, "redundancy": 1, "deadline": "10m", "duration": 1800},
        churn={},
    )


def test_queue_length_max_is_exact_between_samples() -> None:
    doc = simulate(parse(_burst_then_quiet()))
    m, series = doc["metrics"], doc["series"]["values"]
    assert max(series["queue"]) == 0  # the samples saw an empty queue ...
    assert m["jobs_expired"]["value"] == 19  # ... yet 19 jobs waited past their deadline
    assert m["queue_length_max"]["value"] == 19  # the maximum is the queue after the burst, not a sample's


def test_the_expired_series_counts_the_jobs_expired_since_the_previous_sample(tiny_doc: dict[str, Any]) -> None:
    for sc in (_burst_then_quiet(), tiny_doc):
        doc = simulate(parse(sc))
        series, defs = doc["series"]["values"], doc["series"]["definitions"]
        assert "pending_past_deadline" not in series and "expired" in defs
        assert sum(series["expired"]) == doc["metrics"]["jobs_expired"]["value"]


def test_first_placement_and_replacement_latency_are_separate(tiny_doc: dict[str, Any]) -> None:
    sc = parse(tiny_doc)
    m = simulate(sc)["metrics"]
    first, again = m["first_placement_latency_s"]["value"], m["replacement_latency_s"]["value"]
    assert m["replacements"]["value"] > 0  # churn: some replicas were lost and placed again
    # every placement is either a replica's first (counted from the job's arrival) or a re-placement (from
    # its loss); a first placement happens before the job's deadline, so it never waits longer than that
    assert first["n"] + again["n"] == m["placements"]["value"]
    assert again["n"] == m["replacements"]["value"]
    assert first["max"] <= sc.jobs.deadline_s
    assert first["p50"] <= first["p90"] <= first["p99"] <= first["max"]
    assert again["p50"] <= again["p90"] <= again["p99"] <= again["max"]
