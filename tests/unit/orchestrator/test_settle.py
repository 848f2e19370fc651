"""Every market placement is a contract whose money moves through `Settlement`: a job placed on the memory
transport ends with a contract whose timeline is in order and whose escrow was released to the provider
(balances checked); a failure refunds; release twice and refund after release give their codes; pay_before
pays at award; no funds, no start.

Real providers of the compute harness (real wasm executor, the market stand-in bidder), the real placer,
and the real `InternalLedgerSettlement` over a memory journal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.ledger import InternalLedgerSettlement, Ledger, MemoryJournalStore, wallet
from agora.market import MemoryMarketIndex
from agora.market.contracts import ContractBook
from agora.models.contract import Contract
from agora.models.job import JobSpec, TaskSpec
from agora.orchestrator import JobRunner, RunnerSettings
from agora.orchestrator.placement import Placed, Placer
from agora.orchestrator.settle import Settler, SettleSettings
from agora.transport import MemoryNetwork
from agora.wire.market import Award, Bid, BidRequest, Commit
from tests.unit.compute import wat
from tests.unit.compute.harness import Requester, make_requester, until
from tests.unit.ledger.receipts import usage
from tests.unit.orchestrator.dishonest import tamper
from tests.unit.orchestrator.test_placement import FAST, Market, ended, index, market, spec, submit
from tests.unit.wire.test_market import request as bid_request

__all__ = ["index", "market"]  # fixtures

OPERATOR = Keypair.generate()
FUNDS = 10_000
HAPPY = ["created", "escrow_locked", "allocated", "running", "delivered", "countersigned", "escrow_released"]


class Buyer:
    def __init__(self, r: Requester, settler: Settler, settlement: InternalLedgerSettlement) -> None:
        self.r, self.settler, self.settlement = r, settler, settlement

    @property
    def runner(self) -> JobRunner:
        return self.r.runner

    async def balance(self, did: str) -> int:
        return await self.settlement.balance(wallet(did))

    async def contracts(self, job_id: str) -> list[Contract]:
        return await self.settler.contracts.list(job_id=job_id)


async def make_buyer(
    net: MemoryNetwork,
    home: Path,
    index: MemoryMarketIndex,
    *,
    funds: int = FUNDS,
    auto_release: bool = True,
    unsettled: bool = False,
) -> tuple[Buyer, MemoryJournalStore]:
    r = await make_requester(net, home)
    journal = MemoryJournalStore()
    settlement = InternalLedgerSettlement(Ledger(journal), OPERATOR.did)
    if funds:
        await settlement.mint(r.did, funds, actor=OPERATOR.did, idem=f"fund:{r.did}")
    settler = Settler(
        keypair=r.runtime.keypair,
        contracts=ContractBook(r.store),
        settlement=None if unsettled else settlement,
        settings=SettleSettings(auto_release=auto_release),
    )
    r.runtime.unregister(r.runner)
    r.runner = JobRunner(
        runtime=r.runtime,
        store=r.store,
        jobs_dir=r.home / "jobs",
        proofs_for=r.book.proofs_for,
        settings=RunnerSettings(status_wait_s=1.0, call_timeout=5.0, log_drain_s=1.0, transient_errors=2),
        placer=Placer(r.runtime, index, settings=FAST),
        settler=settler,
    )
    r.runtime.register(r.runner)
    return Buyer(r, settler, settlement), journal


@pytest.fixture
async def buyer(net: MemoryNetwork, tmp_path: Path, index: MemoryMarketIndex) -> AsyncIterator[Buyer]:
    b, _ = await make_buyer(net, tmp_path / "buyer", index)
    yield b
    await _close(b)


async def _close(b: Buyer) -> None:
    await b.runner.stop()
    await b.r.runtime.transport.close()
    await b.r.store.close()


async def test_a_market_job_settles_through_escrow(buyer: Buyer, market: Market, tmp_path: Path) -> None:
    bidder = await market.add("p1", price=3)
    job_id = await submit(buyer.r, spec(tmp_path), tmp_path)
    doc = await ended(buyer.r, job_id)
    assert doc["state"] == "completed", (doc["error"], doc["units"][0]["history"])
    [c] = await buyer.contracts(job_id)
    assert c.provider == bidder.did and c.requester == buyer.r.did and c.unit == "hello"
    assert c.events() == HAPPY and c.state == "escrow_released"
    times = [e.at for e in c.timeline]
    assert times == sorted(times)
    assert c.price > 0 and c.released == c.price == c.escrow_amount and c.refunded == 0
    # the evidence: bid, award, the allocation, the provider's usage receipt, the metering receipt, ledger entries
    ev = {e.event: e.evidence for e in c.timeline}
    assert {"bid", "award"} <= set(ev["created"]) and ev["allocated"]["alloc_id"] == doc["units"][0]["alloc_id"]
    assert ev["delivered"]["usage_receipt"] and ev["escrow_released"]["metering_receipt"]
    lock_id, release_id = ev["escrow_locked"]["ledger_entries"][0], ev["escrow_released"]["ledger_entries"][0]
    entries = {e.id: e for e in await buyer.settlement.entries()}
    assert entries[lock_id].kind == "escrow_lock" and entries[release_id].kind == "escrow_release"
    assert ev["escrow_released"]["metering_receipt"] in entries[release_id].receipts
    # each transition is in the node's event log with what it cites (the ledger entries moving its money)
    logged = {e.kind: e.data for e in await buyer.r.store.events(subject=c.contract_id)}
    assert [k for k in logged] == [f"contract.{name}" for name in HAPPY]
    assert logged["contract.escrow_locked"]["evidence"]["ledger_entries"] == [lock_id]
    assert logged["contract.escrow_released"]["evidence"]["ledger_entries"] == [release_id]
    assert await buyer.balance(buyer.r.did) == FUNDS - c.price
    assert await buyer.balance(bidder.did) == c.price
    escrow = await buyer.settlement.escrow(c.contract_id)
    assert escrow is not None and escrow.state == "released" and escrow.held == 0
    assert (await buyer.settlement.verify()).ok


async def test_a_failed_unit_is_refunded(buyer: Buyer, market: Market, tmp_path: Path) -> None:
    await market.add("p1", price=3)
    (tmp_path / "trap.wasm").write_bytes(wat.trap())
    doc = spec(tmp_path)
    doc["tasks"][0]["module"] = "trap.wasm"
    job_id = await submit(buyer.r, doc, tmp_path)
    assert (await ended(buyer.r, job_id))["state"] == "failed"
    [c] = await buyer.contracts(job_id)
    assert c.events() == ["created", "escrow_locked", "allocated", "running", "refunded"]
    assert c.refunded == c.price and c.released == 0
    assert await buyer.balance(buyer.r.did) == FUNDS  # every minor unit back
    escrow = await buyer.settlement.escrow(c.contract_id)
    assert escrow is not None and escrow.state == "refunded"


async def test_release_twice_and_refund_after_release(
    net: MemoryNetwork, market: Market, tmp_path: Path, index: MemoryMarketIndex
) -> None:
    b, _ = await make_buyer(net, tmp_path / "attended", index, auto_release=False)
    try:
        bidder = await market.add("p1", price=3)
        job_id = await submit(b.r, spec(tmp_path), tmp_path)
        assert (await ended(b.r, job_id))["state"] == "completed"
        [c] = await b.contracts(job_id)
        assert c.state == "delivered"  # an attended requester releases by hand
        with pytest.raises(AgoraError) as err:  # a delivered contract is not taken back by its requester
            await b.settler.refund(c.contract_id, reason="changed my mind")
        assert err.value.code == "contract_invalid_state"
        with pytest.raises(AgoraError) as err:
            await b.settler.release(c.contract_id, amount=c.price + 1)
        assert err.value.code == "invalid_argument"
        released = await b.settler.release(c.contract_id)
        assert released.state == "escrow_released"
        with pytest.raises(AgoraError) as err:
            await b.settler.release(c.contract_id)
        assert err.value.code == "contract_already_released"
        with pytest.raises(AgoraError) as err:
            await b.settler.refund(c.contract_id, reason="too late")
        assert err.value.code == "contract_already_settled"
        assert await b.balance(bidder.did) == c.price  # paid once
        assert await b.balance(b.r.did) == FUNDS - c.price
    finally:
        await _close(b)


async def test_a_partial_release_refunds_the_rest(
    net: MemoryNetwork, market: Market, tmp_path: Path, index: MemoryMarketIndex
) -> None:
    b, _ = await make_buyer(net, tmp_path / "partial", index, auto_release=False)
    try:
        bidder = await market.add("p1", price=3)
        job_id = await submit(b.r, spec(tmp_path), tmp_path)
        assert (await ended(b.r, job_id))["state"] == "completed"
        [c] = await b.contracts(job_id)
        part = c.price // 2
        done = await b.settler.release(c.contract_id, amount=part)
        assert done.state == "partially_released" and done.released == part and done.refunded == c.price - part
        assert await b.balance(bidder.did) == part and await b.balance(b.r.did) == FUNDS - part
    finally:
        await _close(b)


async def test_dispute_freezes_and_the_requester_cannot_release_then(
    net: MemoryNetwork, market: Market, tmp_path: Path, index: MemoryMarketIndex
) -> None:
    b, _ = await make_buyer(net, tmp_path / "dispute", index, auto_release=False)
    try:
        await market.add("p1", price=3)
        job_id = await submit(b.r, spec(tmp_path), tmp_path)
        assert (await ended(b.r, job_id))["state"] == "completed"
        [c] = await b.contracts(job_id)
        disputed = await b.settler.dispute(c.contract_id, reason="the output is wrong")
        assert disputed.state == "disputed" and disputed.timeline[-1].evidence["ledger_entries"]
        for act in (b.settler.release(c.contract_id), b.settler.refund(c.contract_id)):
            with pytest.raises(AgoraError) as err:
                await act
            assert err.value.code == "contract_disputed"
        escrow = await b.settlement.escrow(c.contract_id)
        assert escrow is not None and escrow.state == "disputed" and escrow.held == c.price
    finally:
        await _close(b)


async def test_no_funds_no_start(net: MemoryNetwork, market: Market, tmp_path: Path, index: MemoryMarketIndex) -> None:
    b, _ = await make_buyer(net, tmp_path / "poor", index, funds=0)
    try:
        bidder = await market.add("p1", price=3)
        job_id = await submit(b.r, spec(tmp_path), tmp_path)
        doc = await ended(b.r, job_id)
        assert doc["state"] == "failed" and doc["error"]["code"] == "insufficient_funds", doc
        [c] = await b.contracts(job_id)
        assert c.events() == ["created", "cancelled"] and "insufficient_funds" in c.timeline[-1].note
        assert doc["units"][0]["alloc_id"] is None  # it never started
        assert bidder.released  # the placement was given back
    finally:
        await _close(b)


async def test_pay_before_pays_at_award(
    net: MemoryNetwork, market: Market, tmp_path: Path, index: MemoryMarketIndex
) -> None:
    b, _ = await make_buyer(net, tmp_path / "prepay", index)
    try:
        bidder = await market.add("p1", price=3)
        job_id = await submit(b.r, spec(tmp_path, payment={"mode": "pay_before"}), tmp_path)
        assert (await ended(b.r, job_id))["state"] == "completed"
        [c] = await b.contracts(job_id)
        assert c.events() == ["created", "paid", "allocated", "running", "delivered"] and c.ended
        assert await b.balance(bidder.did) == c.price and await b.balance(b.r.did) == FUNDS - c.price
        entries = {e.id: e for e in await b.settlement.entries()}
        assert entries[c.timeline[1].evidence["ledger_entries"][0]].memo == f"contract {c.contract_id}"
    finally:
        await _close(b)


async def test_without_settlement_the_timeline_is_kept_and_no_money_moves(
    net: MemoryNetwork, market: Market, tmp_path: Path, index: MemoryMarketIndex
) -> None:
    b, _ = await make_buyer(net, tmp_path / "unsettled", index, unsettled=True)
    try:
        await market.add("p1", price=3)
        ok = await submit(b.r, spec(tmp_path), tmp_path)
        assert (await ended(b.r, ok))["state"] == "completed"
        [c] = await b.contracts(ok)
        assert c.payment_mode == "none" and c.escrow_amount == 0 and c.ended
        assert c.events() == ["created", "allocated", "running", "delivered"]
        (tmp_path / "trap.wasm").write_bytes(wat.trap())
        doc = spec(tmp_path)
        doc["tasks"][0]["module"] = "trap.wasm"
        bad = await submit(b.r, doc, tmp_path)
        assert (await ended(b.r, bad))["state"] == "failed"
        [f] = await b.contracts(bad)
        assert f.events() == ["created", "allocated", "running", "cancelled"]
        with pytest.raises(AgoraError) as err:
            await b.settler.refund(f.contract_id)
        assert err.value.code == "contract_already_settled"
        assert [e.kind for e in await b.settlement.entries()] == ["mint"]  # nothing else went through a ledger
    finally:
        await _close(b)


async def test_a_restart_unwinds_the_contracts_it_left_open(
    net: MemoryNetwork, tmp_path: Path, index: MemoryMarketIndex
) -> None:
    b, _ = await make_buyer(net, tmp_path / "restart", index)
    try:
        provider = Keypair.generate().did
        book = b.settler.contracts
        locked = Contract("contract-locked", b.r.did, provider, "job-1", "t", 40, 40, "pay_after", {})
        await book.create(locked, actor=b.r.did)
        entry = await b.settlement.lock(locked.contract_id, b.r.did, provider, 40, actor=b.r.did, idem="l")
        await book.record(locked.contract_id, "escrow_locked", actor=b.r.did, evidence={"ledger_entries": [entry.id]})
        fresh = Contract("contract-fresh", b.r.did, provider, "job-2", "t", 40, 40, "pay_after", {})
        await book.create(fresh, actor=b.r.did)
        assert await b.balance(b.r.did) == FUNDS - 40
        assert await b.settler.recover() == 2
        assert (await book.get("contract-locked")).events() == ["created", "escrow_locked", "refunded"]
        assert (await book.get("contract-fresh")).events() == ["created", "cancelled"]
        assert await b.balance(b.r.did) == FUNDS
        assert await b.settler.recover() == 0  # nothing left open
    finally:
        await _close(b)


async def test_pay_before_without_a_receipt_is_disputed_for_the_operator(
    net: MemoryNetwork, market: Market, tmp_path: Path, index: MemoryMarketIndex
) -> None:
    b, _ = await make_buyer(net, tmp_path / "prepaid-fail", index)
    try:
        bidder = await market.add("p1", price=3)
        (tmp_path / "trap.wasm").write_bytes(wat.trap())
        doc = spec(tmp_path, payment={"mode": "pay_before"})
        doc["tasks"][0]["module"] = "trap.wasm"
        job_id = await submit(b.r, doc, tmp_path)
        assert (await ended(b.r, job_id))["state"] == "failed"
        [c] = await b.contracts(job_id)
        assert c.events() == ["created", "paid", "allocated", "running", "disputed"]
        assert "the provider or the hub operator refunds" in c.timeline[-1].note
        assert await b.balance(bidder.did) == c.price  # the requester cannot take it back on its own
    finally:
        await _close(b)


async def test_a_restart_finishes_an_automatic_release_it_cut_short(
    net: MemoryNetwork, tmp_path: Path, index: MemoryMarketIndex
) -> None:
    b, _ = await make_buyer(net, tmp_path / "cut", index)
    try:
        provider = Keypair.generate()
        book = b.settler.contracts
        c = Contract("contract-cut", b.r.did, provider.did, "job-1", "t", 40, 40, "pay_after", {})
        await book.create(c, actor=b.r.did)
        await b.settlement.lock(c.contract_id, b.r.did, provider.did, 40, actor=b.r.did, idem="l")
        for event in ("escrow_locked", "allocated", "running"):
            await book.record(c.contract_id, event, actor=b.r.did)
        receipt = usage(provider, b.r.did)
        await book.record(c.contract_id, "delivered", actor=provider.did, usage_receipt=receipt.raw.hex())
        assert await b.settler.recover() == 1
        done = await book.get(c.contract_id)
        assert done.state == "escrow_released" and done.released == 40
        assert await b.balance(provider.did) == 40
    finally:
        await _close(b)


def _placed(requester: Keypair, provider: Keypair, request_id: str, price: int) -> Placed:
    """A committed placement, every message signed by its party (as the placer gets it)."""
    req = bid_request(request_id=request_id)
    req = BidRequest.issue(
        requester,
        provider=provider.did,
        request_id=request_id,
        job_id=req.job_id,
        task=req.task,
        offer_id=req.offer_id,
        need=req.need,
        engine=req.engine,
        duration_s=req.duration_s,
        max_price=None,
        respond_by=req.respond_by,
        iat=req.iat,
    )
    bid = Bid.issue(provider, req, price=price, valid_until=150, iat=110)
    award = Award.issue(requester, bid, commit_by=140, iat=120)
    return Placed(provider.did, request_id, bid, award, Commit.issue(provider, award, start_by=170, iat=130))


async def test_replicas_of_one_unit_are_contracts_of_their_own(
    net: MemoryNetwork, tmp_path: Path, index: MemoryMarketIndex
) -> None:
    """Placements of one unit that run at once (`slot`: a verified job's replicas) never unwind each other."""
    b, _ = await make_buyer(net, tmp_path / "replicas", index)
    try:
        me, one, two = b.r.runtime.keypair, Keypair.generate(), Keypair.generate()
        job = JobSpec(name="j", tasks=(TaskSpec(name="t", module="m.wasm"),))
        first = await b.settler.placed("job-1", "t", _placed(me, one, "r-1", 40), job, slot="t#0")
        second = await b.settler.placed("job-1", "t", _placed(me, two, "r-2", 40), job, slot="t#1")
        assert b.settler.contract_of("job-1", "t", slot="t#0") == first.contract_id
        assert b.settler.contract_of("job-1", "t", slot="t#1") == second.contract_id
        for c in (first, second):
            assert (await b.settler.contracts.get(c.contract_id)).state == "escrow_locked"  # both held
        await b.settler.attempt_failed("job-1", "t", AgoraError("task_failed", "x"), slot="t#1")
        assert (await b.settler.contracts.get(second.contract_id)).state == "refunded"
        assert (await b.settler.contracts.get(first.contract_id)).state == "escrow_locked"
        assert await b.balance(me.did) == FUNDS - 40
    finally:
        await _close(b)


async def test_a_verified_job_pays_the_agreeing_replicas_and_refunds_the_one_that_disagreed(
    buyer: Buyer, market: Market, tmp_path: Path
) -> None:
    honest = await market.add("honest", price=1)
    held = await market.add("held", price=2)
    liar = await market.add("liar", price=3)
    release = asyncio.Event()
    tamper(liar.provider.wasm, forge=b"made up\n")
    tamper(held.provider.wasm, hold=release)  # its honest result comes only after the liar's was compared
    job_id = await submit(buyer.r, spec(tmp_path, verification={"replicas": 3, "agree": 2}), tmp_path)

    def liar_compared() -> bool:
        run = buyer.runner._runs.get(job_id)
        reps = run.record.units[0].replicas if run is not None else []
        return any(r["provider"] == liar.did and r["state"] == "completed" for r in reps)

    await until(liar_compared, "the liar's replica compared")
    release.set()
    doc = await ended(buyer.r, job_id)
    assert doc["state"] == "completed", doc["error"]
    by_provider = {c.provider: c for c in await buyer.contracts(job_id)}
    assert set(by_provider) == {honest.did, held.did, liar.did}  # one contract per replica
    assert by_provider[honest.did].state == by_provider[held.did].state == "escrow_released"
    assert by_provider[liar.did].state == "refunded"  # outvoted: its signed outputs were not the answer
    paid = by_provider[honest.did].price + by_provider[held.did].price
    assert await buyer.balance(buyer.r.did) == FUNDS - paid
    assert await buyer.balance(liar.did) == 0 and await buyer.balance(honest.did) == by_provider[honest.did].price


async def test_a_placement_on_the_requesters_own_node_moves_no_money(
    net: MemoryNetwork, tmp_path: Path, index: MemoryMarketIndex
) -> None:
    """The market may pick the requester's own offer: paying oneself is nothing (and an escrow's payer and
    payee are two DIDs), so that contract keeps its timeline with no money, and the job is not failed."""
    b, _ = await make_buyer(net, tmp_path / "self", index)
    try:
        me = b.r.runtime.keypair
        job = JobSpec(name="j", tasks=(TaskSpec(name="t", module="m.wasm"),))
        c = await b.settler.placed("job-1", "t", _placed(me, me, "r-1", 40), job)
        assert c.payment_mode == "none" and c.escrow_amount == 0
        await b.settler.started("job-1", "t", "alloc-1")
        await b.settler.delivered("job-1", "t", usage(me, me.did))
        done = await b.settler.contracts.get(c.contract_id)
        assert done.events() == ["created", "allocated", "running", "delivered"] and done.ended
        assert await b.balance(me.did) == FUNDS
        assert [e.kind for e in await b.settlement.entries()] == ["mint"]
    finally:
        await _close(b)


class _Unreachable:
    """The ledger as a node sees it right after a restart: no hub known yet (`ledger_unavailable`), `fails` times."""

    def __init__(self, real: InternalLedgerSettlement, fails: int) -> None:
        self.real, self.fails = real, fails

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)

    async def refund(self, contract: str, *, actor: str, idem: str, reason: str = "") -> object:
        if self.fails > 0:
            self.fails -= 1
            raise AgoraError("ledger_unavailable", "this node knows no hub that runs the ledger")
        return await self.real.refund(contract, actor=actor, idem=idem, reason=reason)


