"""The ledger's types and plug points: accounts, postings, entries, escrow state, `JournalStore`, `Settlement`.

Pure (no I/O): every other module of `agora.ledger` and its users (the orchestrator's escrow wiring, the
hub's ledger service, a remote settlement client) build on these names, so they stay stable.

**Accounts** are strings: `wallet:<did>` (a member's money), `escrow:<contract_id>` (money held for one
contract), `stake:<did>` (a provider's locked stake), `fees` (the operator's fees) and `issuance` (where
minted money comes from). Balances are integers in minor units; the sum over all accounts is always 0,
and only `issuance` may go below zero (it is minus the money in circulation).

**Entries** are append-only and balanced: the amounts of an entry's postings sum to 0 (a positive amount
grows the account's balance). Each entry carries the id of the previous one (`prev`, "" for the first),
and its own id is the SHA-256 (hex) of the canonical DAG-CBOR encoding of every other field: editing any
stored entry breaks the chain at that entry, and `Ledger.verify` names it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Final, Literal, Protocol, get_args, runtime_checkable

from agora.codec import decode, encode
from agora.errors import AgoraError

# -- accounts -----------------------------------------------------------------------------------------

FEES: Final = "fees"
ISSUANCE: Final = "issuance"
WALLET_PREFIX: Final = "wallet:"
ESCROW_PREFIX: Final = "escrow:"
STAKE_PREFIX: Final = "stake:"
MAX_ACCOUNT_LEN: Final = 512
MAX_AMOUNT: Final = 2**62  # far beyond any real balance; keeps every sum inside a signed 64-bit integer

AccountKind = Literal["wallet", "escrow", "stake", "fees", "issuance"]
ACCOUNT_KINDS: Final[tuple[str, ...]] = get_args(AccountKind)


_SPACE = re.compile(r"\s")


def _suffix(name: str, what: str) -> str:
    if not isinstance(name, str) or not name or len(name) > MAX_ACCOUNT_LEN - 16 or _SPACE.search(name):
        raise AgoraError("invalid_argument", f"{what} must be a non-empty string without spaces, got {name!r}")
    return name


def wallet(did: str) -> str:
    """The wallet account of a member (a DID)."""
    return WALLET_PREFIX + _suffix(did, "a wallet's DID")


def escrow_account(contract: str) -> str:
    """The account that holds the escrow of one contract."""
    return ESCROW_PREFIX + _suffix(contract, "a contract id")


def stake_account(did: str) -> str:
    """The account that holds a provider's locked stake."""
    return STAKE_PREFIX + _suffix(did, "a stake's DID")


@lru_cache(maxsize=65536)
def _kind_of(account: str) -> AccountKind | None:
    if account == FEES:
        return "fees"
    if account == ISSUANCE:
        return "issuance"
    if isinstance(account, str) and len(account) <= MAX_ACCOUNT_LEN:
        for prefix, kind in ((WALLET_PREFIX, "wallet"), (ESCROW_PREFIX, "escrow"), (STAKE_PREFIX, "stake")):
            if account.startswith(prefix) and len(account) > len(prefix) and not _SPACE.search(account):
                return kind  # type: ignore[return-value]
    return None


def account_kind(account: str) -> AccountKind:
    """The kind of an account name; anything that is not one of the five shapes is `invalid_argument`."""
    kind = _kind_of(account) if isinstance(account, str) else None
    if kind is not None:
        return kind
    raise AgoraError(
        "invalid_argument",
        f"not a ledger account: {str(account)[:80]!r} (wallet:<did>, escrow:<contract>, stake:<did>, fees, issuance)",
    )


def account_owner(account: str) -> str:
    """The DID or contract id after the prefix ("" for `fees` and `issuance`)."""
    kind = account_kind(account)
    return "" if kind in ("fees", "issuance") else account.split(":", 1)[1]


def may_go_negative(account: str) -> bool:
    """The one rule on going below zero: only `issuance` may."""
    return account_kind(account) == "issuance"


# -- entries ------------------------------------------------------------------------------------------

EntryKind = Literal[
    "mint",
    "transfer",
    "escrow_lock",
    "escrow_deliver",  # the provider's usage receipt is recorded (no money moves): the payer alone can no longer refund
    "escrow_release",
    "escrow_refund",
    "escrow_dispute",  # no money moves: the escrow is frozen until the operator resolves it
    "escrow_resolve",
    "stake_lock",
    "stake_unlock",
    "slash",
    "fee",
]
ENTRY_KINDS: Final[tuple[str, ...]] = get_args(EntryKind)


