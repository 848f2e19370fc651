"""`Settler`: every placement the market commits becomes a contract, and its money moves through `Settlement`.

The runner calls a few hooks (each one line there); the rules live here:

- `placed` (a bid was awarded and committed for a unit): a contract is created (evidence: the bid's and
  the award's CIDs) and the payment mode of the job's spec (`payment.mode`) moves the money at once:
  - `pay_after` (the default): the bid's firm price is **locked** in the contract's escrow
    (`escrow:<contract>`) from the requester's wallet: `escrow_locked`, with the ledger entry's id.
    The price, not the budget: the budget only caps the bids the market accepts (a bid above it is
    never awarded), and locking more than the price would hold money no delivery can earn.
  - `pay_before`: the price is **paid** to the provider's wallet at once (a transfer whose memo names
    the contract): `paid`.
  A lock or payment that fails (`insufficient_funds`, ...) cancels the contract (`cancelled`, the reason
  in the timeline) and the runner gives the placement back: the unit does not start unpaid.
- `started` (the provider accepted the allocation): `allocated` (the allocation id) and `running`.
- `delivered` (the runner verified the provider's signed usage receipt and fetched and checked every
  output against it): `delivered` (the usage receipt's CID). Then, for pay_after, the **automatic rule**
  of an unattended requester (`SettleSettings.auto_release`, on by default): countersign the usage
  receipt for the whole price (units delivered 1 of 1: a contract is one unit of a job) and release the
  escrow against that metering receipt, signed by both parties (`escrow_released`, with the metering
  receipt's CID and the entry id). With `auto_release` off the contract waits in `delivered` for a
  person: `agora contract release ID [--amount N]` (an amount below the price is a partial release, the
  rest refunded to the requester in the same ledger entry: `partially_released`).
- `attempt_failed` / `job_ended` (the unit failed, was cancelled, its provider was lost, or the job
  ended before it started): a pay_after contract not delivered is **refunded** (the whole escrow back to
  the requester: `refunded`). A pay_before contract has nothing held: the money is in the provider's
  wallet and only the provider or the hub operator can move it back, so the contract is `disputed`
  (reason: no receipt by the end) and the operator resolves it with a recorded decision. That is the
  honest rule: a requester cannot take money out of another member's wallet on its own.

A person's `release`, `refund` and `dispute` (API, CLI) go through the same checks (`check_settle`): a
second release is `contract_already_released`, a refund after a release `contract_already_settled`,
anything on a disputed contract `contract_disputed`; a requester's refund of a delivered contract is
refused (it would take back a delivery the provider proved: dispute it instead).

With no settlement (`settlement=None`: the node's default until the hub's ledger is wired there) the
contracts and their timelines are kept all the same, with payment mode "none": nothing is locked, paid,
released or refunded, and a unit that does not deliver ends its contract `cancelled`.

Every ledger call carries an idempotency key derived from the contract and the step
(`<contract>:lock`, `<contract>:release`, ...), so a retried hook never moves money twice. Hooks after
`placed` never raise into the runner: a settlement that fails there is logged and the contract keeps its
state (the timeline says what was tried, `note` events), so a job is never failed by its bookkeeping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agora.clock import SYSTEM_CLOCK, Clock
from agora.codec import CID
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.ledger.interfaces import Settlement, wallet
from agora.market.contracts import ContractBook, new_contract_id
from agora.models.contract import (
    ALLOCATED,
    CANCELLED,
    CREATED,
    DELIVERED,
    DISPUTED,
    ESCROW_LOCKED,
    ESCROW_RELEASED,
    PAID,
    PARTIALLY_RELEASED,
    PAY_AFTER,
    PAY_BEFORE,
    REFUNDED,
    RUNNING,
    UNSETTLED,
    Contract,
    check_settle,
)
from agora.models.job import JobSpec
from agora.orchestrator.placement import Placed
from agora.wire.settle import countersign
from agora.wire.usage import UsageReceipt

log = logging.getLogger("agora.orchestrator.settle")

RoundListener = Callable[[str, str, dict[str, Any]], None]  # (job id, unit key, the round's why)


@dataclass(frozen=True)
class SettleSettings:
    auto_release: bool = True  # countersign and release as soon as the outputs verified (unattended requester)


class Settler:
    def __init__(
        self,
        *,
        keypair: Keypair,
        contracts: ContractBook,
        settlement: Settlement | None,
        clock: Clock = SYSTEM_CLOCK,
        settings: SettleSettings | None = None,
    ) -> None:
        self.keypair = keypair
        self.contracts = contracts
        self.settlement = settlement
        self.clock = clock
        self.settings = settings or SettleSettings()
        self._open: dict[tuple[str, str], str] = {}  # (job id, unit key) -> its contract not yet ended
        self._intents: dict[str, str] = {}  # job id -> the intent it was matched for
        self._round_listeners: dict[str, RoundListener] = {}
        self.leftover: list[str] = []  # contracts `recover` could not unwind yet (`unwind_leftover`)
        self.on_job_end: Callable[[str, str], Awaitable[None]] | None = None

    @property
    def did(self) -> str:
        return self.keypair.did

    # -- links kept for the matcher ---------------------------------------------------------------
    def link_intent(self, job_id: str, intent_id: str) -> None:
        self._intents[job_id] = intent_id

    def intent_of(self, job_id: str) -> str | None:
        return self._intents.get(job_id)

    def listen_rounds(self, job_id: str, listener: RoundListener) -> Callable[[], None]:
        self._round_listeners[job_id] = listener

        def stop() -> None:
            self._round_listeners.pop(job_id, None)

        return stop

    def contract_of(self, job_id: str, unit: str, *, slot: str | None = None) -> str | None:
        return self._open.get((job_id, slot or unit))

    # -- runner hooks -----------------------------------------------------------------------------
    def round(self, job_id: str, unit: str, why: dict[str, Any]) -> None:
        listener = self._round_listeners.get(job_id)
        if listener is not None:
            listener(job_id, unit, why)

    async def placed(
        self, job_id: str, unit: str, placed: Placed, spec: JobSpec, *, slot: str | None = None
    ) -> Contract:
        """A new contract for a committed placement, its money moved as the payment mode says; raises
        (the contract then `cancelled`) when the money cannot move: the caller gives the placement back.
        `slot` tells apart placements of one unit that run at once (replicas of a verified job: each its own
        contract); the later hooks name the same slot. Default: the unit."""
        key = (job_id, slot or unit)
        stale = self._open.get(key)
        if stale is not None:  # a placement before it that never ended cleanly: settle it first
            await self._unwind(stale, "placed again")
        bid, award = placed.bid, placed.award
        # no money moves on a placement on this node itself (the market may pick the requester's own offer):
        # paying oneself is nothing, and an escrow's payer and payee are two different DIDs
        money = self.settlement is not None and placed.provider != self.did
        mode = spec.payment.mode if money else UNSETTLED
        contract = Contract(
            contract_id=new_contract_id(),
            requester=self.did,
            provider=placed.provider,
            job_id=job_id,
            unit=unit,
            price=bid.price,
            escrow_amount=bid.price if money else 0,
            payment_mode=mode,
            terms={
                "offer_id": bid.offer_id,
                "valid_until": bid.valid_until,
                "start_by": placed.commit.start_by,
                "budget": spec.payment.budget,
                "max_price": spec.placement.max_price,
            },
            intent_id=self._intents.get(job_id),
            request_id=placed.request_id,
        )
        evidence = {"bid": str(bid.cid), "award": str(award.cid), "commit": str(placed.commit.cid)}
        await self.contracts.create(contract, actor=self.did, evidence=evidence, note=f"price {bid.price:,} ({mode})")
        cid = contract.contract_id
        if not money or self.settlement is None:
            self._open[key] = cid
            return contract
        try:
            if mode == PAY_BEFORE:
                entry = await self.settlement.transfer(
                    wallet(self.did),
                    wallet(placed.provider),
                    bid.price,
                    actor=self.did,
                    idem=f"{cid}:prepay",
                    memo=f"contract {cid}",
                )
                event = PAID
            else:
                entry = await self.settlement.lock(
                    cid, self.did, placed.provider, bid.price, actor=self.did, idem=f"{cid}:lock"
                )
                event = ESCROW_LOCKED
        except AgoraError as err:
            await self.contracts.record(
                cid, CANCELLED, actor=self.did, note=f"{err.code}: {err.message}", escrow_amount=0
            )
            raise
        await self.contracts.record(cid, event, actor=self.did, evidence={"ledger_entries": [entry.id]})
        self._open[key] = cid
        return contract

    async def started(self, job_id: str, unit: str, alloc_id: str, *, slot: str | None = None) -> None:
        cid = self._open.get((job_id, slot or unit))
        if cid is None:
            return
        try:
            await self.contracts.record(
                cid, ALLOCATED, actor=self.did, evidence={"alloc_id": alloc_id}, alloc_id=alloc_id
            )
            await self.contracts.record(cid, RUNNING, actor=self.did, evidence={"alloc_id": alloc_id})
        except AgoraError as err:
            log.warning("contract %s: could not record the start: %s", cid, err)

    async def delivered(self, job_id: str, unit: str, receipt: UsageReceipt, *, slot: str | None = None) -> None:
        """The outputs verified against the provider's signed receipt: `delivered`, then (pay_after, the
        automatic rule) countersign and release."""
        cid = self._open.pop((job_id, slot or unit), None)
        if cid is None:
            return
        try:
            contract = await self.contracts.record(
                cid,
                DELIVERED,
                actor=receipt.provider,
                evidence={"usage_receipt": str(receipt.cid)},
                usage_receipt=receipt.raw.hex(),
            )
            if contract.payment_mode == PAY_AFTER and self.settings.auto_release:
                await self.release(cid, note="automatic: the outputs verified against the provider's receipt")
        except AgoraError as err:
            log.warning("contract %s: could not settle the delivery: %s", cid, err)

    async def attempt_failed(self, job_id: str, unit: str, error: AgoraError, *, slot: str | None = None) -> None:
        cid = self._open.pop((job_id, slot or unit), None)
        if cid is not None:
            await self._unwind(cid, f"{error.code}: {error.message}")

    async def job_ended(self, job_id: str, state: str) -> None:
        """Whatever of the job is still open (a placement never started, a cancel) is unwound; then the
        `on_job_end` hook (the matcher: an intent's job completed is the intent fulfilled)."""
        for key in [k for k in self._open if k[0] == job_id]:
            cid = self._open.pop(key)
            await self._unwind(cid, f"the job ended {state} before this unit delivered")
        self._round_listeners.pop(job_id, None)
        if self.on_job_end is not None:
            await self.on_job_end(job_id, state)
        self._intents.pop(job_id, None)

    async def recover(self) -> int:
        """At start, after the runner's own recovery: a contract left open by the last run (its unit's job was
        failed by the restart, or goes back to the queue and is placed anew) delivered nothing under it, so
        it is unwound like a failed attempt (refund, or dispute of a prepayment). A delivered pay_after contract
        whose automatic release did not happen is released now (with `auto_release`; else it waits for a
        person). Returns how many were unwound or released."""
        n = 0
        self.leftover = []
        for state in (CREATED, ESCROW_LOCKED, PAID, ALLOCATED, RUNNING):
            for contract in await self.contracts.list(state=state, limit=10_000):
                await self._unwind(contract.contract_id, "the requester restarted before a delivery")
                if (await self.contracts.get(contract.contract_id)).state == state:  # the ledger did not answer
                    self.leftover.append(contract.contract_id)
                n += 1
        if self.settlement is not None and self.settings.auto_release:  # a release the stop cut short
            for contract in await self.contracts.list(state=DELIVERED, limit=10_000):
                if contract.payment_mode == PAY_AFTER and contract.usage_receipt:
                    try:
                        await self.release(contract.contract_id, note="automatic, after a restart")
                        n += 1
                    except AgoraError as err:
                        log.warning("contract %s: the release after a restart failed: %s", contract.contract_id, err)
        return n

    async def unwind_leftover(self, *, attempts: int = 40, max_wait_s: float = 5.0) -> int:
        """The contracts `recover` could not unwind (the ledger hub was not reachable yet: a node learns its
        hub from announcements after it starts) are tried again, with a growing wait, `attempts` times at
        most; only those contracts, never one placed since. Returns how many are left (0: all settled)."""
        for attempt in range(attempts):
            if not self.leftover:
                return 0
            await asyncio.sleep(min(max_wait_s, 0.25 * 2**attempt))
            left = []
            for cid in self.leftover:
                before = (await self.contracts.get(cid)).state
                await self._unwind(cid, "the requester restarted before a delivery")
                if (await self.contracts.get(cid)).state == before:
                    left.append(cid)
            self.leftover = left
        if self.leftover:
            log.warning("contracts still open after a restart (the ledger never answered): %s", self.leftover)
        return len(self.leftover)

    async def _unwind(self, cid: str, reason: str) -> None:
        """No delivery: refund the escrow (pay_after), or dispute a prepayment (pay_before)."""
        try:
            contract = await self.contracts.get(cid)
            if contract.ended or contract.state in (DELIVERED, DISPUTED):
                return
            if contract.state == CREATED:  # nothing moved yet (it stopped between the contract and the lock)
                await self.contracts.record(cid, CANCELLED, actor=self.did, note=f"no payment made: {reason}")
                return
            if contract.payment_mode == UNSETTLED:
                await self.contracts.record(cid, CANCELLED, actor=self.did, note=f"not delivered: {reason}")
                return
            if contract.payment_mode == PAY_BEFORE:
                await self.contracts.record(
                    cid,
                    DISPUTED,
                    actor=self.did,
                    note=f"prepaid and no receipt ({reason}): the provider or the hub operator refunds",
                )
                return
            await self.refund(cid, reason=reason, automatic=True)
        except AgoraError as err:
            log.warning("contract %s: could not unwind (%s): %s", cid, reason, err)

    # -- a person's decisions (API, CLI) and the automatic rule -------------------------------------
    async def release(self, cid: str, *, amount: int | None = None, note: str = "") -> Contract:
        """Countersign the provider's usage receipt for `amount` (default: the price) and release the escrow
        against it; below the price is a partial release (the rest goes back to the requester)."""
        contract = await self.contracts.get(cid)
        check_settle(contract, "release")
        if contract.state != DELIVERED or not contract.usage_receipt:
            raise AgoraError(
                "contract_invalid_state",
                f"contract {cid} is {contract.state}: a release needs the provider's usage receipt (delivered)",
                hint="Refund or dispute a contract that did not deliver.",
            )
        pay = contract.price if amount is None else amount
        if isinstance(pay, bool) or not isinstance(pay, int) or not 0 <= pay <= contract.escrow_amount:
            raise AgoraError("invalid_argument", f"amount must be 0..{contract.escrow_amount:,}, got {amount!r}")
        usage = UsageReceipt.open(bytes.fromhex(contract.usage_receipt), expected_provider=contract.provider)
        metering = countersign(
            self.keypair,
            usage,
            contract=cid,
            units=1 if pay == contract.price else 0,
            total=1,
            amount=pay,
            iat=int(self.clock.now()),
        )
        entry = await self._money().release(cid, metering, actor=self.did, idem=f"{cid}:release:{pay}")
        state = ESCROW_RELEASED if pay == contract.escrow_amount else PARTIALLY_RELEASED
        mcid = str(CID.of(metering))  # the metering receipt's CID names exactly the countersigned bytes
        await self.contracts.record(
            cid,
            "countersigned",
            actor=self.did,
            evidence={"metering_receipt": mcid, "usage_receipt": str(usage.cid)},
            note=f"accepted {pay:,} of {contract.price:,}",
        )
        return await self.contracts.record(
            cid,
            state,
            actor=self.did,
            evidence={"metering_receipt": mcid, "ledger_entries": [entry.id]},
            note=note,
            check=lambda c: check_settle(c, "release"),
            released=pay,
            refunded=contract.escrow_amount - pay,
        )

    async def refund(self, cid: str, *, reason: str = "", automatic: bool = False) -> Contract:
        contract = await self.contracts.get(cid)
        check_settle(contract, "refund")
        if contract.payment_mode == PAY_BEFORE:
            raise AgoraError(
                "contract_invalid_state",
                f"contract {cid} is pay_before: the provider holds the money; dispute it for the operator to resolve",
            )
        if contract.state == DELIVERED and not automatic:
            raise AgoraError(
                "contract_invalid_state",
                f"contract {cid} delivered (the provider's signed receipt proves it): dispute it instead of a refund",
            )
        if contract.state not in (ESCROW_LOCKED, ALLOCATED, RUNNING, DELIVERED):
            raise AgoraError("contract_invalid_state", f"contract {cid} is {contract.state}: nothing is held")
        entry = await self._money().refund(cid, actor=self.did, idem=f"{cid}:refund", reason=reason[:500])
        self._forget(cid)
        return await self.contracts.record(
            cid,
            REFUNDED,
            actor=self.did,
            evidence={"ledger_entries": [entry.id]},
            note=reason,
            check=lambda c: check_settle(c, "refund"),
            refunded=contract.escrow_amount,
        )

    async def dispute(self, cid: str, *, reason: str) -> Contract:
        contract = await self.contracts.get(cid)
        check_settle(contract, "dispute")
        if not reason:
            raise AgoraError("invalid_argument", "a dispute needs a reason")
        evidence: dict[str, Any] = {}
        if contract.payment_mode == PAY_AFTER and contract.state != "created":
            entry = await self._money().dispute(cid, actor=self.did, idem=f"{cid}:dispute", reason=reason[:500])
            evidence["ledger_entries"] = [entry.id]
        self._forget(cid)
        return await self.contracts.record(
            cid, DISPUTED, actor=self.did, evidence=evidence, note=reason, check=lambda c: check_settle(c, "dispute")
        )

    def _money(self) -> Settlement:
        if self.settlement is None:
            raise AgoraError("contract_invalid_state", "this node has no settlement: no money moves on its contracts")
        return self.settlement

    def _forget(self, cid: str) -> None:
        for key in [k for k, v in self._open.items() if v == cid]:
            self._open.pop(key, None)


__all__ = ["SettleSettings", "Settler"]
