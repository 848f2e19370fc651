"""A market contract and its timeline (pure data and the one state machine of contracts).

Every placement the market commits (a bid awarded and committed for one unit of a job) is a contract
between the requester (payer) and the provider (payee): the terms of the bid, the price, the escrow
amount and the payment mode, the links to the intent (when it came from one), the job, the unit and the
allocation, and a **timeline**: the events in the order they happened, each with its time, its actor
(the DID that caused it) and the signed evidence (CIDs of the bid, the award, the provider's usage
receipt, the countersigned metering receipt; ids of the ledger entries that moved the money).

The state of a contract is its last state-changing event. pay_after (escrow):

    created -> escrow_locked -> allocated -> running -> delivered -> escrow_released
                                                                  \\-> partially_released
    (before the release) -> refunded            (any time before the end) -> disputed -> resolved

With no settlement on the requester's node (`settlement: none`), or when the market placed the job on the
requester's own node (it sells too: nobody to pay), `payment_mode` is "none": the timeline is kept all the
same and no money moves: `created -> allocated -> running ->
delivered`, or `cancelled` when the unit did not deliver.

pay_before (prepaid): `created -> paid -> allocated -> running -> delivered` (delivered is the end: the
provider was paid at award and its signed receipt proves the delivery); without a receipt the contract
is `refunded` (the provider pays the price back) or `disputed`. A contract whose money could not be
moved at award (no funds) is `cancelled` and its unit does not start. Any other move is a bug of the
caller and raises `contract_invalid_state` naming the allowed moves; the settle codes
(`contract_already_released`, `contract_already_settled`) are raised by `check_settle`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agora.errors import AgoraError

CREATED = "created"
ESCROW_LOCKED = "escrow_locked"
PAID = "paid"
ALLOCATED = "allocated"
RUNNING = "running"
DELIVERED = "delivered"
ESCROW_RELEASED = "escrow_released"
PARTIALLY_RELEASED = "partially_released"
REFUNDED = "refunded"
DISPUTED = "disputed"
RESOLVED = "resolved"
CANCELLED = "cancelled"

PAY_AFTER = "pay_after"
PAY_BEFORE = "pay_before"
UNSETTLED = "none"  # no settlement here, or the job runs on the requester's own node: no money moves

STATES = (
    CREATED,
    ESCROW_LOCKED,
    PAID,
    ALLOCATED,
    RUNNING,
    DELIVERED,
    ESCROW_RELEASED,
    PARTIALLY_RELEASED,
    REFUNDED,
    DISPUTED,
    RESOLVED,
    CANCELLED,
)
RELEASED = frozenset({ESCROW_RELEASED, PARTIALLY_RELEASED})
TERMINAL = frozenset({ESCROW_RELEASED, PARTIALLY_RELEASED, REFUNDED, RESOLVED, CANCELLED})
_BEFORE_END = (REFUNDED, DISPUTED)
MOVES: dict[str, tuple[str, ...]] = {
    CREATED: (ESCROW_LOCKED, PAID, ALLOCATED, CANCELLED),  # allocated: only an unsettled contract skips the money
    ESCROW_LOCKED: (ALLOCATED, *_BEFORE_END),
    PAID: (ALLOCATED, *_BEFORE_END),
    ALLOCATED: (RUNNING, DELIVERED, CANCELLED, *_BEFORE_END),  # cancelled: an unsettled one that did not deliver
    RUNNING: (DELIVERED, CANCELLED, *_BEFORE_END),
    DELIVERED: (ESCROW_RELEASED, PARTIALLY_RELEASED, *_BEFORE_END),
    DISPUTED: (RESOLVED,),
}
# Events that record something without changing the state (kept in the timeline all the same).
NOTES = (
    "note",
    "countersigned",
    # federated learning: a training contract serves rounds; each round's outcome is a line of its timeline
    "bound_to_round",
    "update_released",
    "update_rejected",
    "update_late",
)


@dataclass(frozen=True)
class Event:
    """One line of a contract's timeline."""

    event: str
    at: float
    actor: str
    evidence: Mapping[str, Any] = field(default_factory=dict)  # CIDs, ledger entry ids, alloc id
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "at": self.at,
            "actor": self.actor,
            "evidence": dict(self.evidence),
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Event:
        return cls(
            str(d["event"]), float(d["at"]), str(d["actor"]), dict(d.get("evidence", {})), str(d.get("note", ""))
        )


