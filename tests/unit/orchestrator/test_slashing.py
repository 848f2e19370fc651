"""Staking and slashing on the requester's side: a job's `placement.min_stake` keeps providers without stake
out (their stake learned in one call per round), and a provider outvoted by redundancy is slashed at the
ledger on the signed receipts (`orchestrator/slashing.py`), recorded in the event log and as trust evidence.

Real providers of the compute harness (memory transport, real wasm); the ledger is an `InternalLedgerSettlement`
on a memory journal (the hub's service over the wire is covered by the Settlement conformance suite)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agora.clock import ManualClock
from agora.identity import Keypair
from agora.ledger import FEES, InternalLedgerSettlement, Ledger, MemoryJournalStore, TrustBook, stake_account
from agora.orchestrator.evidence import TrustRecorder
from agora.orchestrator.slashing import Slasher
from agora.orchestrator.stakes import StakeView
from tests.unit.compute.harness import Requester, until
from tests.unit.orchestrator.dishonest import tamper
from tests.unit.orchestrator.test_placement import Market, buyer, ended, index, market, spec, submit
from tests.unit.orchestrator.test_redundancy import replica_of, replica_state

__all__ = ["buyer", "index", "market"]  # fixtures

OPERATOR = Keypair.generate()


async def ledger_for(buyer: Requester, stakes: dict[str, int]) -> tuple[InternalLedgerSettlement, StakeView]:
    settle = InternalLedgerSettlement(Ledger(MemoryJournalStore(), clock=ManualClock()), OPERATOR.did)
    for did, amount in stakes.items():
        await settle.mint(did, amount, actor=OPERATOR.did, idem=f"fund-{did}")
        await settle.stake(did, amount, actor=did, idem=f"stake-{did}")
    view = StakeView(settle, clock=ManualClock())
    assert buyer.runner.placer is not None
    buyer.runner.placer.stakes = view
    return settle, view


async def test_min_stake_places_only_on_staked_providers_asking_the_ledger_once_per_round(
    market: Market, buyer: Requester, tmp_path: Path
) -> None:
    rich = await market.add("rich", price=5)
    poor = await market.add("poor", price=1)
    _, view = await ledger_for(buyer, {rich.did: 500, poor.did: 50})
    job_id = await submit(buyer, spec(tmp_path, placement={"min_stake": 100}), tmp_path)
    doc = await ended(buyer, job_id)
    assert doc["state"] == "completed", doc["error"]
    assert doc["units"][0]["node"] == rich.did  # the cheaper one holds too little stake
    assert view.calls == 1
    why = await buyer.runner.why(job_id)
    texts = [r["text"] for v in why["units"]["hello"]["last"]["decision"]["candidates"] for r in v["reasons"]]
    assert "stake_below_min: need 100, has 50" in texts


async def test_a_provider_outvoted_by_redundancy_is_slashed_on_the_signed_receipts(
    market: Market, buyer: Requester, tmp_path: Path
) -> None:
    honest = await market.add("honest", price=1)
    other = await market.add("other", price=2)
    liar = await market.add("liar", price=3)
    settle, _ = await ledger_for(buyer, {honest.did: 300, other.did: 300, liar.did: 300})
    trust = TrustRecorder(TrustBook(buyer.store), did=buyer.did)
    buyer.runner.slasher = Slasher(settle, buyer.store, did=buyer.did, trust=trust)
    release = asyncio.Event()
    tamper(liar.provider.wasm, forge=b"made up\n")
    tamper(other.provider.wasm, hold=release)  # its (honest) result comes in only after the liar's was compared
    doc = {"replicas": 3, "agree": 2}
    job_id = await submit(buyer, spec(tmp_path, verification=doc, placement={"min_stake": 120}), tmp_path)
    await until(lambda: replica_state(buyer, job_id, liar.did)() == "completed", "the liar's replica compared")
    release.set()
    done = await ended(buyer, job_id)
    assert done["state"] == "completed", done["error"]
    lie = replica_of(done["units"][0], liar.did)
    [event] = await buyer.store.events(kind="ledger.slashed", subject=job_id)
    assert event.data["provider"] == liar.did and event.data["slashed"] == 120
    assert event.data["receipts"][0] == lie["receipt"]
    assert await settle.balance(stake_account(liar.did)) == 180 and await settle.balance(FEES) == 120
    assert await settle.balance(stake_account(honest.did)) == 300
    [entry] = [e for e in await settle.entries() if e.kind == "slash"]
    assert entry.id == event.data["entry"] and entry.actor == buyer.did and entry.receipts[0] == lie["receipt"]
    [record] = [r for r in trust.book.records(liar.did) if r.kind == "slash"]
    assert record.cites["entry"] == entry.id
    assert (await settle.verify()).ok
