"""`InternalLedgerSettlement`: the `Settlement` interface on agora's own ledger (a hub's cooperative bank).

It adds to `Ledger` the two things the books cannot know: who may do what (the `actor` is the DID the
caller authenticated as, checked by the RPC layer above; the operator is the hub operator's DID) and
the signed evidence (usage receipts, metering receipts signed by both parties), checked here before
anything is planned. The rules are in `Settlement`'s docstring and in the package README.

Each operation is one entry; a partial release refunds the remainder to the payer in the same entry
(`partially_released`), so an escrow never keeps money after it is settled.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from agora.errors import AgoraError
from agora.ledger import escrow as esc
from agora.ledger.core import Books, check_amount, check_text, postings
from agora.ledger.interfaces import (
    FEES,
    ISSUANCE,
    Entry,
    EscrowState,
    VerifyReport,
    account_kind,
    account_owner,
    escrow_account,
    stake_account,
    wallet,
)
from agora.ledger.ledger import Ledger, Plan
from agora.ledger.proof import check_claim
from agora.wire.settle import MAX_CONTRACT_ID, open_release
from agora.wire.usage import UsageReceipt

MAX_STAKES_ASKED = 256  # candidates in one round's stake lookup


def as_account(name: str) -> str:
    """A DID stands for its wallet; anything else must be an account name."""
    if isinstance(name, str) and name.startswith("did:"):
        return wallet(name)
    account_kind(name)
    return name


def _did(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.startswith("did:") or len(value) > 256 or " " in value:
        raise AgoraError("invalid_argument", f"{what} must be a DID (did:key:...), got {str(value)[:80]!r}")
    return value


def _unauthorized(actor: str, what: str) -> AgoraError:
    return AgoraError("ledger_unauthorized", f"{actor[:80]} may not {what}")


class InternalLedgerSettlement:
    """`Settlement` on a `Ledger`; `operator` is the DID allowed to mint, resolve and slash."""

    def __init__(self, ledger: Ledger, operator: str) -> None:
        self._ledger = ledger
        self._operator = _did(operator, "the operator")

    @property
    def ledger(self) -> Ledger:
        return self._ledger

    @property
    def operator(self) -> str:
        return self._operator

    # -- reads ----------------------------------------------------------------------------------------

    async def balance(self, account: str) -> int:
        return await self._ledger.balance(as_account(account))

    async def escrow(self, contract: str) -> EscrowState | None:
        return await self._ledger.escrow(contract)

    async def entries(self, account: str | None = None, since: int = 0, limit: int = 1000) -> list[Entry]:
        return await self._ledger.entries(None if account is None else as_account(account), since, limit)

    async def verify(self) -> VerifyReport:
        return await self._ledger.verify()

    async def stakes(self, dids: Sequence[str]) -> dict[str, int]:
        """The stake each DID holds (0 for none): one read for a whole round of candidates."""
        names = list(dict.fromkeys(_did(d, "a staker") for d in dids))
        if len(names) > MAX_STAKES_ASKED:
            raise AgoraError("invalid_argument", f"ask for at most {MAX_STAKES_ASKED} stakes at a time")
        books = await self._ledger.refresh()
        return {d: books.balance(stake_account(d)) for d in names}

    # -- money ----------------------------------------------------------------------------------------

    async def mint(self, to_did: str, amount: int, *, actor: str, idem: str, memo: str = "") -> Entry:
        dst = wallet(_did(to_did, "the receiver"))
        check_amount(amount)
        check_text(memo, "memo")
        if actor != self._operator:
            raise _unauthorized(actor, "mint: only the hub operator issues money")
        plan = Plan("mint", postings((ISSUANCE, -amount), (dst, amount)), memo=memo)
        args = {"to": dst, "amount": amount, "memo": memo}
        return await self._ledger.execute("mint", args, actor=actor, idem=idem, plan=lambda _: plan)

    async def transfer(self, src: str, dst: str, amount: int, *, actor: str, idem: str, memo: str = "") -> Entry:
        s, d = as_account(src), as_account(dst)
        check_amount(amount)
        check_text(memo, "memo")
        if s == d:
            raise AgoraError("invalid_argument", "a transfer moves money between two different accounts")
        for acct in (s, d):
            if account_kind(acct) not in ("wallet", "fees"):
                raise AgoraError("invalid_argument", f"transfers move money between wallets and fees, not {acct[:80]}")
        owner_ok = account_kind(s) == "wallet" and account_owner(s) == actor
        if not owner_ok and actor != self._operator:
            raise _unauthorized(actor, f"spend from {s[:80]}")
        kind = "fee" if d == FEES and account_kind(s) == "wallet" else "transfer"
        plan = Plan(kind, postings((s, -amount), (d, amount)), memo=memo)
        args = {"src": s, "dst": d, "amount": amount, "memo": memo}
        return await self._ledger.execute("transfer", args, actor=actor, idem=idem, plan=lambda _: plan)

    # -- escrow ---------------------------------------------------------------------------------------

    async def lock(self, contract: str, payer: str, payee: str, amount: int, *, actor: str, idem: str) -> Entry:
        escrow_account(contract)
        if len(contract) > MAX_CONTRACT_ID:  # a metering receipt could never name it
            raise AgoraError("invalid_argument", f"a contract id has at most {MAX_CONTRACT_ID} characters")
        _did(payer, "the payer")
        _did(payee, "the payee")
        check_amount(amount)
        if payer == payee:
            raise AgoraError("invalid_argument", "the payer and the payee of an escrow are two different DIDs")
        if actor not in (payer, self._operator):
            raise _unauthorized(actor, "lock another member's money: the payer locks")

        def plan(books: Books) -> Plan:
            if books.escrow(contract) is not None:
                raise AgoraError("escrow_already_locked", f"contract {contract[:80]!r} already has an escrow")
            return Plan(
                "escrow_lock",
                esc.lock_postings(contract, payer, amount),
                contract=contract,
                meta={"payer": payer, "payee": payee},
            )

        args = {"contract": contract, "payer": payer, "payee": payee, "amount": amount}
        return await self._ledger.execute("lock", args, actor=actor, idem=idem, plan=plan)

    async def deliver(self, contract: str, usage_receipt: bytes, *, actor: str, idem: str) -> Entry:
        usage = UsageReceipt.open(usage_receipt)
        cid = str(usage.cid)

        def plan(books: Books) -> Plan:
            state = esc.require_open(books.escrow(contract), contract, "escrow_deliver")
            if usage.provider != state.payee or usage.requester != state.payer:
                raise AgoraError(
                    "receipt_invalid",
                    f"usage receipt: between {usage.provider} and {usage.requester}, not this contract's payee "
                    f"{state.payee} and payer {state.payer}",
                )
            if actor not in (state.payee, self._operator):
                raise _unauthorized(actor, "record a delivery: the payee (provider) does")
            if cid in state.delivery_receipts:
                raise AgoraError("already_exists", f"usage receipt {cid} is already recorded for this contract")
            return Plan("escrow_deliver", (), contract=contract, receipts=(cid,))

        return await self._ledger.execute(
            "deliver", {"contract": contract, "receipt": cid}, actor=actor, idem=idem, plan=plan
        )

    async def release(self, contract: str, metering_receipt: bytes, *, actor: str, idem: str) -> Entry:
        if not isinstance(metering_receipt, bytes | bytearray):
            raise AgoraError("receipt_invalid", "metering receipt: expected the signed bytes")
        receipt_cid = str(open_release(bytes(metering_receipt), contract=contract).cid)

        def plan(books: Books) -> Plan:
            state = esc.require_open(books.escrow(contract), contract, "escrow_release")
            receipt = open_release(bytes(metering_receipt), contract=contract, payer=state.payer, payee=state.payee)
            if receipt.amount > state.held:
                raise AgoraError(
                    "receipt_invalid",
                    f"metering receipt: accepts {receipt.amount}, more than the {state.held} the escrow holds",
                )
            return Plan(
                "escrow_release",
                esc.payout_postings(state, receipt.amount),
                contract=contract,
                receipts=(str(receipt.cid), str(receipt.evidence_cid)),
                memo=receipt.memo,
            )

        args = {"contract": contract, "receipt": receipt_cid}
        return await self._ledger.execute("release", args, actor=actor, idem=idem, plan=plan)

    async def refund(self, contract: str, *, actor: str, idem: str, reason: str = "") -> Entry:
        check_text(reason, "reason")

        def plan(books: Books) -> Plan:
            state = esc.require_open(books.escrow(contract), contract, "escrow_refund")
            if actor == state.payer and state.delivery_receipts:
                raise _unauthorized(
                    actor, "refund alone after the provider recorded a delivery: dispute it, or ask the payee"
                )
            if actor not in (state.payer, state.payee, self._operator):
                raise _unauthorized(actor, f"refund contract {contract[:80]!r}: a party or the operator does")
            return Plan(
                "escrow_refund", esc.payout_postings(state, 0), contract=contract, memo=reason, meta={"reason": reason}
            )

        args = {"contract": contract, "reason": reason}
        return await self._ledger.execute("refund", args, actor=actor, idem=idem, plan=plan)

    async def dispute(self, contract: str, *, actor: str, idem: str, reason: str) -> Entry:
        check_text(reason, "reason")

        def plan(books: Books) -> Plan:
            state = books.escrow(contract)
            if state is not None and state.state == "disputed":
                raise AgoraError("contract_disputed", f"contract {contract[:80]!r} is already disputed")
            state = esc.require_open(state, contract, "escrow_dispute")
            if actor not in (state.payer, state.payee, self._operator):
                raise _unauthorized(actor, f"dispute contract {contract[:80]!r}: either party does")
            return Plan("escrow_dispute", (), contract=contract, memo=reason, meta={"reason": reason})

        args = {"contract": contract, "reason": reason}
        return await self._ledger.execute("dispute", args, actor=actor, idem=idem, plan=plan)

    async def resolve(self, contract: str, payee_amount: int, *, actor: str, idem: str, decision: str) -> Entry:
        check_text(decision, "decision")
        if not decision:
            raise AgoraError("invalid_argument", "a resolution records the operator's decision")
        if type(payee_amount) is not int or payee_amount < 0:
            raise AgoraError("invalid_argument", f"the payee's amount must be >= 0, got {payee_amount!r}")
        if actor != self._operator:
            raise _unauthorized(actor, "resolve a dispute: only the hub operator does")

        def plan(books: Books) -> Plan:
            state = esc.require_open(books.escrow(contract), contract, "escrow_resolve")
            return Plan(
                "escrow_resolve",
                esc.payout_postings(state, payee_amount),
                contract=contract,
                memo=decision,
                meta={"decision": decision},
            )

        args = {"contract": contract, "payee_amount": payee_amount, "decision": decision}
        return await self._ledger.execute("resolve", args, actor=actor, idem=idem, plan=plan)

    # -- stake ----------------------------------------------------------------------------------------

    async def stake(self, did: str, amount: int, *, actor: str, idem: str) -> Entry:
        _did(did, "the staker")
        check_amount(amount)
        if actor not in (did, self._operator):
            raise _unauthorized(actor, "lock another member's stake")
        plan = Plan("stake_lock", postings((wallet(did), -amount), (stake_account(did), amount)))
        args = {"did": did, "amount": amount}
        return await self._ledger.execute("stake", args, actor=actor, idem=idem, plan=lambda _: plan)

    async def unstake(self, did: str, amount: int, *, actor: str, idem: str) -> Entry:
        _did(did, "the staker")
        check_amount(amount)
        if actor not in (did, self._operator):
            raise _unauthorized(actor, "unlock another member's stake")
        plan = Plan("stake_unlock", postings((stake_account(did), -amount), (wallet(did), amount)))
        args = {"did": did, "amount": amount}
        return await self._ledger.execute("unstake", args, actor=actor, idem=idem, plan=lambda _: plan)

    async def slash(
        self, did: str, amount: int, *, evidence: Sequence[str], to: str, actor: str, idem: str, memo: str = ""
    ) -> Entry:
        _did(did, "the slashed provider")
        check_amount(amount)
        check_text(memo, "memo")
        dst = as_account(to)
        if account_kind(dst) not in ("wallet", "fees"):
            raise AgoraError("invalid_argument", f"slashed stake goes to a wallet or fees, not {dst[:80]}")
        cids = tuple(evidence)
        if not cids or not all(isinstance(c, str) and 0 < len(c) <= 256 for c in cids) or len(cids) > 64:
            raise AgoraError("invalid_argument", "a slash cites 1..64 pieces of signed evidence (CIDs)")
        if actor != self._operator:
            raise _unauthorized(actor, "slash: only the hub operator does, with the evidence")
        plan = Plan("slash", postings((stake_account(did), -amount), (dst, amount)), receipts=cids, memo=memo)
        args = {"did": did, "amount": amount, "to": dst, "evidence": list(cids), "memo": memo}
        return await self._ledger.execute("slash", args, actor=actor, idem=idem, plan=lambda _: plan)

    async def slash_proven(self, accused: bytes, agreeing: Sequence[bytes], amount: int, *, actor: str) -> Entry:
        """Slash on proof (`ledger/proof.py`): the requester of a unit (or the operator) presents the accused's
        signed usage receipt and the agreeing ones; up to `amount` of the accused's stake goes to `fees` (the
        claimant gains nothing: docs/ledger.md "Slashing"), every receipt's CID in the entry's `receipts` and
        the signed bytes themselves in its `meta`, so the entry proves itself. Once per (job, unit, provider):
        a second claim for the same returns the first entry, whatever receipts it carries."""
        check_amount(amount)
        proof = check_claim(accused, agreeing, claimant=actor, operator=actor == self._operator)
        stake = stake_account(proof.accused)

        def plan(books: Books) -> Plan:
            held = books.balance(stake)
            if held <= 0:
                raise AgoraError(
                    "insufficient_funds",
                    f"{proof.accused[:80]} holds no stake to slash",
                    details={"account": stake, "balance": held, "needed": amount},
                )
            taken = min(amount, held)
            memo = f"outputs of {proof.job}/{proof.task} contradicted by {len(proof.agreeing)} agreeing receipts"
            meta = {
                "job": proof.job,
                "task": proof.task,
                "accused": proof.accused,
                "asked": str(amount),
                "receipts": ",".join(base64.b64encode(r.raw).decode() for r in proof.receipts),
            }
            return Plan("slash", postings((stake, -taken), (FEES, taken)), receipts=proof.cids, memo=memo, meta=meta)

        args = {"did": proof.accused, "job": proof.job, "task": proof.task}
        return await self._ledger.execute("slash_proven", args, actor=actor, idem=proof.idem, plan=plan)


__all__ = ["MAX_STAKES_ASKED", "InternalLedgerSettlement", "as_account"]
