"""The conformance suite of `Settlement`: `InternalLedgerSettlement` over every journal store.

A subclass provides `open_store`: a function returning a new store handle on ONE shared journal (the same
list, file or stream), so the suite can also run two ledgers (two hubs) on the same journal.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import AsyncIterator, Callable

import pytest

from agora.clock import ManualClock
from agora.codec import CID
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.ledger import (
    FEES,
    InternalLedgerSettlement,
    JournalStore,
    Ledger,
    Settlement,
    escrow_account,
    stake_account,
    wallet,
)
from agora.ucan import seal_envelope
from agora.wire import OutputDigest, UsageReceipt
from agora.wire.inference import MeteringRecord
from agora.wire.settle import INFERENCE_SETTLE_TAG, countersign_record, inference_contract
from tests.unit.ledger.receipts import inference_record, metering, usage

OpenStore = Callable[[], JournalStore]
OPERATOR = Keypair.generate()
PAYER = Keypair.generate()
PAYEE = Keypair.generate()
STRANGER = Keypair.generate()
AGREEING = (Keypair.generate(), Keypair.generate())


def _out(fill: str) -> OutputDigest:
    return OutputDigest(name="out", path="out.txt", sha256=fill * 64, size=3)


def _forge_inference(signer: Keypair, rec: MeteringRecord, *, amount: int | None = None) -> bytes:
    """An inference settlement sealed by `signer` whatever the record says (countersign_record refuses to)."""
    payload = {
        "meter": rec.raw,
        "mcid": rec.cid,
        "contract": inference_contract(rec.quote),
        "amount": rec.price if amount is None else amount,
        "req": signer.did,
        "iat": 2,
    }
    return seal_envelope(signer, INFERENCE_SETTLE_TAG, payload)


async def raises(code: str, call: object) -> AgoraError:
    assert asyncio.iscoroutine(call)
    with pytest.raises(AgoraError) as raised:
        await call
    assert raised.value.code == code, raised.value
    return raised.value


class SettlementConformance:
    @pytest.fixture
    def open_store(self) -> OpenStore:  # overridden by each implementation's test module
        raise NotImplementedError

    @pytest.fixture
    async def settle(self, open_store: OpenStore) -> AsyncIterator[InternalLedgerSettlement]:
        s = InternalLedgerSettlement(Ledger(open_store(), clock=ManualClock()), OPERATOR.did)
        yield s
        await s.ledger.close()

    @pytest.fixture
    async def funded(self, settle: InternalLedgerSettlement) -> InternalLedgerSettlement:
        await settle.mint(PAYER.did, 1000, actor=OPERATOR.did, idem="fund-payer")
        return settle

    async def _sum_is_zero(self, s: InternalLedgerSettlement) -> None:
        report = await s.verify()
        assert report.ok, report.problems
        assert sum(report.balances.values()) == 0

    # -- mint, transfer, idempotency -----------------------------------------------------------------

    async def test_the_operator_mints_and_no_one_else_may(self, settle: InternalLedgerSettlement) -> None:
        assert isinstance(settle, Settlement)
        entry = await settle.mint(PAYER.did, 500, actor=OPERATOR.did, idem="m1", memo="devnet funds")
        assert entry.kind == "mint" and entry.seq == 1 and entry.prev == ""
        assert await settle.balance(PAYER.did) == 500
        assert await settle.balance("issuance") == -500
        await raises("ledger_unauthorized", settle.mint(STRANGER.did, 5, actor=STRANGER.did, idem="m2"))
        await raises("invalid_argument", settle.mint(PAYER.did, 0, actor=OPERATOR.did, idem="m3"))
        await raises("invalid_argument", settle.mint(PAYER.did, -5, actor=OPERATOR.did, idem="m4"))
        assert await settle.balance(STRANGER.did) == 0
        await self._sum_is_zero(settle)

    async def test_a_retry_with_the_same_key_returns_the_first_entry_and_changes_nothing(
        self, funded: InternalLedgerSettlement
    ) -> None:
        first = await funded.transfer(PAYER.did, PAYEE.did, 100, actor=PAYER.did, idem="t1")
        again = await funded.transfer(PAYER.did, PAYEE.did, 100, actor=PAYER.did, idem="t1")
        assert again == first
        assert (await funded.balance(PAYER.did), await funded.balance(PAYEE.did)) == (900, 100)
        err = await raises(
            "idempotency_conflict", funded.transfer(PAYER.did, PAYEE.did, 101, actor=PAYER.did, idem="t1")
        )
        assert err.details["seq"] == first.seq
        assert len(await funded.entries()) == 2

    async def test_transfers_need_the_money_and_the_owner(self, funded: InternalLedgerSettlement) -> None:
        err = await raises("insufficient_funds", funded.transfer(PAYER.did, PAYEE.did, 1001, actor=PAYER.did, idem="t"))
        assert err.details == {"account": wallet(PAYER.did), "balance": 1000, "needed": 1001}
        await raises("ledger_unauthorized", funded.transfer(PAYER.did, STRANGER.did, 1, actor=STRANGER.did, idem="x"))
        await raises("invalid_argument", funded.transfer(PAYER.did, PAYER.did, 1, actor=PAYER.did, idem="y"))
        await raises(
            "invalid_argument",
            funded.transfer(PAYER.did, escrow_account("c"), 1, actor=PAYER.did, idem="z"),
        )
        fee = await funded.transfer(PAYER.did, FEES, 7, actor=PAYER.did, idem="fee")
        assert fee.kind == "fee" and await funded.balance(FEES) == 7
        assert await funded.balance(PAYER.did) == 993
        await self._sum_is_zero(funded)

    async def test_concurrent_spenders_never_overdraw(self, funded: InternalLedgerSettlement) -> None:
        calls = [funded.transfer(PAYER.did, PAYEE.did, 100, actor=PAYER.did, idem=f"c{i}") for i in range(15)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        ok = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, AgoraError) and r.code == "insufficient_funds"]
        assert (len(ok), len(refused)) == (10, 5)
        assert await funded.balance(PAYER.did) == 0 and await funded.balance(PAYEE.did) == 1000
        await self._sum_is_zero(funded)

    async def test_two_ledgers_on_one_journal_never_spend_the_same_money_twice(
        self, funded: InternalLedgerSettlement, open_store: OpenStore
    ) -> None:
        other = InternalLedgerSettlement(Ledger(open_store(), clock=ManualClock()), OPERATOR.did)
        try:
            assert await other.balance(PAYER.did) == 1000  # it reads the shared journal
            calls = []
            for i in range(8):
                s = funded if i % 2 else other
                calls.append(s.transfer(PAYER.did, PAYEE.did, 250, actor=PAYER.did, idem=f"h{i}"))
            results = await asyncio.gather(*calls, return_exceptions=True)
            assert sum(not isinstance(r, BaseException) for r in results) == 4
            assert all(
                not isinstance(r, BaseException) or (isinstance(r, AgoraError) and r.code == "insufficient_funds")
                for r in results
            )
            # a retry of a key the other ledger used returns that first entry
            first = next(r for r in results if not isinstance(r, BaseException))
            assert await other.transfer(PAYER.did, PAYEE.did, 250, actor=PAYER.did, idem=first.idem) == first
            assert await funded.transfer(PAYER.did, PAYEE.did, 250, actor=PAYER.did, idem=first.idem) == first
            for s in (funded, other):
                assert await s.balance(PAYER.did) == 0 and await s.balance(PAYEE.did) == 1000
            await self._sum_is_zero(other)
        finally:
            await other.ledger.close()

    # -- escrow ---------------------------------------------------------------------------------------

    async def _lock(self, s: InternalLedgerSettlement, contract: str = "c1", amount: int = 300) -> None:
        entry = await s.lock(contract, PAYER.did, PAYEE.did, amount, actor=PAYER.did, idem=f"lock-{contract}")
        assert entry.kind == "escrow_lock" and entry.contract == contract

    async def test_lock_moves_the_payers_money_into_the_escrow_once(self, funded: InternalLedgerSettlement) -> None:
        await raises("ledger_unauthorized", funded.lock("c1", PAYER.did, PAYEE.did, 10, actor=PAYEE.did, idem="l0"))
        await raises("insufficient_funds", funded.lock("c1", PAYER.did, PAYEE.did, 5000, actor=PAYER.did, idem="l1"))
        await raises("invalid_argument", funded.lock("c1", PAYER.did, PAYER.did, 10, actor=PAYER.did, idem="l2"))
        await raises("invalid_argument", funded.lock("c" * 257, PAYER.did, PAYEE.did, 10, actor=PAYER.did, idem="l4"))
        await self._lock(funded)
        await self._lock(funded)  # the same key: the same lock
        await raises("escrow_already_locked", funded.lock("c1", PAYER.did, PAYEE.did, 1, actor=PAYER.did, idem="l3"))
        state = await funded.escrow("c1")
        assert state is not None and (state.state, state.amount_locked, state.held) == ("locked", 300, 300)
        assert (state.payer, state.payee) == (PAYER.did, PAYEE.did)
        assert await funded.balance(escrow_account("c1")) == 300 and await funded.balance(PAYER.did) == 700
        assert await funded.escrow("nope") is None

    async def test_a_release_pays_the_payee_against_the_dual_signed_receipt_once(
        self, funded: InternalLedgerSettlement
    ) -> None:
        await self._lock(funded)
        receipt = metering(PAYEE, PAYER, "c1", 300)
        entry = await funded.release("c1", receipt, actor=PAYEE.did, idem="r1")
        assert entry.kind == "escrow_release" and len(entry.receipts) == 2
        assert await funded.release("c1", receipt, actor=PAYEE.did, idem="r1") == entry
        await raises("contract_already_released", funded.release("c1", receipt, actor=PAYEE.did, idem="r2"))
        await raises("contract_already_settled", funded.refund("c1", actor=PAYEE.did, idem="f1"))
        await raises("contract_already_settled", funded.dispute("c1", actor=PAYER.did, idem="d1", reason="late"))
        state = await funded.escrow("c1")
        assert state is not None and (state.state, state.released, state.refunded, state.held) == (
            "released",
            300,
            0,
            0,
        )
        assert await funded.balance(PAYEE.did) == 300 and await funded.balance(PAYER.did) == 700
        assert [e.kind for e in await funded.entries(escrow_account("c1"))] == ["escrow_lock", "escrow_release"]
        await self._sum_is_zero(funded)

    async def test_a_partial_release_pays_the_delivered_part_and_refunds_the_rest_in_the_same_entry(
        self, funded: InternalLedgerSettlement
    ) -> None:
        await self._lock(funded)
        entry = await funded.release(
            "c1", metering(PAYEE, PAYER, "c1", 120, units=2, total=5), actor=PAYER.did, idem="r"
        )
        assert entry.memo == "2/5 units delivered"
        state = await funded.escrow("c1")
        assert state is not None and (state.state, state.released, state.refunded) == ("partially_released", 120, 180)
        assert await funded.balance(PAYEE.did) == 120 and await funded.balance(PAYER.did) == 880
        assert await funded.balance(escrow_account("c1")) == 0
        await raises(
            "contract_already_released",
            funded.release("c1", metering(PAYEE, PAYER, "c1", 1), actor=PAYEE.did, idem="x"),
        )
        await self._sum_is_zero(funded)

    async def test_a_release_with_a_receipt_not_signed_by_both_parties_or_for_another_contract_is_refused(
        self, funded: InternalLedgerSettlement
    ) -> None:
        await self._lock(funded)
        other_provider = Keypair.generate()
        bad = {
            "countersigned by a stranger": metering(PAYEE, STRANGER, "c1", 300),
            "usage of another provider": metering(other_provider, PAYER, "c1", 300),
            "another contract": metering(PAYEE, PAYER, "c2", 300),
            "more than locked": metering(PAYEE, PAYER, "c1", 301),
            "only the provider's usage receipt": usage(PAYEE, PAYER.did).raw,
        }
        forged = bytearray(metering(PAYEE, PAYER, "c1", 300))
        forged[-5] ^= 1
        bad["forged"] = bytes(forged)
        for why, raw in bad.items():
            err = await raises("receipt_invalid", funded.release("c1", raw, actor=PAYEE.did, idem=f"bad-{why}"))
            assert "metering receipt" in err.message, why
        state = await funded.escrow("c1")
        assert state is not None and state.state == "locked" and state.held == 300

    async def test_an_inference_escrow_is_released_against_the_record_countersigned_by_its_requester(
        self, funded: InternalLedgerSettlement
    ) -> None:
        rec = inference_record(PAYEE, PAYER.did)  # priced 200
        contract = inference_contract(rec.quote)
        await self._lock(funded, contract, 300)
        other = inference_record(PAYEE, PAYER.did, nonce="other")  # another quote: another escrow
        dear = inference_record(PAYEE, PAYER.did, tokens_in=5000)  # priced 700, over the 300 locked
        strangers = inference_record(PAYEE, STRANGER.did)
        bad = {
            "only the provider's record": rec.raw,
            "countersigned by a stranger": _forge_inference(STRANGER, rec),
            "record of another provider": countersign_record(PAYER, inference_record(STRANGER, PAYER.did), iat=2),
            "record for another requester": countersign_record(STRANGER, strangers, iat=2),
            "another escrow's record": countersign_record(PAYER, other, iat=2),
            "more than locked": countersign_record(PAYER, dear, iat=2),
            "an amount not the record's price": _forge_inference(PAYER, rec, amount=100),
        }
        forged = bytearray(countersign_record(PAYER, rec, iat=2))
        forged[-5] ^= 1
        bad["forged"] = bytes(forged)
        for why, raw in bad.items():
            err = await raises("receipt_invalid", funded.release(contract, raw, actor=PAYER.did, idem=f"bad-{why}"))
            assert "metering receipt" in err.message, why
        state = await funded.escrow(contract)
        assert state is not None and state.state == "locked" and state.held == 300
        evidence = countersign_record(PAYER, rec, iat=2)
        entry = await funded.release(contract, evidence, actor=PAYER.did, idem="r")
        assert entry.receipts == (str(CID.of(evidence)), str(rec.cid)) and "inference m1" in entry.memo
        state = await funded.escrow(contract)
        assert state is not None and (state.state, state.released, state.refunded) == ("partially_released", 200, 100)
        assert await funded.balance(PAYEE.did) == 200 and await funded.balance(PAYER.did) == 800
        await self._sum_is_zero(funded)

    async def test_refund_rules_payee_any_time_payer_before_delivery_operator_always(
        self, funded: InternalLedgerSettlement
    ) -> None:
        for c in ("a", "b", "c", "d"):
            await self._lock(funded, c, 100)
        # the payer, before any delivery receipt
        assert (await funded.refund("a", actor=PAYER.did, idem="fa", reason="cancelled")).kind == "escrow_refund"
        # after the provider recorded its delivery, the payer alone may not; the payee and operator may
        delivered = usage(PAYEE, PAYER.did, alloc="alloc-b")
        await raises("ledger_unauthorized", funded.deliver("b", delivered.raw, actor=PAYER.did, idem="db0"))
        await raises("receipt_invalid", funded.deliver("b", usage(STRANGER, PAYER.did).raw, actor=PAYEE.did, idem="x"))
        entry = await funded.deliver("b", delivered.raw, actor=PAYEE.did, idem="db")
        assert entry.postings == () and entry.receipts == (str(delivered.cid),)
        await raises("already_exists", funded.deliver("b", delivered.raw, actor=PAYEE.did, idem="db2"))
        await raises("ledger_unauthorized", funded.refund("b", actor=PAYER.did, idem="fb"))
        await raises("ledger_unauthorized", funded.refund("b", actor=STRANGER.did, idem="fb2"))
        await funded.refund("b", actor=PAYEE.did, idem="fb3", reason="could not finish")
        await funded.refund("c", actor=OPERATOR.did, idem="fc")
        await raises("contract_already_settled", funded.refund("c", actor=OPERATOR.did, idem="fc2"))
        await raises(
            "contract_already_settled", funded.release("c", metering(PAYEE, PAYER, "c", 1), actor=PAYEE.did, idem="r")
        )
        await raises("escrow_not_found", funded.refund("zzz", actor=OPERATOR.did, idem="fz"))
        for c in ("a", "b", "c"):
            state = await funded.escrow(c)
            assert state is not None and (state.state, state.refunded, state.released) == ("refunded", 100, 0)
        assert await funded.balance(PAYER.did) == 900  # 1000 - 100 still locked in "d"
        await self._sum_is_zero(funded)

    async def test_a_dispute_freezes_the_escrow_until_the_operator_resolves_it(
        self, funded: InternalLedgerSettlement
    ) -> None:
        await self._lock(funded)
        await raises("escrow_invalid_state", funded.resolve("c1", 10, actor=OPERATOR.did, idem="early", decision="x"))
        await raises("ledger_unauthorized", funded.dispute("c1", actor=STRANGER.did, idem="d0", reason="?"))
        await funded.dispute("c1", actor=PAYER.did, idem="d1", reason="outputs are wrong")
        await raises("contract_disputed", funded.dispute("c1", actor=PAYEE.did, idem="d2", reason="no"))
        receipt = metering(PAYEE, PAYER, "c1", 300)
        await raises("contract_disputed", funded.release("c1", receipt, actor=PAYEE.did, idem="r"))
        await raises("contract_disputed", funded.refund("c1", actor=PAYEE.did, idem="f"))
        await raises("ledger_unauthorized", funded.resolve("c1", 100, actor=PAYER.did, idem="s0", decision="mine"))
        await raises("invalid_argument", funded.resolve("c1", 301, actor=OPERATOR.did, idem="s1", decision="too much"))
        entry = await funded.resolve("c1", 100, actor=OPERATOR.did, idem="s2", decision="a third was delivered")
        assert entry.kind == "escrow_resolve"
        state = await funded.escrow("c1")
        assert state is not None
        assert (state.state, state.released, state.refunded, state.decision) == (
            "resolved",
            100,
            200,
            "a third was delivered",
        )
        assert state.dispute_reason == "outputs are wrong"
        await raises("contract_already_settled", funded.resolve("c1", 0, actor=OPERATOR.did, idem="s3", decision="y"))
        assert await funded.balance(PAYEE.did) == 100 and await funded.balance(PAYER.did) == 900
        await self._sum_is_zero(funded)

    # -- stake ------------------------------------------------------------------------------------------

    async def test_stake_is_locked_by_its_owner_and_slashed_by_the_operator_with_evidence(
        self, funded: InternalLedgerSettlement
    ) -> None:
        await funded.mint(PAYEE.did, 500, actor=OPERATOR.did, idem="fund-payee")
        await raises("ledger_unauthorized", funded.stake(PAYEE.did, 100, actor=STRANGER.did, idem="s0"))
        await funded.stake(PAYEE.did, 400, actor=PAYEE.did, idem="s1")
        assert await funded.balance(stake_account(PAYEE.did)) == 400 and await funded.balance(PAYEE.did) == 100
        await raises(
            "ledger_unauthorized",
            funded.slash(PAYEE.did, 50, evidence=["bafyx"], to=PAYER.did, actor=PAYER.did, idem="x0"),
        )
        await raises(
            "invalid_argument", funded.slash(PAYEE.did, 50, evidence=[], to=PAYER.did, actor=OPERATOR.did, idem="x1")
        )
        entry = await funded.slash(
            PAYEE.did, 150, evidence=["bafyevidence"], to=PAYER.did, actor=OPERATOR.did, idem="x2", memo="no start"
        )
        assert entry.kind == "slash" and entry.receipts == ("bafyevidence",)
        await raises("insufficient_funds", funded.unstake(PAYEE.did, 300, actor=PAYEE.did, idem="u0"))
        await funded.unstake(PAYEE.did, 250, actor=PAYEE.did, idem="u1")
        assert await funded.balance(stake_account(PAYEE.did)) == 0
        assert await funded.balance(PAYEE.did) == 350 and await funded.balance(PAYER.did) == 1150
        await self._sum_is_zero(funded)

    async def test_stakes_of_many_dids_in_one_call(self, funded: InternalLedgerSettlement) -> None:
        await funded.mint(PAYEE.did, 500, actor=OPERATOR.did, idem="fund-payee")
        await funded.stake(PAYEE.did, 120, actor=PAYEE.did, idem="s1")
        assert await funded.stakes([PAYEE.did, STRANGER.did, PAYEE.did]) == {PAYEE.did: 120, STRANGER.did: 0}

    async def test_a_slash_on_proof_takes_the_stake_to_fees_once_per_unit_with_the_receipts(
        self, funded: InternalLedgerSettlement
    ) -> None:
        await funded.mint(PAYEE.did, 500, actor=OPERATOR.did, idem="fund-payee")
        await funded.stake(PAYEE.did, 300, actor=PAYEE.did, idem="s1")
        bad = usage(PAYEE, PAYER.did, alloc="a-bad", outputs=[_out("b")]).raw
        good = [usage(k, PAYER.did, alloc=f"a-{i}", outputs=[_out("a")]).raw for i, k in enumerate(AGREEING)]
        # a claim that proves nothing: one agreeing receipt, the same outputs, someone else's unit
        await raises("slash_unproven", funded.slash_proven(bad, good[:1], 100, actor=PAYER.did))
        same = usage(PAYEE, PAYER.did, alloc="a-same", outputs=[_out("a")]).raw
        await raises("slash_unproven", funded.slash_proven(same, good, 100, actor=PAYER.did))
        await raises("slash_unproven", funded.slash_proven(bad, good, 100, actor=STRANGER.did))
        forged = bytearray(bad)
        forged[-5] ^= 1
        await raises("receipt_invalid", funded.slash_proven(bytes(forged), good, 100, actor=PAYER.did))
        assert await funded.balance(stake_account(PAYEE.did)) == 300
        entry = await funded.slash_proven(bad, good, 100, actor=PAYER.did)
        assert entry.kind == "slash" and entry.actor == PAYER.did
        assert entry.receipts[0] == str(UsageReceipt.open(bad).cid) and len(entry.receipts) == 3
        assert entry.meta["receipts"].split(",")[0] == base64.b64encode(bad).decode()
        again = await funded.slash_proven(bad, list(reversed(good)), 100, actor=PAYER.did)
        assert again == entry  # once per (job, unit, provider)
        assert await funded.balance(stake_account(PAYEE.did)) == 200 and await funded.balance(FEES) == 100
        assert await funded.balance(PAYER.did) == 1000  # the claimant gains nothing
        other = usage(PAYEE, PAYER.did, alloc="a-bad2", task="second", outputs=[_out("b")]).raw
        more = [
            usage(k, PAYER.did, alloc=f"b-{i}", task="second", outputs=[_out("a")]).raw for i, k in enumerate(AGREEING)
        ]
        capped = await funded.slash_proven(other, more, 900, actor=PAYER.did)  # at most what is staked
        assert capped.meta["asked"] == "900" and await funded.balance(stake_account(PAYEE.did)) == 0
        third = usage(PAYEE, PAYER.did, alloc="a-bad3", task="third", outputs=[_out("b")]).raw
        last = [
            usage(k, PAYER.did, alloc=f"c-{i}", task="third", outputs=[_out("a")]).raw for i, k in enumerate(AGREEING)
        ]
        await raises("insufficient_funds", funded.slash_proven(third, last, 10, actor=PAYER.did))
        await self._sum_is_zero(funded)

    async def test_entries_of_an_account_in_order_and_the_chain_verifies(
        self, funded: InternalLedgerSettlement
    ) -> None:
        await funded.transfer(PAYER.did, PAYEE.did, 5, actor=PAYER.did, idem="e1")
        await funded.mint(STRANGER.did, 5, actor=OPERATOR.did, idem="e2")
        await funded.transfer(PAYEE.did, PAYER.did, 1, actor=PAYEE.did, idem="e3")
        mine = await funded.entries(PAYEE.did)
        assert [e.idem for e in mine] == ["e1", "e3"]
        assert [e.idem for e in await funded.entries(PAYER.did, since=mine[0].seq)] == ["e3"]
        everything = await funded.entries()
        assert [e.seq for e in everything] == [1, 2, 3, 4]
        assert all(b.prev == a.id for a, b in itertools.pairwise(everything))
        report = await funded.verify()
        assert report.ok and report.entries == 4 and report.last_id == everything[-1].id
