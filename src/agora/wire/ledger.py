"""The ledger protocol, `/agora/ledger/*`: the one schema the hub's ledger service (`agora.ledger.service`) and
its clients (`agora.ledger.remote.RemoteSettlement`) both import (pure: no I/O).

Version `LEDGER_RPC_VERSION` (1). A request without `"v"` is version 1; another version is refused
(`invalid_argument`). Every behavior is public (a member holds no grant from the hub): the caller's
authority is its signature, and the hub acts on behalf of the invocation's issuer only (`actor` = the
caller's DID, never a field of the request), so a node can only move its own money; the hub operator's
DIDs may mint, resolve and slash.

Requests (`*Args`, read by the hub with `read_args`: `invalid_argument` naming the field):

    /agora/ledger/info      {}                                        -> InfoReply
    /agora/ledger/balance   BalanceArgs {account}                     -> BalanceReply
    /agora/ledger/entries   EntriesArgs {account?, since, limit}      -> EntriesReply (entries as stored bytes)
    /agora/ledger/escrow    EscrowArgs {contract}                     -> {"escrow": mapping | None}
    /agora/ledger/verify    {}                                        -> VerifyReply
    /agora/ledger/mint      MintArgs {to, amount, idem, memo}         -> {"entry": bytes}
    /agora/ledger/transfer  TransferArgs {src, dst, amount, idem, memo}
    /agora/ledger/lock      LockArgs {contract, payer, payee, amount, idem}
    /agora/ledger/deliver   DeliverArgs {contract, usage_receipt, idem}
    /agora/ledger/release   ReleaseArgs {contract, metering_receipt, idem}
    /agora/ledger/refund    RefundArgs {contract, idem, reason}
    /agora/ledger/dispute   DisputeArgs {contract, idem, reason}
    /agora/ledger/resolve   ResolveArgs {contract, payee_amount, idem, decision}
    /agora/ledger/stake     StakeArgs {did, amount, idem}   (and /agora/ledger/unstake)
    /agora/ledger/slash     SlashArgs {did, amount, evidence, to, idem, memo}
    /agora/ledger/slash_claim  SlashClaimArgs {accused, agreeing, amount}   (the signed usage receipts;
                            the idempotency key is the hub's: one slash per job, unit and provider)
    /agora/ledger/stakes    StakesArgs {dids}                         -> StakesReply {stakes: {did: amount}}

Entries travel in their stored form (`Entry.encode()`, canonical DAG-CBOR with the id), so the client
recomputes every id itself and can check the hash chain (`agora ledger verify`): the hub is believed for
nothing it cannot prove. Replies in the wrong shape are `receipt_invalid` (`read_reply`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, get_type_hints

from agora.errors import AgoraError

LEDGER_RPC_VERSION = 1
PREFIX = "/agora/ledger/"

INFO = PREFIX + "info"
BALANCE = PREFIX + "balance"
ENTRIES = PREFIX + "entries"
ESCROW = PREFIX + "escrow"
VERIFY = PREFIX + "verify"
MINT = PREFIX + "mint"
TRANSFER = PREFIX + "transfer"
LOCK = PREFIX + "lock"
DELIVER = PREFIX + "deliver"
RELEASE = PREFIX + "release"
REFUND = PREFIX + "refund"
DISPUTE = PREFIX + "dispute"
RESOLVE = PREFIX + "resolve"
STAKE = PREFIX + "stake"
UNSTAKE = PREFIX + "unstake"
SLASH = PREFIX + "slash"
SLASH_CLAIM = PREFIX + "slash_claim"
STAKES = PREFIX + "stakes"

MAX_ENTRIES_PAGE = 500  # entries per reply: well inside the 1 MiB message limit
MAX_TEXT = 1024
MAX_BLOB = 256 * 1024  # a signed receipt
MAX_EVIDENCE = 64
MAX_STAKES = 256  # DIDs in one stakes lookup (a round's candidates)
MAX_CLAIM_RECEIPTS = 16


def _arg(message: str) -> AgoraError:
    return AgoraError("invalid_argument", message)


def _reply(message: str) -> AgoraError:
    return AgoraError("receipt_invalid", message, hint="The hub answered outside the ledger protocol.")


def check_version(data: Mapping[str, Any]) -> None:
    v = data.get("v", LEDGER_RPC_VERSION)
    if v != LEDGER_RPC_VERSION or isinstance(v, bool):
        raise _arg(f"ledger protocol version {str(v)[:20]!r} is not supported (this hub speaks {LEDGER_RPC_VERSION})")


# -- requests -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BalanceArgs:
    COMMAND: ClassVar[str] = BALANCE
    account: str  # an account name, or a DID (its wallet)


@dataclass(frozen=True)
class EntriesArgs:
    COMMAND: ClassVar[str] = ENTRIES
    account: str | None = None  # None: every entry (the whole chain, for `verify`)
    since: int = 0
    limit: int = MAX_ENTRIES_PAGE


@dataclass(frozen=True)
class EscrowArgs:
    COMMAND: ClassVar[str] = ESCROW
    contract: str


@dataclass(frozen=True)
class MintArgs:
    COMMAND: ClassVar[str] = MINT
    to: str
    amount: int
    idem: str
    memo: str = ""


@dataclass(frozen=True)
class TransferArgs:
    COMMAND: ClassVar[str] = TRANSFER
    src: str
    dst: str
    amount: int
    idem: str
    memo: str = ""


@dataclass(frozen=True)
class LockArgs:
    COMMAND: ClassVar[str] = LOCK
    contract: str
    payer: str
    payee: str
    amount: int
    idem: str


@dataclass(frozen=True)
class DeliverArgs:
    COMMAND: ClassVar[str] = DELIVER
    contract: str
    usage_receipt: bytes
    idem: str


@dataclass(frozen=True)
class ReleaseArgs:
    COMMAND: ClassVar[str] = RELEASE
    contract: str
    metering_receipt: bytes
    idem: str


@dataclass(frozen=True)
class RefundArgs:
    COMMAND: ClassVar[str] = REFUND
    contract: str
    idem: str
    reason: str = ""


@dataclass(frozen=True)
class DisputeArgs:
    COMMAND: ClassVar[str] = DISPUTE
    contract: str
    idem: str
    reason: str


@dataclass(frozen=True)
class ResolveArgs:
    COMMAND: ClassVar[str] = RESOLVE
    contract: str
    payee_amount: int
    idem: str
    decision: str


@dataclass(frozen=True)
class StakeArgs:
    COMMAND: ClassVar[str] = STAKE
    did: str
    amount: int
    idem: str


@dataclass(frozen=True)
class UnstakeArgs:
    COMMAND: ClassVar[str] = UNSTAKE
    did: str
    amount: int
    idem: str


@dataclass(frozen=True)
class SlashArgs:
    COMMAND: ClassVar[str] = SLASH
    did: str
    amount: int
    evidence: tuple[str, ...]
    to: str
    idem: str
    memo: str = ""


@dataclass(frozen=True)
class SlashClaimArgs:
    COMMAND: ClassVar[str] = SLASH_CLAIM
    accused: bytes
    agreeing: tuple[bytes, ...]
    amount: int


@dataclass(frozen=True)
class StakesArgs:
    COMMAND: ClassVar[str] = STAKES
    dids: tuple[str, ...]


@dataclass(frozen=True)
class StakesReply:
    stakes: Mapping[str, int]

    def to_wire(self) -> dict[str, Any]:
        return {"stakes": dict(self.stakes)}

    @classmethod
    def from_wire(cls, reply: Any) -> StakesReply:
        stakes = reply.get("stakes") if isinstance(reply, Mapping) else None
        if not isinstance(stakes, Mapping) or len(stakes) > MAX_STAKES:
            raise _reply("a stakes reply is {stakes: {did: amount}}")
        for did, amount in stakes.items():
            if not isinstance(did, str) or type(amount) is not int or amount < 0:
                raise _reply("a stakes reply maps DIDs to non-negative integers")
        return cls(dict(stakes))


A = TypeVar("A")


def _check_value(name: str, hint: Any, value: Any) -> Any:
    """The few field types the ledger's messages use; anything else in a request is the caller's mistake."""
    if hint is int:
        if type(value) is not int:
            raise _arg(f"args.{name} must be an integer (minor units), got {type(value).__name__}")
        return value
    if hint is str:
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise _arg(f"args.{name} must be a string of at most {MAX_TEXT} characters")
        return value
    if hint is bytes:
        if not isinstance(value, bytes) or len(value) > MAX_BLOB:
            raise _arg(f"args.{name} must be the signed bytes (at most {MAX_BLOB})")
        return value
    if hint == (str | None):
        return None if value is None else _check_value(name, str, value)
    if hint == tuple[str, ...]:
        most = MAX_STAKES if name == "dids" else MAX_EVIDENCE
        if not isinstance(value, list | tuple) or len(value) > most:
            raise _arg(f"args.{name} must be a list of at most {most} strings")
        return tuple(_check_value(f"{name}[]", str, v) for v in value)
    if hint == tuple[bytes, ...]:
        if not isinstance(value, list | tuple) or len(value) > MAX_CLAIM_RECEIPTS:
            raise _arg(f"args.{name} must be a list of at most {MAX_CLAIM_RECEIPTS} signed receipts")
        return tuple(_check_value(f"{name}[]", bytes, v) for v in value)
    raise TypeError(f"unsupported field type {hint!r}")  # pragma: no cover - a programming error


def to_args(message: Any) -> dict[str, Any]:
    """The invocation's args for a request dataclass (tuples as lists: DAG-CBOR has no tuple)."""
    out: dict[str, Any] = {"v": LEDGER_RPC_VERSION}
    for f in dataclasses.fields(message):
        value = getattr(message, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def read_args(cls: type[A], args: Mapping[str, Any]) -> A:
    """The hub's reading of a request: the version, no unknown field, every field of its type."""
    if not isinstance(args, Mapping):
        raise _arg("args must be a mapping")
    check_version(args)
    assert dataclasses.is_dataclass(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(args) - set(fields) - {"v"})
    if unknown:
        raise _arg(f"args.{str(unknown[0])[:40]} is not a field of {cls.__name__}")
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in args:
            if f.default is dataclasses.MISSING:
                raise _arg(f"args.{name} is required")
            continue
        values[name] = _check_value(name, hints[name], args[name])
    return cls(**values)


# -- replies --------------------------------------------------------------------------------------------


def entry_reply(entry_bytes: bytes) -> dict[str, Any]:
    return {"entry": entry_bytes}


def read_entry_reply(reply: Any) -> bytes:
    if not isinstance(reply, Mapping) or set(reply) != {"entry"} or not isinstance(reply["entry"], bytes):
        raise _reply("a ledger write answers {entry: bytes}")
    return bytes(reply["entry"])


@dataclass(frozen=True)
class BalanceReply:
    account: str
    balance: int

    def to_wire(self) -> dict[str, Any]:
        return {"account": self.account, "balance": self.balance}

    @classmethod
    def from_wire(cls, reply: Any) -> BalanceReply:
        ok = (
            isinstance(reply, Mapping)
            and set(reply) == {"account", "balance"}
            and isinstance(reply["account"], str)
            and type(reply["balance"]) is int
        )
        if not ok:
            raise _reply("a balance reply is {account: str, balance: int}")
        return cls(reply["account"], reply["balance"])


@dataclass(frozen=True)
class EntriesReply:
    """A page of entries (stored bytes, oldest first) and `head`, the journal's last seq when it was read."""

    entries: tuple[bytes, ...]
    head: int

    def to_wire(self) -> dict[str, Any]:
        return {"entries": list(self.entries), "head": self.head}

    @classmethod
    def from_wire(cls, reply: Any) -> EntriesReply:
        ok = (
            isinstance(reply, Mapping)
            and set(reply) == {"entries", "head"}
            and isinstance(reply["entries"], list)
            and len(reply["entries"]) <= MAX_ENTRIES_PAGE
            and all(isinstance(e, bytes) for e in reply["entries"])
            and type(reply["head"]) is int
        )
        if not ok:
            raise _reply(f"an entries reply is {{entries: [bytes] (at most {MAX_ENTRIES_PAGE}), head: int}}")
        return cls(tuple(reply["entries"]), reply["head"])


_ESCROW_FIELDS: Mapping[str, type] = {
    "contract": str,
    "payer": str,
    "payee": str,
    "amount_locked": int,
    "released": int,
    "refunded": int,
    "state": str,
    "decision": str,
    "delivery_receipts": list,
    "dispute_reason": str,
}


def escrow_reply(escrow: Mapping[str, Any] | None) -> dict[str, Any]:
    """`escrow`: `EscrowState.to_dict()` or None (no escrow for that contract)."""
    return {"escrow": None if escrow is None else {k: escrow[k] for k in _ESCROW_FIELDS}}


def read_escrow_reply(reply: Any) -> dict[str, Any] | None:
    """The escrow's fields (the ones `EscrowState` takes), or None."""
    if not isinstance(reply, Mapping) or set(reply) != {"escrow"}:
        raise _reply("an escrow reply is {escrow: mapping | null}")
    esc = reply["escrow"]
    if esc is None:
        return None
    ok = (
        isinstance(esc, Mapping)
        and set(esc) == set(_ESCROW_FIELDS)
        and all(
            isinstance(esc[k], t) and not (t is int and isinstance(esc[k], bool)) for k, t in _ESCROW_FIELDS.items()
        )
        and all(isinstance(r, str) for r in esc["delivery_receipts"])
    )
    if not ok:
        raise _reply("an escrow reply does not have the escrow's fields")
    return {**esc, "delivery_receipts": tuple(esc["delivery_receipts"])}


@dataclass(frozen=True)
class VerifyReply:
    """The hub's own `verify` of the whole stored journal (a node checks it too: `agora ledger verify`)."""

    ok: bool
    entries: int
    last_id: str
    problems: tuple[tuple[int, str], ...]
    balances: Mapping[str, int]

    def to_wire(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "last_id": self.last_id,
            "problems": [[s, m] for s, m in self.problems],
            "balances": dict(self.balances),
        }

    @classmethod
    def from_wire(cls, reply: Any) -> VerifyReply:
        ok = (
            isinstance(reply, Mapping)
            and set(reply) == {"ok", "entries", "last_id", "problems", "balances"}
            and isinstance(reply["ok"], bool)
            and type(reply["entries"]) is int
            and isinstance(reply["last_id"], str)
            and isinstance(reply["problems"], list)
            and all(
                isinstance(p, list) and len(p) == 2 and type(p[0]) is int and isinstance(p[1], str)
                for p in reply["problems"]
            )
            and isinstance(reply["balances"], Mapping)
            and all(isinstance(k, str) and type(v) is int for k, v in reply["balances"].items())
        )
        if not ok:
            raise _reply("a verify reply is {ok, entries, last_id, problems: [[seq, message]], balances}")
        return cls(
            reply["ok"],
            reply["entries"],
            reply["last_id"],
            tuple((p[0], p[1]) for p in reply["problems"]),
            dict(reply["balances"]),
        )


@dataclass(frozen=True)
class InfoReply:
    """Who runs this ledger: the hub's DID, the operator DIDs (may mint, resolve, slash), the journal's head."""

    hub: str
    operators: tuple[str, ...]
    head: int

    def to_wire(self) -> dict[str, Any]:
        return {"v": LEDGER_RPC_VERSION, "hub": self.hub, "operators": list(self.operators), "head": self.head}

    @classmethod
    def from_wire(cls, reply: Any) -> InfoReply:
        ok = (
            isinstance(reply, Mapping)
            and set(reply) == {"v", "hub", "operators", "head"}
            and reply["v"] == LEDGER_RPC_VERSION
            and isinstance(reply["hub"], str)
            and isinstance(reply["operators"], list)
            and all(isinstance(o, str) for o in reply["operators"])
            and type(reply["head"]) is int
        )
        if not ok:
            raise _reply("an info reply is {v, hub, operators, head}")
        return cls(reply["hub"], tuple(reply["operators"]), reply["head"])


__all__ = [
    "BALANCE",
    "DELIVER",
    "DISPUTE",
    "ENTRIES",
    "ESCROW",
    "INFO",
    "LEDGER_RPC_VERSION",
    "LOCK",
    "MAX_ENTRIES_PAGE",
    "MINT",
    "PREFIX",
    "REFUND",
    "RELEASE",
    "RESOLVE",
    "SLASH",
    "SLASH_CLAIM",
    "STAKE",
    "STAKES",
    "TRANSFER",
    "UNSTAKE",
    "VERIFY",
    "BalanceArgs",
    "BalanceReply",
    "DeliverArgs",
    "DisputeArgs",
    "EntriesArgs",
    "EntriesReply",
    "EscrowArgs",
    "InfoReply",
    "LockArgs",
    "MintArgs",
    "RefundArgs",
    "ReleaseArgs",
    "ResolveArgs",
    "SlashArgs",
    "SlashClaimArgs",
    "StakeArgs",
    "StakesArgs",
    "StakesReply",
    "TransferArgs",
    "UnstakeArgs",
    "VerifyReply",
    "check_version",
    "entry_reply",
    "escrow_reply",
    "read_args",
    "read_entry_reply",
    "read_escrow_reply",
    "to_args",
]