@dataclass(frozen=True, slots=True)
class Posting:
    """One leg of an entry: `amount` (minor units) added to `account` (negative takes from it)."""

    account: str
    amount: int

    def to_list(self) -> list[Any]:
        return [self.account, self.amount]


_HASHED_MAP_HEAD = 0xA0 + 12  # a DAG-CBOR map of the 12 hashed fields
_ID_KEY = encode("id")


@dataclass(frozen=True, slots=True)
class Entry:
    """One balanced, append-only journal entry.

    - `seq`: 1 for the first entry, then +1 each (the store's expected-sequence writes rely on it).
    - `id`: SHA-256 hex of the canonical DAG-CBOR of every other field (`hash_fields`), `prev` included.
    - `kind`: what the entry does; `postings` sum to 0; `idem`: the idempotency key of the operation
      that made it (unique over the journal); `request`: a digest of that operation's arguments, so a
      retry with the same key but other arguments is told apart from a true retry.
    - `contract`: the contract it belongs to ("" when none); `receipts`: CIDs of the signed evidence
      (usage receipts, metering receipts, slash evidence); `actor`: the DID that asked for it.
    - `meta`: small string facts the state needs (escrow payer/payee, a dispute's reason, a decision).
    """

    seq: int
    id: str
    prev: str
    time: float
    kind: str
    postings: tuple[Posting, ...]
    idem: str
    actor: str
    contract: str = ""
    receipts: tuple[str, ...] = ()
    memo: str = ""
    request: str = ""
    meta: Mapping[str, str] = field(default_factory=dict)
    # the DAG-CBOR of `hash_fields()` when `build` just made it (not an init field: `replace` drops it)
    _hashed: bytes = field(default=b"", init=False, compare=False, repr=False)

    def hash_fields(self) -> dict[str, Any]:
        """Every field but `id`, in the canonical shape the id is computed over."""
        return {
            "seq": self.seq,
            "prev": self.prev,
            "time": float(self.time),
            "kind": self.kind,
            "postings": [p.to_list() for p in self.postings],
            "idem": self.idem,
            "actor": self.actor,
            "contract": self.contract,
            "receipts": list(self.receipts),
            "memo": self.memo,
            "request": self.request,
            "meta": dict(self.meta),
        }

    def compute_id(self) -> str:
        return hashlib.sha256(encode(self.hash_fields())).hexdigest()

    @classmethod
    def build(
        cls,
        *,
        seq: int,
        prev: str,
        time: float,
        kind: str,
        postings: Sequence[Posting],
        idem: str,
        actor: str,
        contract: str = "",
        receipts: Sequence[str] = (),
        memo: str = "",
        request: str = "",
        meta: Mapping[str, str] | None = None,
    ) -> Entry:
        """A new entry with its id computed (the only way the ledger makes one)."""
        draft = cls(
            seq=seq,
            id="",
            prev=prev,
            time=float(time),
            kind=kind,
            postings=tuple(postings),
            idem=idem,
            actor=actor,
            contract=contract,
            receipts=tuple(receipts),
            memo=memo,
            request=request,
            meta=dict(meta or {}),
        )
        body = encode(draft.hash_fields())
        entry = replace(draft, id=hashlib.sha256(body).hexdigest())
        object.__setattr__(entry, "_hashed", body)
        return entry

    @property
    def total(self) -> int:
        return sum(p.amount for p in self.postings)

    def amount_for(self, account: str) -> int:
        return sum(p.amount for p in self.postings if p.account == account)

    def touches(self, account: str) -> bool:
        return any(p.account == account for p in self.postings)

    def encode(self) -> bytes:
        """The stored form: canonical DAG-CBOR of every field, `id` included.

        Spliced from the hashed form rather than encoded twice: canonical DAG-CBOR orders map keys by
        length first, so `id` (the shortest key) comes first, and the rest is the hashed map's body."""
        body = self._hashed or encode(self.hash_fields())
        if body[0] != _HASHED_MAP_HEAD:
            raise AgoraError("internal", "an entry's hashed form is not a 12-key map")
        return bytes([_HASHED_MAP_HEAD + 1]) + _ID_KEY + encode(self.id) + body[1:]

    @classmethod
    def decode(cls, data: bytes) -> Entry:
        """Shape-check a stored entry (the hash chain is `Ledger.verify`'s job, so a tampered entry still
        loads and can be named); a malformed one is `ledger_corrupt`."""
        try:
            d = decode(data)
        except AgoraError as exc:
            raise AgoraError("ledger_corrupt", f"a journal entry is not DAG-CBOR: {exc.message}") from None
        return cls.from_dict(d)

    @classmethod
    def from_dict(cls, d: Any) -> Entry:
        keys = {"seq", "id", "prev", "time", "kind", "postings", "idem", "actor", "contract", "receipts", "memo"}
        keys |= {"request", "meta"}
        if not isinstance(d, dict) or set(d) != keys:
            raise AgoraError("ledger_corrupt", "a journal entry does not have the entry fields")
        strs = ("id", "prev", "kind", "idem", "actor", "contract", "memo", "request")
        ok = (
            type(d["seq"]) is int
            and isinstance(d["time"], float | int)
            and not isinstance(d["time"], bool)
            and all(isinstance(d[k], str) for k in strs)
            and isinstance(d["postings"], list)
            and all(
                isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and type(p[1]) is int
                for p in d["postings"]
            )
            and isinstance(d["receipts"], list)
            and all(isinstance(r, str) for r in d["receipts"])
            and isinstance(d["meta"], dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in d["meta"].items())
        )
        if not ok:
            raise AgoraError("ledger_corrupt", f"journal entry {d.get('seq')!r} has fields of the wrong types")
        return cls(
            seq=d["seq"],
            id=d["id"],
            prev=d["prev"],
            time=float(d["time"]),
            kind=d["kind"],
            postings=tuple(Posting(a, n) for a, n in d["postings"]),
            idem=d["idem"],
            actor=d["actor"],
            contract=d["contract"],
            receipts=tuple(d["receipts"]),
            memo=d["memo"],
            request=d["request"],
            meta=dict(d["meta"]),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the API and the CLI."""
        return {
            **self.hash_fields(),
            "id": self.id,
            "postings": [{"account": p.account, "amount": p.amount} for p in self.postings],
        }


# -- escrow -------------------------------------------------------------------------------------------

EscrowStatus = Literal["locked", "released", "partially_released", "refunded", "disputed", "resolved"]
ESCROW_STATES: Final[tuple[str, ...]] = get_args(EscrowStatus)
SETTLED_STATES: Final = frozenset({"released", "partially_released", "refunded", "resolved"})


@dataclass(frozen=True, slots=True)
class EscrowState:
    """Where one contract's escrow stands, derived from the journal (never stored on its own).

    `locked → released | partially_released | refunded`, or `locked → disputed → resolved`.
    `amount_locked` is what was locked; `released` went to the payee, `refunded` back to the payer;
    `delivery_receipts` are the CIDs of usage receipts the provider recorded (after the first one the
    payer can no longer refund on its own); `decision` is the operator's recorded decision.
    """

    contract: str
    payer: str
    payee: str
    amount_locked: int
    released: int = 0
    refunded: int = 0
    state: str = "locked"
    decision: str = ""
    delivery_receipts: tuple[str, ...] = ()
    dispute_reason: str = ""

    @property
    def held(self) -> int:
        """What the escrow account still holds."""
        return self.amount_locked - self.released - self.refunded

    @property
    def settled(self) -> bool:
        return self.state in SETTLED_STATES

    def to_dict(self) -> dict[str, Any]:
        return {
            "contract": self.contract,
            "payer": self.payer,
            "payee": self.payee,
            "amount_locked": self.amount_locked,
            "released": self.released,
            "refunded": self.refunded,
            "held": self.held,
            "state": self.state,
            "decision": self.decision,
            "delivery_receipts": list(self.delivery_receipts),
            "dispute_reason": self.dispute_reason,
        }


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What `verify` found: `ok`, how many entries it walked, the balances it rebuilt, and each problem
    as `(seq, message)` (the first bad seq is `first_bad_seq`)."""

    ok: bool
    entries: int
    last_id: str
    problems: tuple[tuple[int, str], ...] = ()
    balances: Mapping[str, int] = field(default_factory=dict)

    @property
    def first_bad_seq(self) -> int | None:
        return self.problems[0][0] if self.problems else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "last_id": self.last_id,
            "problems": [{"seq": s, "message": m} for s, m in self.problems],
            "sum": sum(self.balances.values()),
        }


