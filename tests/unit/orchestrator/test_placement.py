"""The requester's market placement: a job with no --node is placed by bid -> award -> commit, explained by
`why`, waits in the queue when nothing fits, and is placed again when its provider is lost.

Real providers of the compute harness (memory transport, real wasm executor) with the market stand-in
(the real `compute.bidder.Bidder` with test knobs, `market_standin.py`) and a `MemoryMarketIndex`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agora.errors import AgoraError
from agora.market import MemoryMarketIndex
from agora.orchestrator import JobRunner, RunnerSettings
from agora.orchestrator.placement import PlacementSettings, Placer
from agora.transport import MemoryNetwork
from tests.unit.compute import wat
from tests.unit.compute.harness import Provider, Requester, grant, make_provider, make_requester, until
from tests.unit.orchestrator.market_standin import StandInBidder, make_bidder, make_offer

FAST = PlacementSettings(k=3, bid_timeout_s=1.0, award_timeout_s=2.0, default_deadline_s=60.0)


class Market:
    def __init__(self, net: MemoryNetwork, home: Path, index: MemoryMarketIndex) -> None:
        self.net, self.home, self.index = net, home, index
        self.providers: list[tuple[Provider, StandInBidder]] = []

    async def add(self, name: str, *, price: int = 1, cpu: int = 4000, publish: bool = True) -> StandInBidder:
        p = await make_provider(self.net, self.home / name)
        bidder = await make_bidder(p, make_offer(p.did, cpu_price=price, cpu=cpu))
        self.providers.append((p, bidder))
        if publish:
            await bidder.publish(self.index)
        return bidder

    async def close(self) -> None:
        for p, bidder in self.providers:
            await bidder.stop()
            await p.manager.stop()
            await p.runtime.transport.close()
            await p.store.close()


@pytest.fixture
async def index() -> AsyncIterator[MemoryMarketIndex]:
    idx = MemoryMarketIndex()
    yield idx
    await idx.close()


@pytest.fixture
async def market(net: MemoryNetwork, tmp_path: Path, index: MemoryMarketIndex) -> AsyncIterator[Market]:
    m = Market(net, tmp_path / "providers", index)
    yield m
    await m.close()


@pytest.fixture
async def buyer(net: MemoryNetwork, tmp_path: Path, index: MemoryMarketIndex) -> AsyncIterator[Requester]:
    """A requester whose runner has a placer on the market index."""
    r = await make_requester(net, tmp_path / "buyer")
    market_runner(r, index)
    yield r
    await r.runner.stop()
    await r.runtime.transport.close()
    await r.store.close()


def market_runner(r: Requester, index: MemoryMarketIndex) -> JobRunner:
    """Replace the requester's runner by one with a placer on `index` (what a node with a market does)."""
    r.runtime.unregister(r.runner)
    r.runner = JobRunner(
        runtime=r.runtime,
        store=r.store,
        jobs_dir=r.home / "jobs",
        proofs_for=r.book.proofs_for,
        settings=RunnerSettings(status_wait_s=1.0, call_timeout=5.0, log_drain_s=1.0, transient_errors=2),
        placer=Placer(r.runtime, index, settings=FAST),
    )
    r.runtime.register(r.runner)
    return r.runner


def spec(tmp: Path, *, cpu: float = 1, **extra: Any) -> dict[str, Any]:
    (tmp / "hello.wasm").write_bytes(wat.hello(content="result\n"))
    task = {"name": "hello", "module": "hello.wasm", "resources": {"cpu": cpu, "memory": "64Mi"}, "timeout": 30}
    return {"name": "market-job", "tasks": [task], **extra}


async def submit(r: Requester, doc: dict[str, Any], base: Path, node: str | None = None) -> str:
    return str((await r.runner.submit(doc, node=node, base_dirs=[base]))["id"])


async def ended(r: Requester, job_id: str, timeout: float = 20) -> dict[str, Any]:
    doc = await r.runner.wait(job_id, timeout)
    assert doc["state"] in ("completed", "failed", "cancelled"), doc
    return doc


