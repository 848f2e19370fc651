"""Escrow rules (pure): what each escrow entry must look like given the escrow's state, and the state after it.

One escrow per contract, in the account `escrow:<contract>`:

- `escrow_lock` (no escrow yet): payer's wallet -a, escrow +a; `meta` names payer and payee (never the
  same DID). State `locked`.
- `escrow_deliver` (locked or disputed): no money moves; the usage receipt's CID joins
  `delivery_receipts`.
- `escrow_release` (locked): the escrow pays out everything it holds in ONE entry: `x` to the payee,
  the rest (if any) back to the payer. `released` when `x` is all that was locked, else
  `partially_released` (the remainder is refunded in the same entry, so no money is ever left behind).
- `escrow_refund` (locked): everything back to the payer. `refunded`.
- `escrow_dispute` (locked): no money moves; frozen, `disputed`.
- `escrow_resolve` (disputed): like a release with the operator's `payee_amount`; `resolved`, with the
  decision recorded.

Anything else raises the catalog code a caller can act on: `escrow_not_found`, `escrow_already_locked`,
`contract_already_released`, `contract_already_settled`, `contract_disputed`, `escrow_invalid_state`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from agora.errors import AgoraError
from agora.ledger.interfaces import Entry, EscrowState, Posting, escrow_account, wallet

ESCROW_KINDS = frozenset(
    {"escrow_lock", "escrow_deliver", "escrow_release", "escrow_refund", "escrow_dispute", "escrow_resolve"}
)
PAYOUT_KINDS = frozenset({"escrow_release", "escrow_refund", "escrow_resolve"})


def require_open(state: EscrowState | None, contract: str, kind: str) -> EscrowState:
    """The escrow `kind` acts on, or the error that says why it cannot act now."""
    if state is None:
        raise AgoraError("escrow_not_found", f"no escrow is locked for contract {contract[:80]!r}")
    if kind == "escrow_resolve":
        if state.state == "disputed":
            return state
        if state.settled:
            raise AgoraError("contract_already_settled", f"contract {contract[:80]!r} is already {state.state}")
        raise AgoraError(
            "escrow_invalid_state", f"contract {contract[:80]!r} is {state.state}: only a dispute resolves"
        )
    if kind == "escrow_deliver" and state.state in ("locked", "disputed"):
        return state
    if state.state == "locked":
        return state
    if state.state == "disputed":
        raise AgoraError(
            "contract_disputed", f"contract {contract[:80]!r} is disputed: frozen until the operator resolves it"
        )
    if kind == "escrow_release" and state.state in ("released", "partially_released"):
        raise AgoraError("contract_already_released", f"contract {contract[:80]!r} was already {state.state}")
    raise AgoraError("contract_already_settled", f"contract {contract[:80]!r} is already {state.state}")


def pro_rata(amount: int, units: int, total: int) -> int:
    """What `units` delivered of `total` are worth of `amount`, rounded down (a requester never pays for a
    fraction that was not delivered): the amount an automatic countersign rule accepts for a partial
    delivery."""
    for name, value in (("amount", amount), ("units", units), ("total", total)):
        if type(value) is not int or value < 0:
            raise AgoraError("invalid_argument", f"{name} must be a non-negative integer, got {value!r}")
    if total < 1 or units > total:
        raise AgoraError("invalid_argument", f"units ({units}) must be within 0..total ({total}), total >= 1")
    return amount * units // total


def payout_postings(state: EscrowState, payee_amount: int) -> tuple[Posting, ...]:
    """Empty the escrow: `payee_amount` to the payee, the rest to the payer (zero legs left out)."""
    held = state.held
    if type(payee_amount) is not int or payee_amount < 0 or payee_amount > held:
        raise AgoraError(
            "invalid_argument",
            f"the payee's amount must be within 0..{held} (what the escrow holds), got {payee_amount}",
        )
    legs = [Posting(escrow_account(state.contract), -held)]
    if payee_amount:
        legs.append(Posting(wallet(state.payee), payee_amount))
    if held - payee_amount:
        legs.append(Posting(wallet(state.payer), held - payee_amount))
    return tuple(legs)


def lock_postings(contract: str, payer: str, amount: int) -> tuple[Posting, ...]:
    return (Posting(wallet(payer), -amount), Posting(escrow_account(contract), amount))


def _same(a: Sequence[Posting], b: Sequence[Posting]) -> bool:
    return Counter(a) == Counter(b)


def _bad(entry: Entry, message: str) -> AgoraError:
    return AgoraError("ledger_entry_invalid", f"entry {entry.seq} ({entry.kind}): {message}")


def transition(state: EscrowState | None, entry: Entry) -> EscrowState:
    """The escrow after `entry` (an escrow_* entry of `entry.contract`), or the error that forbids it."""
    contract = entry.contract
    if not contract:
        raise _bad(entry, "an escrow entry names its contract")
    if entry.kind == "escrow_lock":
        if state is not None:
            raise AgoraError("escrow_already_locked", f"contract {contract[:80]!r} already has an escrow")
        payer, payee = entry.meta.get("payer", ""), entry.meta.get("payee", "")
        if not payer or not payee or payer == payee:
            raise _bad(entry, "a lock names a payer and a payee, two different DIDs")
        amount = entry.amount_for(escrow_account(contract))
        if amount <= 0 or not _same(entry.postings, lock_postings(contract, payer, amount)):
            raise _bad(entry, "a lock moves a positive amount from the payer's wallet into the escrow")
        return EscrowState(contract, payer, payee, amount)
    current = require_open(state, contract, entry.kind)
    if entry.kind in ("escrow_deliver", "escrow_dispute"):
        if entry.postings:
            raise _bad(entry, "no money moves on a delivery or a dispute")
        if entry.kind == "escrow_deliver":
            if len(entry.receipts) != 1 or entry.receipts[0] in current.delivery_receipts:
                raise _bad(entry, "a delivery records exactly one usage receipt, not recorded before")
            return replace(current, delivery_receipts=(*current.delivery_receipts, entry.receipts[0]))
        return replace(current, state="disputed", dispute_reason=entry.meta.get("reason", ""))
    if entry.kind not in PAYOUT_KINDS:
        raise _bad(entry, "not an escrow kind")
    paid = entry.amount_for(wallet(current.payee))
    if entry.kind == "escrow_refund" and paid:
        raise _bad(entry, "a refund pays the payee nothing")
    if not 0 <= paid <= current.held or not _same(entry.postings, payout_postings(current, paid)):
        raise _bad(entry, f"a payout empties the escrow ({current.held}) into the payee's and the payer's wallets")
    refunded = current.held - paid
    if entry.kind == "escrow_refund":
        new_state = "refunded"
    elif entry.kind == "escrow_resolve":
        new_state = "resolved"
    else:
        new_state = "released" if paid == current.amount_locked else "partially_released"
    return replace(
        current,
        released=current.released + paid,
        refunded=current.refunded + refunded,
        state=new_state,
        decision=entry.meta.get("decision", "") if entry.kind == "escrow_resolve" else current.decision,
    )


__all__ = [
    "ESCROW_KINDS",
    "PAYOUT_KINDS",
    "lock_postings",
    "payout_postings",
    "pro_rata",
    "require_open",
    "transition",
]