# -- plug points --------------------------------------------------------------------------------------


@runtime_checkable
class JournalStore(Protocol):
    """Where entries are kept: append-only, in `seq` order, with compare-and-append.

    `append(entry, expected_seq)` stores `entry` only when the journal's last seq is still
    `expected_seq` (0 for an empty journal; `entry.seq` must be `expected_seq + 1`); otherwise it raises
    `ledger_conflict` and stores nothing. That single rule is what keeps two writers (two hubs of a
    cluster, two processes) from ever spending the same money twice: the loser reloads and retries.
    `read(since_seq, limit)` returns entries with `seq > since_seq` in order, at most `limit`; `last()` the
    newest or None. Implementations: `MemoryJournalStore`, `SqliteJournalStore`, `JetStreamJournalStore`,
    all passing `tests/unit/ledger/conformance.py`.
    """

    async def append(self, entry: Entry, expected_seq: int) -> None: ...

    async def read(self, since_seq: int = 0, limit: int = 1000) -> list[Entry]: ...

    async def last(self) -> Entry | None: ...

    async def close(self) -> None: ...


@runtime_checkable
class Settlement(Protocol):
    """How agora moves money: the internal ledger first (`InternalLedgerSettlement`), a remote client of a
    hub's ledger over RPC next; Lightning or a chain can sit behind the same methods later.

    Every mutating call names the `actor` (the DID the caller authenticated as: the RPC layer checks
    it, the settlement trusts it) and an idempotency key `idem`: a retry with the same key and the same
    arguments returns the FIRST entry and changes nothing; the same key with other arguments is
    `idempotency_conflict`. Who may do what:

    - `mint`: the operator only (`ledger_unauthorized`), from `issuance` into a wallet.
    - `transfer`: from the actor's own wallet (or any account, by the operator).
    - `lock`: the payer (or the operator), from the payer's wallet into `escrow:<contract>`, once.
    - `deliver`: the payee records its signed usage receipt (no money moves).
    - `release`: anyone holding the metering receipt signed by both parties; the amount is the one the
      requester accepted; a remainder is refunded to the payer in the same entry (`partially_released`).
    - `refund`: the payee at any time, the payer only before a delivery receipt was recorded, the
      operator always; whatever the escrow holds goes back to the payer.
    - `dispute`: either party (or the operator) while the escrow is locked: it freezes (`contract_disputed`).
    - `resolve`: the operator only, on a disputed escrow: `payee_amount` to the payee, the rest to the
      payer, with the decision recorded.
    - `stake`/`unstake`: the DID itself (or the operator); `slash`: the operator, with the evidence.
    - `slash_proven`: the requester of a unit (or the operator), with the signed usage receipts that prove
      the accused's outputs were contradicted by redundancy (`ledger/proof.py`); once per (job, unit,
      provider); the stake goes to `fees`.
    - `stakes`: what each DID holds in stake (0 for none), in one call (matching's `min_stake`).
    """

    async def balance(self, account: str) -> int: ...

    async def mint(self, to_did: str, amount: int, *, actor: str, idem: str, memo: str = "") -> Entry: ...

    async def transfer(self, src: str, dst: str, amount: int, *, actor: str, idem: str, memo: str = "") -> Entry: ...

    async def lock(self, contract: str, payer: str, payee: str, amount: int, *, actor: str, idem: str) -> Entry: ...

    async def deliver(self, contract: str, usage_receipt: bytes, *, actor: str, idem: str) -> Entry: ...

    async def release(self, contract: str, metering_receipt: bytes, *, actor: str, idem: str) -> Entry: ...

    async def refund(self, contract: str, *, actor: str, idem: str, reason: str = "") -> Entry: ...

    async def dispute(self, contract: str, *, actor: str, idem: str, reason: str) -> Entry: ...

    async def resolve(self, contract: str, payee_amount: int, *, actor: str, idem: str, decision: str) -> Entry: ...

    async def escrow(self, contract: str) -> EscrowState | None: ...

    async def entries(self, account: str | None = None, since: int = 0, limit: int = 1000) -> list[Entry]: ...

    async def stake(self, did: str, amount: int, *, actor: str, idem: str) -> Entry: ...

    async def unstake(self, did: str, amount: int, *, actor: str, idem: str) -> Entry: ...

    async def slash(
        self, did: str, amount: int, *, evidence: Sequence[str], to: str, actor: str, idem: str, memo: str = ""
    ) -> Entry: ...

    async def slash_proven(self, accused: bytes, agreeing: Sequence[bytes], amount: int, *, actor: str) -> Entry: ...

    async def stakes(self, dids: Sequence[str]) -> dict[str, int]: ...

    async def verify(self) -> VerifyReport: ...


__all__ = [
    "ACCOUNT_KINDS",
    "ENTRY_KINDS",
    "ESCROW_PREFIX",
    "ESCROW_STATES",
    "FEES",
    "ISSUANCE",
    "MAX_AMOUNT",
    "SETTLED_STATES",
    "STAKE_PREFIX",
    "WALLET_PREFIX",
    "AccountKind",
    "Entry",
    "EntryKind",
    "EscrowState",
    "EscrowStatus",
    "JournalStore",
    "Posting",
    "Settlement",
    "VerifyReport",
    "account_kind",
    "account_owner",
    "escrow_account",
    "may_go_negative",
    "stake_account",
    "wallet",
]