@dataclass
class Contract:
    contract_id: str
    requester: str  # the payer
    provider: str  # the payee
    job_id: str
    unit: str
    price: int  # the bid's firm price, minor units
    escrow_amount: int  # what the payment mode moves at award (0 when nothing is locked)
    payment_mode: str
    terms: dict[str, Any]  # from the bid and its request: offer_id, valid_until, need, engine, duration_s
    intent_id: str | None = None
    request_id: str = ""
    alloc_id: str | None = None
    state: str = CREATED
    released: int = 0  # paid to the provider through this contract
    refunded: int = 0  # given back to the requester
    usage_receipt: str = ""  # the provider's signed usage receipt (hex of its bytes), once delivered
    timeline: list[Event] = field(default_factory=list)
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def ended(self) -> bool:
        """In a final state; a delivered contract with nothing held (prepaid, or unsettled) is final too."""
        return self.state in TERMINAL or (self.state == DELIVERED and self.payment_mode in (PAY_BEFORE, UNSETTLED))

    def record(
        self, event: str, at: float, actor: str, evidence: Mapping[str, Any] | None = None, note: str = ""
    ) -> Event:
        """Append `event` to the timeline; a state event must be a move of the state machine."""
        if event == CREATED and not self.timeline and self.state == CREATED:
            pass  # the first line of every timeline
        elif event not in NOTES:
            check_move(self.contract_id, self.state, event)
            self.state = event
        ev = Event(event, at, actor, dict(evidence or {}), note[:1000])
        self.timeline.append(ev)
        if not self.created_at:
            self.created_at = at
        self.updated_at = at
        return ev

    def events(self) -> list[str]:
        return [e.event for e in self.timeline]

    def to_dict(self) -> dict[str, Any]:
        return {
            "contract_id": self.contract_id,
            "requester": self.requester,
            "provider": self.provider,
            "job_id": self.job_id,
            "unit": self.unit,
            "intent_id": self.intent_id,
            "request_id": self.request_id,
            "alloc_id": self.alloc_id,
            "price": self.price,
            "escrow_amount": self.escrow_amount,
            "payment_mode": self.payment_mode,
            "terms": dict(self.terms),
            "state": self.state,
            "released": self.released,
            "refunded": self.refunded,
            "usage_receipt": self.usage_receipt,
            "timeline": [e.to_dict() for e in self.timeline],
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Contract:
        data = dict(d)
        data["timeline"] = [Event.from_dict(e) for e in data.get("timeline", [])]
        return cls(**data)


def check_move(contract_id: str, old: str, new: str) -> None:
    allowed = MOVES.get(old, ())
    if new not in allowed:
        moves = ", ".join(allowed) if allowed else f"none ({old} is final)"
        raise AgoraError(
            "contract_invalid_state",
            f"contract {contract_id} cannot go from {old} to {new}; allowed from {old}: {moves}",
            details={"from": old, "to": new, "allowed": list(allowed)},
        )


def check_settle(contract: Contract, action: str) -> None:
    """Whether `action` (release, refund, dispute) may be asked of `contract` now; the stable codes for the
    usual mistakes: a second release is `contract_already_released`, a refund (or dispute) of a contract
    whose money already moved for good is `contract_already_settled`, anything on a disputed contract but
    its resolution is `contract_disputed`."""
    cid, state = contract.contract_id, contract.state
    if state == DISPUTED:
        raise AgoraError("contract_disputed", f"contract {cid} is disputed: the hub operator resolves it")
    if action == "release" and state in RELEASED:
        raise AgoraError("contract_already_released", f"contract {cid} is already {state}")
    if contract.ended:
        raise AgoraError("contract_already_settled", f"contract {cid} is already {state}: nothing left to {action}")
    if contract.payment_mode == UNSETTLED:
        raise AgoraError("contract_invalid_state", f"contract {cid} moved no money (this node has no settlement)")
    if action == "release" and contract.payment_mode == PAY_BEFORE:
        raise AgoraError(
            "contract_invalid_state", f"contract {cid} is pay_before: the provider was paid at award, nothing is held"
        )


def counts_by_state(states: list[str]) -> dict[str, int]:
    out = dict.fromkeys(STATES, 0)
    for s in states:
        out[s] = out.get(s, 0) + 1
    return out


__all__ = [
    "ALLOCATED",
    "CANCELLED",
    "CREATED",
    "DELIVERED",
    "DISPUTED",
    "ESCROW_LOCKED",
    "ESCROW_RELEASED",
    "MOVES",
    "PAID",
    "PARTIALLY_RELEASED",
    "PAY_AFTER",
    "PAY_BEFORE",
    "REFUNDED",
    "RELEASED",
    "RESOLVED",
    "RUNNING",
    "STATES",
    "TERMINAL",
    "UNSETTLED",
    "Contract",
    "Event",
    "check_move",
    "check_settle",
    "counts_by_state",
]
