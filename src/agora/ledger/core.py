"""The ledger's pure core: `Books` (balances, escrows and idempotency keys rebuilt from entries), the rules
every entry must pass, and `verify_chain`.

Rules an entry must pass to be appended (and that `verify_chain` re-checks for every stored entry):

1. `seq` is the next one and `prev` is the id of the entry before it ("" for the first); `id` is the
   hash of the other fields.
2. It balances: its postings sum to 0, each amount a non-zero integer, each account named once.
3. Its kind allows the accounts it touches: `mint` takes from `issuance` into one wallet; `transfer`
   moves between wallets and `fees`; `fee` from a wallet to `fees`; `stake_lock`/`stake_unlock` between a
   DID's wallet and its stake; `slash` from a stake to a wallet or `fees`; escrow kinds follow
   `escrow.transition`. Escrow and stake accounts move only through their own kinds.
4. No account but `issuance` goes below zero (`insufficient_funds`).
5. Its idempotency key was never used before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agora.errors import AgoraError
from agora.ledger import escrow as esc
from agora.ledger.interfaces import (
    ENTRY_KINDS,
    FEES,
    ISSUANCE,
    MAX_AMOUNT,
    Entry,
    EscrowState,
    Posting,
    VerifyReport,
    account_kind,
    account_owner,
    may_go_negative,
)

MAX_IDEM_LEN = 256
MAX_TEXT_LEN = 1024


def request_digest(op: str, args: Mapping[str, Any]) -> str:
    """What an idempotency key is bound to: the operation, its arguments and its actor, hashed (canonical
    JSON: sorted keys, no spaces; the arguments are strings, integers and lists of them)."""
    text = json.dumps({"op": op, "args": dict(args)}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_amount(amount: Any, what: str = "amount") -> int:
    if type(amount) is not int or amount <= 0 or amount > MAX_AMOUNT:
        raise AgoraError("invalid_argument", f"{what} must be a positive integer (minor units), got {amount!r}")
    return amount


def check_idem(idem: Any) -> str:
    if not isinstance(idem, str) or not idem or len(idem) > MAX_IDEM_LEN:
        raise AgoraError("invalid_argument", f"an idempotency key is a non-empty string of at most {MAX_IDEM_LEN}")
    return idem


def check_text(text: Any, what: str) -> str:
    if not isinstance(text, str) or len(text) > MAX_TEXT_LEN:
        raise AgoraError("invalid_argument", f"{what} must be a string of at most {MAX_TEXT_LEN} characters")
    return text


def _bad(entry: Entry, message: str) -> AgoraError:
    return AgoraError("ledger_entry_invalid", f"entry {entry.seq} ({entry.kind}): {message}")


def _kinds(entry: Entry) -> list[tuple[str, int]]:
    return [(account_kind(p.account), p.amount) for p in entry.postings]


def _check_shape(entry: Entry) -> None:
    """Rules 2 and 3 except escrow (which needs the escrow's state)."""
    if entry.kind not in ENTRY_KINDS:
        raise _bad(entry, f"unknown kind (one of {', '.join(ENTRY_KINDS)})")
    accounts = [p.account for p in entry.postings]
    for p in entry.postings:
        account_kind(p.account)
        if type(p.amount) is not int or p.amount == 0 or abs(p.amount) > MAX_AMOUNT:
            raise _bad(entry, f"amount {p.amount!r} of {p.account[:80]} must be a non-zero integer")
    if len(set(accounts)) != len(accounts):
        raise _bad(entry, "an account appears in two postings")
    if entry.total != 0:
        raise _bad(entry, f"postings sum to {entry.total}, not 0")
    if entry.kind in esc.ESCROW_KINDS:
        return
    if not entry.postings:
        raise _bad(entry, "moves no money")
    kinds = _kinds(entry)
    src = [p for p in entry.postings if p.amount < 0]
    dst = [p for p in entry.postings if p.amount > 0]
    one_to_one = len(src) == 1 and len(dst) == 1
    sk, dk = (account_kind(src[0].account), account_kind(dst[0].account)) if one_to_one else ("", "")
    same_owner = one_to_one and account_owner(src[0].account) == account_owner(dst[0].account)
    ok = one_to_one and {
        "mint": sk == "issuance" and dk == "wallet",
        "transfer": sk in ("wallet", "fees") and dk in ("wallet", "fees"),
        "fee": sk == "wallet" and dk == "fees",
        "stake_lock": sk == "wallet" and dk == "stake" and same_owner,
        "stake_unlock": sk == "stake" and dk == "wallet" and same_owner,
        "slash": sk == "stake" and dk in ("wallet", "fees"),
    }.get(entry.kind, False)
    if not ok:
        raise _bad(entry, f"a {entry.kind} cannot move money this way ({kinds})")


@dataclass
class Books:
    """Balances, escrows and idempotency keys as of entry `seq` (the state the next entry is checked against)."""

    seq: int = 0
    last_id: str = ""
    balances: dict[str, int] = field(default_factory=dict)
    escrows: dict[str, EscrowState] = field(default_factory=dict)
    by_idem: dict[str, Entry] = field(default_factory=dict)

    def balance(self, account: str) -> int:
        account_kind(account)
        return self.balances.get(account, 0)

    def escrow(self, contract: str) -> EscrowState | None:
        return self.escrows.get(contract)

    def check(self, entry: Entry, *, id_known_good: bool = False) -> EscrowState | None:
        """Raise when `entry` may not follow these books; returns the escrow's new state (escrow kinds).
        `id_known_good`: the caller has just built the entry with `Entry.build` (skips re-hashing it)."""
        if entry.seq != self.seq + 1 or entry.prev != self.last_id:
            raise AgoraError(
                "ledger_conflict", f"entry {entry.seq} does not follow entry {self.seq} (the journal moved on)"
            )
        if not id_known_good and entry.id != entry.compute_id():
            raise _bad(entry, "its id is not the hash of its fields")
        check_idem(entry.idem)
        if entry.idem in self.by_idem:
            raise AgoraError(
                "idempotency_conflict",
                f"idempotency key {entry.idem[:80]!r} was used by entry {self.by_idem[entry.idem].seq}",
            )
        _check_shape(entry)
        new_escrow = None
        if entry.kind in esc.ESCROW_KINDS:
            new_escrow = esc.transition(self.escrows.get(entry.contract), entry)
        for p in entry.postings:
            after = self.balances.get(p.account, 0) + p.amount
            if after < 0 and not may_go_negative(p.account):
                raise AgoraError(
                    "insufficient_funds",
                    f"{p.account[:100]} holds {after - p.amount}, {-p.amount} needed",
                    details={"account": p.account, "balance": after - p.amount, "needed": -p.amount},
                )
            if abs(after) > MAX_AMOUNT:
                raise _bad(entry, f"{p.account[:80]} would pass the largest balance the ledger keeps")
        return new_escrow

    def apply(self, entry: Entry) -> None:
        """Check `entry` and make it part of the books (nothing changes when it is refused)."""
        new_escrow = self.check(entry)
        self._commit(entry, new_escrow)

    def _commit(self, entry: Entry, new_escrow: EscrowState | None) -> None:
        for p in entry.postings:
            value = self.balances.get(p.account, 0) + p.amount
            if value:
                self.balances[p.account] = value
            else:
                self.balances.pop(p.account, None)
        if new_escrow is not None:
            self.escrows[entry.contract] = new_escrow
        self.by_idem[entry.idem] = entry
        self.seq = entry.seq
        self.last_id = entry.id

    @property
    def total(self) -> int:
        return sum(self.balances.values())

    def negative(self) -> list[tuple[str, int]]:
        return [(a, b) for a, b in self.balances.items() if b < 0 and a != ISSUANCE]


def _link_problem(entry: Entry, expected_seq: int, prev_id: str) -> str:
    if entry.seq != expected_seq:
        return f"expected entry {expected_seq}: entries are missing or out of order"
    if entry.prev != prev_id:
        return "its prev is not the id of the entry before it"
    if entry.id != entry.compute_id():
        return "its id is not the hash of its fields (edited after it was written)"
    return ""


def verify_chain(entries: Iterable[Entry]) -> VerifyReport:
    """Walk entries from the first: hash links, each id, every rule above. Names every entry that fails
    (after the first failure the books can no longer be trusted, so later entries are only checked for
    their hash link: one edit is reported once, where it was made, plus the link it breaks)."""
    books = Books()
    problems: list[tuple[int, str]] = []
    count = 0
    prev_id = ""
    expected_seq = 1
    for entry in entries:
        count += 1
        link = _link_problem(entry, expected_seq, prev_id)
        if link:
            problems.append((entry.seq, link))
        elif not problems:
            try:
                books.apply(entry)
            except AgoraError as exc:
                problems.append((entry.seq, f"{exc.code}: {exc.message}"))
        prev_id = entry.id
        expected_seq = entry.seq + 1
    if not problems and books.total != 0:  # cannot happen when every entry balances; checked all the same
        problems.append((books.seq, f"the balances sum to {books.total}, not 0"))
    return VerifyReport(
        ok=not problems,
        entries=count,
        last_id=prev_id,
        problems=tuple(problems),
        balances=dict(books.balances),
    )


def postings(*legs: tuple[str, int]) -> tuple[Posting, ...]:
    return tuple(Posting(a, n) for a, n in legs)


__all__ = [
    "FEES",
    "ISSUANCE",
    "MAX_IDEM_LEN",
    "Books",
    "check_amount",
    "check_idem",
    "check_text",
    "postings",
    "request_digest",
    "verify_chain",
]