def states(unit: dict[str, Any]) -> list[str]:
    return [h["state"] for h in unit["history"]]


async def state_is(r: Requester, job_id: str, want: str, timeout: float = 10.0) -> None:
    """Wait (bounded) until the job is in state `want`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    doc = await r.runner.get(job_id)
    while doc["state"] != want:
        if loop.time() > deadline:
            raise AssertionError(f"job {job_id} never reached {want}: {doc['state']}")
        await asyncio.sleep(0.01)
        doc = await r.runner.get(job_id)


async def test_a_job_with_no_node_lands_on_the_best_bid_through_award_and_commit(
    market: Market, buyer: Requester, tmp_path: Path
) -> None:
    dear = await market.add("dear", price=5)
    cheap = await market.add("cheap", price=1)
    mid = await market.add("mid", price=3)
    cheap.delay_s = 0.3  # the best bid arrives last: it still wins (never simply the first)
    job_id = await submit(buyer, spec(tmp_path), tmp_path)
    doc = await ended(buyer, job_id)
    assert doc["state"] == "completed", doc["error"]
    assert doc["market"] is True
    [unit] = doc["units"]
    assert unit["node"] == cheap.did
    assert states(unit) == ["matching", "bidding", "awarded", "committed", "starting", "running", "completed"]
    assert [h["state"] for h in doc["history"]] == [
        "submitted",
        "matching",
        "bidding",
        "awarded",
        "committed",
        "running",
        "completed",
    ]
    assert all(b.asked for b in (dear, cheap, mid)) and cheap.awarded and not dear.awarded and not mid.awarded
    assert cheap.book.holds == {} or all(h.job_id == job_id for h in cheap.book.holds.values())
    why = await buyer.runner.why(job_id)
    last = why["units"]["hello"]["last"]
    assert last["outcome"] == "committed" and last["provider"] == cheap.did
    assert {b["provider"] for b in last["bids"]} == {dear.did, cheap.did, mid.did}
    assert len(last["decision"]["candidates"]) == 3
    assert all(c["breakdown"] for c in last["decision"]["candidates"])
    assert f"placed on {cheap.did}" in why["summary"]


async def test_a_refused_commit_moves_on_to_the_next_bid(market: Market, buyer: Requester, tmp_path: Path) -> None:
    cheap = await market.add("cheap", price=1)
    second = await market.add("second", price=2)
    cheap.refuse_commit = "insufficient_capacity"  # its last slot went to another requester
    doc = await ended(buyer, await submit(buyer, spec(tmp_path), tmp_path))
    assert doc["state"] == "completed", doc["error"]
    [unit] = doc["units"]
    assert unit["node"] == second.did
    assert states(unit)[:6] == ["matching", "bidding", "awarded", "bidding", "awarded", "committed"]
    [failure] = unit["placements"][-1]["failures"]
    assert failure["provider"] == cheap.did and failure["code"] == "insufficient_capacity"


async def test_a_silent_provider_costs_the_bid_deadline_not_the_job(
    market: Market, buyer: Requester, tmp_path: Path
) -> None:
    silent = await market.add("silent", price=1)
    other = await market.add("other", price=4)
    silent.silent = True
    doc = await ended(buyer, await submit(buyer, spec(tmp_path), tmp_path))
    assert doc["state"] == "completed", doc["error"]
    assert doc["units"][0]["node"] == other.did
    failures = doc["units"][0]["placements"][-1]["failures"]
    assert [(f["provider"], f["stage"], f["code"]) for f in failures] == [(silent.did, "bid", "timeout")]


async def test_a_job_that_fits_nowhere_waits_then_runs_when_a_big_enough_provider_joins(
    market: Market, buyer: Requester, tmp_path: Path
) -> None:
    await market.add("small", cpu=1000)
    job_id = await submit(buyer, spec(tmp_path, cpu=2), tmp_path)
    await state_is(buyer, job_id, "pending")
    doc = await buyer.runner.get(job_id)
    queue = doc["queue"]
    assert queue["position"] == 1 and queue["blocking"] == {"insufficient_cpu": 1}
    why = await buyer.runner.why(job_id)
    assert "insufficient_cpu" in why["summary"] and "would fit" in why["summary"]
    big = await market.add("big", cpu=4000)  # its ad reaches the index: the watch wakes the queue
    doc = await ended(buyer, job_id)
    assert doc["state"] == "completed", doc["error"]
    assert doc["units"][0]["node"] == big.did
    moves = [h["state"] for h in doc["history"]]
    assert moves[:3] == ["submitted", "matching", "pending"]
    assert moves[-6:] == ["matching", "bidding", "awarded", "committed", "running", "completed"]
    assert len(moves) <= 11  # re-evaluated on index changes (the watch's first read may add one), not polled


async def test_past_its_deadline_a_pending_job_fails_deadline_exceeded_with_the_diagnostics(
    market: Market, buyer: Requester, tmp_path: Path
) -> None:
    small = await market.add("small", cpu=1000)
    job_id = await submit(buyer, spec(tmp_path, cpu=2, deadline=1), tmp_path)
    await state_is(buyer, job_id, "pending")
    await small.publish(market.index, cpu=900)  # an index change that still does not fit
    doc = await ended(buyer, job_id)
    assert doc["state"] == "failed"
    assert doc["error"]["code"] == "deadline_exceeded"
    assert doc["error"]["details"]["blocking"] == {"insufficient_cpu": 1}
    assert doc["units"][0]["state"] == "failed"


async def test_the_queue_survives_a_restart_of_the_requester(
    market: Market, buyer: Requester, tmp_path: Path, index: MemoryMarketIndex
) -> None:
    await market.add("small", cpu=1000)
    job_id = await submit(buyer, spec(tmp_path, cpu=2), tmp_path)
    await state_is(buyer, job_id, "pending")
    await buyer.runner.stop()  # the requester's node stops: the queued job stays queued in the store
    row = await buyer.store.get("jobs", job_id)
    assert row is not None and row["state"] == "pending"
    (tmp_path / "hello.wasm").unlink()  # what it runs was kept with the job, not read again
    fresh = market_runner(buyer, index)
    assert await fresh.recover() == 0, await fresh.get(job_id)  # nothing failed: the job is back in the queue
    await state_is(buyer, job_id, "pending")
    assert (await fresh.get(job_id))["queue"]["position"] == 1
    big = await market.add("big", cpu=4000)
    doc = await ended(buyer, job_id)
    assert doc["state"] == "completed", doc["error"]
    assert doc["units"][0]["node"] == big.did
    causes = [e.data["cause"] for e in await buyer.store.events(kind="job.state", subject=job_id)]
    assert "requester restarted: back in the queue" in causes
    assert not (Path(doc["dir"]) / ".prepared").exists()


async def test_cancel_works_while_pending(market: Market, buyer: Requester, tmp_path: Path) -> None:
    await market.add("small", cpu=1000)
    job_id = await submit(buyer, spec(tmp_path, cpu=2), tmp_path)
    await state_is(buyer, job_id, "pending")
    await buyer.runner.cancel(job_id)
    doc = await ended(buyer, job_id)
    assert doc["state"] == "cancelled" and doc["units"][0]["state"] == "cancelled"


async def test_node_without_a_grant_is_the_only_candidate_and_with_a_grant_the_old_path_stays(
    market: Market, buyer: Requester, tmp_path: Path
) -> None:
    cheap = await market.add("cheap", price=1)
    named = await market.add("named", price=9)
    doc = await ended(buyer, await submit(buyer, spec(tmp_path), tmp_path, node=named.did))
    assert doc["state"] == "completed", doc["error"]
    assert doc["units"][0]["node"] == named.did and not cheap.asked
    assert len(doc["units"][0]["placements"][-1]["decision"]["candidates"]) == 1
    assert cheap.provider is not None
    await grant(cheap.provider, buyer)
    doc = await ended(buyer, await submit(buyer, spec(tmp_path), tmp_path, node=cheap.did))
    assert doc["state"] == "completed" and doc["market"] is False and doc["units"][0]["placements"] == []
    assert states(doc["units"][0]) == ["starting", "running", "completed"]


async def test_a_named_node_that_neither_granted_nor_sells_is_refused_at_submit(
    market: Market, buyer: Requester, tmp_path: Path
) -> None:
    """Neither path can reach it: refused now with the way out, not queued until its deadline."""
    hidden = await market.add("hidden", publish=False)
    with pytest.raises(AgoraError) as info:
        await submit(buyer, spec(tmp_path), tmp_path, node=hidden.did)
    assert info.value.code == "ucan_unauthorized" and f"agora node grant {buyer.did}" in (info.value.hint or "")
    assert await buyer.runner.list_jobs() == []  # nothing was queued
    assert not hidden.asked


async def test_a_unit_whose_provider_is_lost_is_placed_again_elsewhere(
    market: Market, buyer: Requester, tmp_path: Path
) -> None:
    first = await market.add("first", price=1)
    second = await market.add("second", price=2)
    (tmp_path / "spin.wasm").write_bytes(wat.spin())
    task = {"name": "spin", "module": "spin.wasm", "resources": {"cpu": 1, "memory": "64Mi"}, "timeout": 30}
    job_id = await submit(buyer, {"name": "lost", "tasks": [task], "retry": {"attempts": 1, "backoff": 0}}, tmp_path)

    def running_on(did: str) -> Callable[[], bool]:
        def check() -> bool:
            run = buyer.runner._runs.get(job_id)
            return run is not None and any(u.node == did and u.state == "running" for u in run.record.units)

        return check

    await until(running_on(first.did), "the unit running on the first provider")
    assert first.provider is not None
    await first.provider.runtime.transport.close()  # the provider's node goes away under the unit
    try:
        await until(running_on(second.did), "the unit placed again on the second provider", timeout=20)
    except AssertionError:
        raise AssertionError((await buyer.runner.get(job_id))["units"][0]["history"]) from None
    await buyer.runner.cancel(job_id)
    doc = await ended(buyer, job_id)
    [unit] = doc["units"]
    assert unit["excluded"] == [first.did]
    assert "waiting_retry" in states(unit) and states(unit).count("committed") == 2
    assert unit["placements"][-1]["excluded"] == [first.did]


async def test_a_provider_discovery_marks_lost_has_its_units_placed_again_at_once(
    market: Market, buyer: Requester, tmp_path: Path
) -> None:
    first = await market.add("first", price=1)
    second = await market.add("second", price=2)
    (tmp_path / "spin.wasm").write_bytes(wat.spin())
    task = {"name": "spin", "module": "spin.wasm", "resources": {"cpu": 1, "memory": "64Mi"}, "timeout": 30}
    job_id = await submit(buyer, {"name": "lost", "tasks": [task], "retry": {"attempts": 1, "backoff": 0}}, tmp_path)

    def running_on(did: str) -> Callable[[], bool]:
        def check() -> bool:
            run = buyer.runner._runs.get(job_id)
            return run is not None and any(u.node == did and u.state == "running" for u in run.record.units)

        return check

    await until(running_on(first.did), "the unit running on the first provider")
    assert buyer.runner.provider_lost(second.did) == 0  # nothing runs there
    assert buyer.runner.provider_lost(first.did, "discovery: peer.lost") == 1
    try:
        await until(running_on(second.did), "the unit placed again on the second provider", timeout=20)
    except AssertionError:
        raise AssertionError((await buyer.runner.get(job_id))["units"][0]["history"]) from None
    await buyer.runner.cancel(job_id)
    doc = await ended(buyer, job_id)
    [unit] = doc["units"]
    assert unit["excluded"] == [first.did]
    retry = next(h for h in unit["history"] if h["state"] == "waiting_retry")
    assert retry["cause"].startswith("alloc_interrupted:") and "discovery: peer.lost" in retry["cause"]
