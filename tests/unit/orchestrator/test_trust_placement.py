"""Trust in the requester's market placement: the runner's outcomes become evidence, the evidence feeds
matching (trust in the score, `min_trust` on the real scores, `provider_cooling_down` after repeated
failures, readmission on schedule) and `job why` shows it.

Real providers of the compute harness (memory transport, real wasm executor) with the real `Bidder`
(`market_standin.py`) and a `MemoryMarketIndex`; the requester's `TrustBook` on its store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agora.actor import CallContext, behavior
from agora.clock import SYSTEM_CLOCK, Clock, ManualClock
from agora.compute import AllocationManager
from agora.errors import AgoraError
from agora.ledger import Evidence, TrustBook, TrustSettings
from agora.market import MemoryMarketIndex
from agora.orchestrator import JobRunner, RunnerSettings
from agora.orchestrator.evidence import TrustRecorder
from agora.orchestrator.placement import Placer
from agora.transport import MemoryNetwork
from tests.unit.compute import wat
from tests.unit.compute.harness import Requester, grant, make_provider, make_requester, until
from tests.unit.orchestrator.dishonest import tamper
from tests.unit.orchestrator.market_standin import StandInBidder, make_bidder, make_offer
from tests.unit.orchestrator.test_placement import (
    FAST,
    Market,
    ended,
    index,
    market,
    spec,
    state_is,
    submit,
)

__all__ = ["index", "market"]  # fixtures


class Buyer:
    def __init__(self, r: Requester, book: TrustBook, recorder: TrustRecorder) -> None:
        self.r, self.book, self.recorder = r, book, recorder

    @property
    def runner(self) -> JobRunner:
        return self.r.runner


async def trusting_buyer(
    net: MemoryNetwork, home: Path, index: MemoryMarketIndex, *, clock: Clock, settings: TrustSettings | None = None
) -> Buyer:
    """A requester whose runner records trust evidence and whose placer matches with it (as a node wires it)."""
    r = await make_requester(net, home)
    book = TrustBook(r.store, clock=clock, settings=settings)
    await book.load()
    recorder = TrustRecorder(book, did=r.did, clock=clock)
    r.runtime.unregister(r.runner)
    r.runner = JobRunner(
        runtime=r.runtime,
        store=r.store,
        jobs_dir=r.home / "jobs",
        proofs_for=r.book.proofs_for,
        settings=RunnerSettings(status_wait_s=1.0, call_timeout=5.0, log_drain_s=1.0, transient_errors=2),
        placer=Placer(r.runtime, index, settings=FAST, policy=recorder.match_policy),
        trust=recorder,
    )
    r.runtime.register(r.runner)
    return Buyer(r, book, recorder)


@pytest.fixture
async def make_buyer(net: MemoryNetwork, tmp_path: Path, index: MemoryMarketIndex) -> AsyncIterator[Any]:
    made: list[Buyer] = []

    async def make(clock: Clock = SYSTEM_CLOCK, settings: TrustSettings | None = None) -> Buyer:
        b = await trusting_buyer(net, tmp_path / f"buyer{len(made)}", index, clock=clock, settings=settings)
        made.append(b)
        return b

    yield make
    for b in made:
        await b.runner.stop()
        await b.r.runtime.transport.close()
        await b.r.store.close()


async def failures(book: TrustBook, provider: str, n: int, *, kind: str = "failure", spaced: float = 0.0) -> None:
    t = book.clock.now() - n * spaced
    for i in range(n):
        await book.record(Evidence(provider, kind, t + i * spaced, {"job": f"job-old{i}", "unit": "u#1"}, "seeded"))


def candidate(unit: dict[str, Any], provider: str) -> dict[str, Any]:
    cands = unit["placements"][-1]["decision"]["candidates"]
    return next(c for c in cands if c["provider"] == provider)


async def test_a_provider_with_bad_history_loses_the_job_to_the_other_when_both_fit(
    market: Market, make_buyer: Any, tmp_path: Path
) -> None:
    one = await market.add("one", price=1)
    two = await market.add("two", price=1)
    bad, good = sorted([one, two], key=lambda b: b.did)  # `bad` is the one a tie would go to (by DID)
    buyer: Buyer = await make_buyer()
    await failures(buyer.book, bad.did, 2, spaced=3600)  # spread out: below the penalty, a low score
    doc = await ended(buyer.r, await submit(buyer.r, spec(tmp_path), tmp_path))
    assert doc["state"] == "completed", doc["error"]
    [unit] = doc["units"]
    assert unit["node"] == good.did
    both = candidate(unit, bad.did), candidate(unit, good.did)
    assert [c["position"] for c in both] == [2, 1]  # both asked for a bid (k=3), `good` first
    assert both[0]["breakdown"]["trust"]["value"] == pytest.approx(0.25, abs=0.01)
    assert both[1]["breakdown"]["trust"]["value"] == 0.5  # the prior: no evidence yet
    shown = unit["placements"][-1]["trust"]
    assert shown[bad.did]["counts"] == {"failure": 2} and shown[good.did]["known"] is False
    # the outcome is evidence about `good`, citing the verified usage receipt; both bids were timed
    [record] = buyer.book.records(good.did)
    assert record.kind == "success" and record.cites["receipt"] == unit["receipt"]["cid"]
    assert record.cites["alloc"] == unit["alloc_id"]
    assert buyer.book.report(good.did).score > 0.5
    assert buyer.book.report(good.did).latency_ms is not None and buyer.book.report(bad.did).latency_ms is not None


async def test_min_trust_filters_on_the_real_scores(market: Market, make_buyer: Any, tmp_path: Path) -> None:
    known_bad = await market.add("bad", price=1)
    newcomer = await market.add("new", price=5)
    buyer: Buyer = await make_buyer()
    await failures(buyer.book, known_bad.did, 2, spaced=3600)
    doc = await ended(buyer.r, await submit(buyer.r, spec(tmp_path, placement={"min_trust": 0.4}), tmp_path))
    assert doc["state"] == "completed", doc["error"]
    [unit] = doc["units"]
    assert unit["node"] == newcomer.did  # dearer, but the cheap one's record is below min_trust
    [reason] = candidate(unit, known_bad.did)["reasons"]
    assert reason["code"] == "trust_below_min" and reason["text"].startswith("trust_below_min: need 0.4, has 0.25")
    # above the prior: a newcomer does not pass either; the job waits and says why
    job_id = await submit(buyer.r, spec(tmp_path, placement={"min_trust": 0.9}), tmp_path)
    await state_is(buyer.r, job_id, "pending")
    why = await buyer.runner.why(job_id)
    last = why["units"]["hello"]["last"]
    assert last["blocking"] == {"trust_below_min": 2}
    await buyer.runner.cancel(job_id)
    await ended(buyer.r, job_id)


async def test_repeated_failures_cool_a_provider_down_and_it_is_readmitted_on_schedule(
    market: Market, make_buyer: Any, tmp_path: Path
) -> None:
    flaky = await market.add("flaky", price=1)
    clock = ManualClock(SYSTEM_CLOCK.now())  # the trust book's clock: the test moves it past the cooldown
    buyer: Buyer = await make_buyer(clock=clock, settings=TrustSettings(cooldown_s=600))
    await failures(buyer.book, flaky.did, 3, kind="timeout", spaced=10)
    job_id = await submit(buyer.r, spec(tmp_path), tmp_path)
    await state_is(buyer.r, job_id, "pending")
    why = await buyer.runner.why(job_id)
    last = why["units"]["hello"]["last"]
    assert last["blocking"] == {"provider_cooling_down": 1}
    [reason] = last["decision"]["candidates"][0]["reasons"]
    assert reason["code"] == "provider_cooling_down" and "after repeated failures" in reason["text"]
    assert last["trust"][flaky.did]["cooling_until"] == reason["need"]
    assert last["decision"]["what_would_fit"] == []
    assert flaky.asked == []  # excluded: not even asked for a bid
    clock.advance(600)  # the cooldown is over: readmitted
    await flaky.publish(market.index)  # (an index change re-evaluates the queue at once)
    doc = await ended(buyer.r, job_id)
    assert doc["state"] == "completed", doc["error"]
    assert doc["units"][0]["node"] == flaky.did
    assert buyer.book.report(flaky.did).penalty.offences == 1


async def test_a_pending_unit_is_placed_again_when_the_cooldown_ends_without_an_index_change(
    market: Market, make_buyer: Any, tmp_path: Path
) -> None:
    flaky = await market.add("flaky", price=1)
    buyer: Buyer = await make_buyer(settings=TrustSettings(cooldown_s=0.5))
    await failures(buyer.book, flaky.did, 3)
    job_id = await submit(buyer.r, spec(tmp_path), tmp_path)
    doc = await ended(buyer.r, job_id)  # nothing publishes: the cooldown's end wakes the queue
    assert doc["state"] == "completed", doc["error"]
    [unit] = doc["units"]
    assert unit["placements"][0]["blocking"] == {"provider_cooling_down": 1}
    assert unit["placements"][-1]["outcome"] == "committed"


class _NeverStarts(AllocationManager):
    """Commits to awards (the bidder's part), then refuses every start."""

    @behavior("/agora/alloc/start")
    async def start(self, ctx: CallContext) -> dict[str, Any]:
        raise AgoraError("unavailable", "this provider never starts what it committed to")


async def test_an_award_committed_then_never_started_is_evidence(
    net: MemoryNetwork, market: Market, make_buyer: Any, tmp_path: Path
) -> None:
    p = await make_provider(net, market.home / "liar", manager_cls=_NeverStarts)
    liar: StandInBidder = await make_bidder(p, make_offer(p.did, cpu_price=1))
    market.providers.append((p, liar))
    await liar.publish(market.index)
    buyer: Buyer = await make_buyer()
    job_id = await submit(buyer.r, spec(tmp_path), tmp_path)
    # the lost start is placed again without the liar (orchestrator/lostcommit.py): with no one else, it waits
    await until(lambda: buyer.book.records(liar.did), "the award never started recorded as evidence")
    await until(lambda: buyer.runner._runs[job_id].record.units[0].state == "pending", "the unit waiting")
    await buyer.runner.cancel(job_id)
    doc = await ended(buyer.r, job_id)
    assert doc["state"] == "cancelled"
    [record] = buyer.book.records(liar.did)  # one incident, one record (not also a `failure`)
    assert record.kind == "award_not_started"
    [placement] = [p for p in doc["units"][0]["placements"] if p.get("bids")]
    assert record.cites["award"] == placement["bids"][0]["request_id"]
    assert liar.awarded == [record.cites["award"]]
    assert record.cites["commit"].startswith("b")  # the CID of the commit the provider signed


async def test_a_provider_lost_under_a_unit_is_a_failure_and_the_task_s_own_failure_is_no_evidence(
    market: Market, make_buyer: Any, tmp_path: Path
) -> None:
    first = await market.add("first", price=1)
    second = await market.add("second", price=2)
    buyer: Buyer = await make_buyer()
    (tmp_path / "spin.wasm").write_bytes(wat.spin())
    task = {"name": "spin", "module": "spin.wasm", "resources": {"cpu": 1, "memory": "64Mi"}, "timeout": 30}
    job_id = await submit(buyer.r, {"name": "lost", "tasks": [task], "retry": {"attempts": 1, "backoff": 0}}, tmp_path)

    def running_on(did: str) -> bool:
        run = buyer.runner._runs.get(job_id)
        return run is not None and any(u.node == did and u.state == "running" for u in run.record.units)

    await until(lambda: running_on(first.did), "the unit running on the first provider")
    alloc_id = buyer.runner._runs[job_id].record.units[0].alloc_id
    assert buyer.runner.provider_lost(first.did, "discovery: peer.lost") == 1
    await until(lambda: running_on(second.did), "the unit placed again on the second provider", timeout=20)
    await buyer.runner.cancel(job_id)
    await ended(buyer.r, job_id)
    [lost] = buyer.book.records(first.did)
    assert lost.kind == "failure" and lost.cites["alloc"] == alloc_id and "alloc_interrupted" in lost.detail
    assert buyer.book.records(second.did) == []  # cancelled by the requester: nothing about the provider

    (tmp_path / "trap.wasm").write_bytes(wat.trap())
    trap = {"name": "trap", "module": "trap.wasm", "resources": {"cpu": 1, "memory": "64Mi"}, "timeout": 30}
    doc = await ended(buyer.r, await submit(buyer.r, {"name": "trap", "tasks": [trap]}, tmp_path))
    [unit] = doc["units"]
    assert doc["state"] == "failed" and unit["error"]["code"] == "module_trap" and unit["receipt"] is not None
    assert [r.kind for r in buyer.book.records(unit["node"])] == (["failure"] if unit["node"] == first.did else [])


class _RefusesTheRequest(AllocationManager):
    @behavior("/agora/alloc/start")
    async def start(self, ctx: CallContext) -> dict[str, Any]:
        raise AgoraError("invalid_argument", "this start asks for something this provider does not do")


async def test_a_start_refused_for_what_was_asked_is_no_evidence_but_an_unreachable_provider_is(
    net: MemoryNetwork, market: Market, make_buyer: Any, tmp_path: Path
) -> None:
    buyer: Buyer = await make_buyer()
    picky = await make_provider(net, market.home / "picky", manager_cls=_RefusesTheRequest)
    down = await make_provider(net, market.home / "down", manager_cls=_NeverStarts)
    market.providers.append((picky, await make_bidder(picky, make_offer(picky.did))))
    market.providers.append((down, await make_bidder(down, make_offer(down.did))))
    for p in (picky, down):
        await grant(p, buyer.r)  # the grant path (--node with a grant): no market round
    refused = await ended(buyer.r, await submit(buyer.r, spec(tmp_path), tmp_path, node=picky.did))
    assert refused["state"] == "failed" and refused["units"][0]["error"]["code"] == "invalid_argument"
    assert buyer.book.records(picky.did) == []
    gone = await ended(buyer.r, await submit(buyer.r, spec(tmp_path), tmp_path, node=down.did))
    assert gone["state"] == "failed" and gone["units"][0]["error"]["code"] == "unavailable"
    assert [r.kind for r in buyer.book.records(down.did)] == ["failure"]


async def test_a_provider_that_does_not_bid_in_time_is_late_and_answers_are_timed(
    market: Market, make_buyer: Any, tmp_path: Path
) -> None:
    silent = await market.add("silent", price=1)
    answers = await market.add("answers", price=2)
    silent.silent = True
    buyer: Buyer = await make_buyer()
    doc = await ended(buyer.r, await submit(buyer.r, spec(tmp_path), tmp_path))
    assert doc["state"] == "completed" and doc["units"][0]["node"] == answers.did
    [late] = buyer.book.records(silent.did)
    assert late.kind == "late" and late.cites["bid"] == silent.asked[0]
    assert buyer.book.report(silent.did).latency_ms is None  # no answer: no round-trip sample
    assert buyer.book.report(answers.did).latency_ms is not None


async def test_other_parts_record_disagreements_disputes_and_slashes_through_the_recorder(make_buyer: Any) -> None:
    buyer: Buyer = await make_buyer()
    p = "did:key:z6MkSomeProvider"
    await buyer.recorder.record(p, "disagreement", {"event": "42", "job": "job-1", "unit": "u#1"}, "outputs differ")
    await buyer.recorder.record(p, "slash", {"event": "43", "contract": "c-1"})
    await buyer.recorder.record(buyer.r.did, "failure", {"job": "job-2"})  # never about this node itself
    r = buyer.book.report(p)
    assert r.counts == {"disagreement": 1, "slash": 1} and r.score < 0.2
    assert buyer.book.records(buyer.r.did) == []


async def test_recording_that_goes_wrong_never_fails_the_job(
    market: Market, make_buyer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await market.add("one", price=1)
    buyer: Buyer = await make_buyer()

    async def broken(*args: Any, **kw: Any) -> bool:
        raise RuntimeError("the evidence store is broken")

    monkeypatch.setattr(buyer.book, "record", broken)
    monkeypatch.setattr(buyer.book, "observe_latency", broken)
    doc = await ended(buyer.r, await submit(buyer.r, spec(tmp_path), tmp_path))
    assert doc["state"] == "completed", doc["error"]
    assert buyer.book.providers() == []


async def test_a_provider_outvoted_by_redundancy_is_disagreement_evidence(
    market: Market, make_buyer: Any, tmp_path: Path
) -> None:
    await market.add("a", price=1)
    held = await market.add("held", price=2)
    liar = await market.add("liar", price=3)
    release = asyncio.Event()
    tamper(liar.provider.wasm, forge=b"made up\n")
    tamper(held.provider.wasm, hold=release)  # its honest result comes only after the liar's was compared
    buyer: Buyer = await make_buyer()
    job = spec(tmp_path, verification={"replicas": 3, "agree": 2})
    job_id = await submit(buyer.r, job, tmp_path)

    def liar_compared() -> bool:
        run = buyer.runner._runs.get(job_id)
        return run is not None and any(
            r["provider"] == liar.did and r["state"] == "completed" for r in run.record.units[0].replicas
        )

    await until(liar_compared, "the liar's replica compared")
    release.set()
    doc = await ended(buyer.r, job_id)
    assert doc["state"] == "completed", doc["error"]
    [lie] = [r for r in doc["units"][0]["replicas"] if r["provider"] == liar.did]
    [record] = [e for e in buyer.book.records(liar.did) if e.kind == "disagreement"]
    assert record.cites["receipt"] == lie["receipt"] and record.cites["job"] == doc["id"]
    assert buyer.book.report(liar.did).score < buyer.book.report(doc["units"][0]["node"]).score
