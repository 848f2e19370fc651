"""Redundant execution (`verification: {replicas, agree}`) and the per-job bid fan-out (`placement.bids`).

Real providers of the compute harness (memory transport, real wasm executor, real `Bidder` from the market
stand-in). A dishonest provider is a real one whose executor rewrites the task's output file after the task
ran (what a provider returning made-up results does): its receipt then signs other hashes. A "held"
provider's executor waits for a test event before reporting the end, so the order in which the requester
sees the replicas end is the test's, never a race.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agora.clock import SYSTEM_CLOCK
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.orchestrator import JobRecord, JobRunner, RunnerSettings, UnitRecord
from agora.orchestrator.replicas import fingerprint, tally
from agora.store import MemoryStore
from tests.unit.compute.harness import Requester, until
from tests.unit.orchestrator.dishonest import tamper
from tests.unit.orchestrator.test_placement import (
    Market,
    buyer,
    ended,
    index,
    market,
    spec,
    state_is,
    submit,
)

__all__ = ["buyer", "index", "market"]  # fixtures


def redundant(tmp: Path, replicas: int, agree: int, **extra: Any) -> dict[str, Any]:
    return spec(tmp, verification={"replicas": replicas, "agree": agree}, **extra)


def replica_of(unit: dict[str, Any], did: str) -> dict[str, Any]:
    [rep] = [r for r in unit["replicas"] if r["provider"] == did]
    return rep


def replica_state(r: Requester, job_id: str, did: str) -> Callable[[], str | None]:
    def check() -> str | None:
        run = r.runner._runs.get(job_id)
        if run is None:
            return None
        reps = [x for x in run.record.units[0].replicas if x["provider"] == did]
        return str(reps[-1]["state"]) if reps else None

    return check


def test_tally_accepts_the_first_group_to_reach_agree_and_sees_when_none_can() -> None:
    assert tally([(1, "a"), (2, "b")], 2, 1).outcome == "undecided"
    done = tally([(1, "a"), (2, "b"), (3, "a")], 2, 0)
    assert done.outcome == "agreed" and done.answer == "a" and done.groups["a"] == (1, 3)
    assert tally([(1, "a"), (2, "b")], 2, 0).outcome == "impossible"
    assert tally([(1, "a"), (2, "b"), (3, "c")], 2, 0).disagree
    assert tally([], 3, 2).outcome == "impossible"  # two more results cannot make three
    assert tally([(1, "a")], 1, 5).outcome == "agreed"
    assert fingerprint((("x", "0" * 64, 1),)) == fingerprint((("x", "0" * 64, 1),)) != fingerprint(())


async def test_three_honest_providers_agree_and_the_unit_completes(
    market: Market, buyer: Requester, tmp_path: Path
) -> None:
    bidders = [await market.add(name, price=p) for name, p in (("a", 1), ("b", 2), ("c", 3))]
    job_id = await submit(buyer, redundant(tmp_path, 3, 3), tmp_path)
    doc = await ended(buyer, job_id)
    assert doc["state"] == "completed", doc["error"]
    [unit] = doc["units"]
    assert sorted(r["provider"] for r in unit["replicas"]) == sorted(b.did for b in bidders)
    assert {r["state"] for r in unit["replicas"]} == {"completed"}
    assert {r["verdict"] for r in unit["replicas"]} == {"agreed"}
    assert len({r["digest"] for r in unit["replicas"]}) == 1 and all(r["receipt"] for r in unit["replicas"])
    [out] = unit["outputs"]
    assert await asyncio.to_thread(Path(out["local_path"]).read_text) == "result\n"
    assert unit["node"] in {b.did for b in bidders} and unit["receipt"] is not None
    assert await buyer.store.events(kind="job.provider_disagreed", subject=job_id) == []
    why = await buyer.runner.why(job_id)
    assert len(why["units"]["hello"]["replicas"]) == 3 and "replicas: r1" in why["summary"]
    assert why["units"]["hello"]["last"]["want"] == 3 and why["units"]["hello"]["last"]["outcome"] == "committed"


async def test_a_dishonest_provider_is_outvoted_and_recorded_with_its_receipt(
    market: Market, buyer: Requester, tmp_path: Path
) -> None:
    honest = await market.add("honest", price=1)
    held = await market.add("held", price=2)
    liar = await market.add("liar", price=3)
    release = asyncio.Event()
    tamper(liar.provider.wasm, forge=b"made up\n")
    tamper(held.provider.wasm, hold=release)  # its (honest) result comes in only after the liar's was compared
    job_id = await submit(buyer, redundant(tmp_path, 3, 2), tmp_path)
    await until(lambda: replica_state(buyer, job_id, liar.did)() == "completed", "the liar's replica compared")
    release.set()
    doc = await ended(buyer, job_id)
    assert doc["state"] == "completed", doc["error"]
    [unit] = doc["units"]
    assert await asyncio.to_thread(Path(unit["outputs"][0]["local_path"]).read_text) == "result\n"
    assert unit["node"] in (honest.did, held.did)
    lie = replica_of(unit, liar.did)
    assert lie["verdict"] == "disagreed" and lie["state"] == "completed"
    assert {replica_of(unit, d)["verdict"] for d in (honest.did, held.did)} == {"agreed"}
    assert "disagreed: " + liar.did in unit["history"][-1]["cause"]
    [event] = await buyer.store.events(kind="job.provider_disagreed", subject=job_id)
    assert event.data["provider"] == liar.did and event.data["receipt"] == lie["receipt"]
    assert event.data["digest"] == lie["digest"] != event.data["expected"]
    assert {e["provider"] for e in event.data["agreed"]} == {honest.did, held.did}
    assert all(e["receipt"] for e in event.data["agreed"])


async def test_once_m_agree_the_replica_still_running_is_cancelled_on_its_provider(
    market: Market, buyer: Requester, tmp_path: Path
) -> None:
    await market.add("a", price=1)
    await market.add("b", price=2)
    slow = await market.add("slow", price=3)
    cancels = tamper(slow.provider.wasm, hold=asyncio.Event())  # never set: only the cancel ends it
    doc = await ended(buyer, await submit(buyer, redundant(tmp_path, 3, 2), tmp_path))
    assert doc["state"] == "completed", doc["error"]
    cut = replica_of(doc["units"][0], slow.did)
    assert cut["state"] == "cancelled" and cut["verdict"] is None
    assert cancels == [cut["alloc_id"]]
    await until(lambda: not slow.provider.capacity.allocations, "the slow provider's slot freed")


async def test_no_agreement_fails_the_unit_results_disagree(market: Market, buyer: Requester, tmp_path: Path) -> None:
    a = await market.add("a", price=1)
    b = await market.add("b", price=2)
    c = await market.add("c", price=3)
    tamper(b.provider.wasm, forge=b"one lie\n")
    tamper(c.provider.wasm, forge=b"another lie\n")
    job_id = await submit(buyer, redundant(tmp_path, 3, 2), tmp_path)
    doc = await ended(buyer, job_id)
    assert doc["state"] == "failed"
    assert doc["error"]["code"] == "results_disagree" and doc["error"]["task"] == "hello"
    [unit] = doc["units"]
    assert unit["state"] == "failed" and unit["outputs"] == []
    assert len(doc["error"]["details"]["groups"]) == 3
    [event] = await buyer.store.events(kind="job.results_disagree", subject=job_id)
    assert {r["provider"] for r in event.data["results"]} == {a.did, b.did, c.did}
    assert all(r["receipt"] for r in event.data["results"])


async def test_more_replicas_than_providers_waits_not_enough_providers_then_deadline_exceeded(
    market: Market, buyer: Requester, tmp_path: Path
) -> None:
    bidders = [await market.add("a"), await market.add("b")]
    job_id = await submit(buyer, redundant(tmp_path, 3, 2, deadline=3), tmp_path)
    await state_is(buyer, job_id, "pending")
    doc = await buyer.runner.get(job_id)
    assert doc["queue"]["blocking"] == {"not_enough_providers": 1}
    why = await buyer.runner.why(job_id)
    assert why["units"]["hello"]["last"]["outcome"] == "not_enough_providers"
    assert not any(b.asked for b in bidders)  # nothing reserved for a set that cannot be made up
    doc = await ended(buyer, job_id)
    assert doc["state"] == "failed" and doc["error"]["code"] == "deadline_exceeded"
    assert doc["error"]["details"]["blocking"] == {"not_enough_providers": 1}
    assert not any(b.asked for b in bidders)


async def test_a_lost_replica_is_placed_again_on_a_provider_the_unit_has_not_used(
    market: Market, buyer: Requester, tmp_path: Path
) -> None:
    release = asyncio.Event()
    bidders = [await market.add(name, price=p) for name, p in (("a", 1), ("b", 2), ("spare", 9))]
    for b in bidders:
        tamper(b.provider.wasm, hold=release)
    a, b, spare = bidders
    job_id = await submit(buyer, redundant(tmp_path, 2, 2, retry={"attempts": 1, "backoff": 0}), tmp_path)
    await until(lambda: replica_state(buyer, job_id, a.did)() == "running", "the replica on a running")
    assert buyer.runner.provider_lost(a.did, "discovery: peer.lost") == 1
    await until(lambda: replica_state(buyer, job_id, spare.did)() == "running", "the slot placed again on spare")
    release.set()
    doc = await ended(buyer, job_id)
    assert doc["state"] == "completed", doc["error"]
    [unit] = doc["units"]
    assert replica_of(unit, a.did)["state"] == "lost" and unit["excluded"] == [a.did]
    assert {replica_of(unit, d)["verdict"] for d in (b.did, spare.did)} == {"agreed"}
    lost_slot = replica_of(unit, a.did)["slot"]
    assert sorted(r["slot"] for r in unit["replicas"]) == sorted([1, 2, lost_slot])  # the slot kept its number
    assert replica_of(unit, spare.did)["slot"] == lost_slot


async def test_per_job_bids_sends_exactly_that_many_bid_requests(
    market: Market, buyer: Requester, tmp_path: Path
) -> None:
    bidders = [await market.add(f"p{i}", price=i + 1) for i in range(5)]
    job_id = await submit(buyer, spec(tmp_path, placement={"bids": 2}), tmp_path)
    doc = await ended(buyer, job_id)
    assert doc["state"] == "completed", doc["error"]
    assert sum(len(b.asked) for b in bidders) == 2 and sum(1 for b in bidders if b.asked) == 2
    why = await buyer.runner.why(job_id)
    assert why["units"]["hello"]["last"]["k"] == 2 and len(why["units"]["hello"]["last"]["bids"]) == 2
    doc = await ended(buyer, await submit(buyer, spec(tmp_path), tmp_path))  # the node's default: 3
    assert sum(len(b.asked) for b in bidders) == 2 + 3


async def test_replicas_ask_at_least_as_many_providers_as_they_need(
    market: Market, buyer: Requester, tmp_path: Path
) -> None:
    bidders = [await market.add(f"p{i}", price=i + 1) for i in range(4)]
    doc = await ended(buyer, await submit(buyer, redundant(tmp_path, 3, 3, placement={"bids": 1}), tmp_path))
    assert doc["state"] == "completed", doc["error"]
    assert sum(len(b.asked) for b in bidders) == 3


async def test_verification_with_a_named_node_is_refused_at_submit(
    market: Market, buyer: Requester, tmp_path: Path
) -> None:
    named = await market.add("named")
    with pytest.raises(AgoraError) as info:
        await submit(buyer, redundant(tmp_path, 2, 2), tmp_path, node=named.did)
    assert info.value.code == "job_spec_invalid"
    assert [e["path"] for e in info.value.details["errors"]] == ["verification"]
    assert await buyer.runner.list_jobs() == [] and not named.asked


async def test_after_a_restart_the_replicas_left_running_are_sent_a_cancel(buyer: Requester, tmp_path: Path) -> None:
    gone = Keypair.generate().did  # the provider is not there any more: the cancel's outcome is recorded
    running = {"slot": 1, "provider": gone, "state": "running", "alloc_id": "alloc-r1"}
    done = {"slot": 2, "provider": gone, "state": "completed", "alloc_id": "alloc-r2"}
    unit = UnitRecord(key="hello", task="hello", index=0, node="", state="running", replicas=[running, done])
    rec = JobRecord(
        id="job-r",
        name="verified",
        node="",
        requester=buyer.did,
        spec=redundant(tmp_path, 2, 2),
        submitted_at=SYSTEM_CLOCK.now(),
        dir=str(tmp_path / "jobs" / "job-r"),
        units=[unit],
        state="running",
        market=True,
    )
    store = MemoryStore(SYSTEM_CLOCK)
    await store.open()
    await store.put("jobs", rec.id, rec.to_doc())
    fresh = JobRunner(
        runtime=buyer.runtime,
        store=store,
        jobs_dir=tmp_path / "jobs",
        proofs_for=buyer.book.proofs_for,
        settings=RunnerSettings(call_timeout=1.0, orphan_cancel_tries=1),
    )
    try:
        assert await fresh.recover() == 1
        assert fresh._recovering is not None
        await asyncio.wait_for(fresh._recovering, 30)
        [orphan] = [e.data for e in await store.events(kind="job.orphan", subject=rec.id)]
        assert (orphan["task"], orphan["node"], orphan["alloc_id"]) == ("hello~r1", gone, "alloc-r1")
        assert orphan["cancelled"] is False and orphan["error"]["code"]
    finally:
        await fresh.stop()
        await store.close()


async def test_a_replica_short_of_a_commit_asks_the_next_best_provider_at_once(
    market: Market, buyer: Requester, tmp_path: Path
) -> None:
    bidders = [await market.add(f"p{i}", price=i + 1) for i in range(4)]
    bidders[1].refuse_commit = "insufficient_capacity"  # its last slot went elsewhere
    buyer.runner._ensure_index_watch()  # the watch has read the four ads: no index change is coming
    await until(lambda: buyer.runner._index_version >= 4, "the index watch to read the ads")
    doc = await ended(buyer, await submit(buyer, redundant(tmp_path, 3, 3), tmp_path))
    assert doc["state"] == "completed", doc["error"]
    [unit] = doc["units"]
    assert {r["provider"] for r in unit["replicas"]} == {bidders[i].did for i in (0, 2, 3)}
    first, second = unit["placements"]
    assert first["outcome"] == "partly_committed" and first["blocking"]["not_enough_providers"] == 1
    assert second["want"] == 1 and second["outcome"] == "committed" and second["providers"] == [bidders[3].did]
    assert {bidders[0].did, bidders[2].did} <= set(second["excluded"])  # never twice on one provider
    assert len(bidders[3].asked) == 1


async def test_an_index_that_breaks_mid_placement_still_ends_the_unit_in_a_recorded_state(
    market: Market, buyer: Requester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await market.add("a")
    placer = buyer.runner.placer
    assert placer is not None

    async def broken() -> list[Any]:
        raise AgoraError("hub_unreachable", "the hub went away")

    monkeypatch.setattr(placer.index, "ads", broken)
    doc = await ended(buyer, await submit(buyer, redundant(tmp_path, 2, 2), tmp_path))
    assert doc["state"] == "failed" and doc["error"]["code"] == "hub_unreachable"
    [unit] = doc["units"]
    assert unit["state"] == "failed" and unit["error"]["code"] == "hub_unreachable"