async def test_contracts_a_restart_could_not_unwind_are_tried_again_and_only_those(
    net: MemoryNetwork, tmp_path: Path, index: MemoryMarketIndex
) -> None:
    b, _ = await make_buyer(net, tmp_path / "later", index)
    try:
        provider = Keypair.generate().did
        book = b.settler.contracts
        left = Contract("contract-left", b.r.did, provider, "job-1", "t", 40, 40, "pay_after", {})
        await book.create(left, actor=b.r.did)
        entry = await b.settlement.lock(left.contract_id, b.r.did, provider, 40, actor=b.r.did, idem="l")
        await book.record(left.contract_id, "escrow_locked", actor=b.r.did, evidence={"ledger_entries": [entry.id]})
        b.settler.settlement = _Unreachable(b.settlement, fails=2)  # type: ignore[assignment]
        await b.settler.recover()
        assert b.settler.leftover == ["contract-left"]
        assert (await book.get("contract-left")).state == "escrow_locked"
        # a contract placed after the start is not touched by the retries
        new = Contract("contract-new", b.r.did, provider, "job-2", "t", 40, 40, "pay_after", {})
        await book.create(new, actor=b.r.did)
        entry = await b.settlement.lock(new.contract_id, b.r.did, provider, 40, actor=b.r.did, idem="n")
        await book.record(new.contract_id, "escrow_locked", actor=b.r.did, evidence={"ledger_entries": [entry.id]})
        assert await b.settler.unwind_leftover(attempts=5, max_wait_s=0.01) == 0
        assert (await book.get("contract-left")).events() == ["created", "escrow_locked", "refunded"]
        assert (await book.get("contract-new")).state == "escrow_locked"
        assert await b.balance(b.r.did) == FUNDS - 40
    finally:
        await _close(b)
