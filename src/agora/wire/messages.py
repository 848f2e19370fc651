"""Requests, receipts and announcements: the three signed shapes that travel between nodes.

- A **request** is a UCAN invocation (command = behavior path, args = payload) carried with the
  delegations it cites: DAG-CBOR `{"t": "agora/req@1", "inv": <invocation bytes>, "dlg": [<delegation bytes>]}`.
  The request itself is not signed again: the invocation inside is.
- A **receipt** answers a request: a sealed envelope of type `agora/rcpt@1.0.0` whose payload is
  `{"iss": responder DID, "ran": CID of the invocation, "out": {"ok": value} | {"err": {code, message,
  hint, retryable}}, "iat": seconds}`. When the request could not even be decoded, `ran` is the CID
  (raw codec) of the bytes received, so a reply always names what it answers.
- An **announcement** is a sealed envelope of type `agora/announce@1.0.0` (join, heartbeat, leave).

Every signature is made over a payload that begins with its type tag inside the envelope (the UCAN
envelope layout), so a signature made for one kind of message can never be replayed as another:
that is the domain separation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agora.codec import CID, RAW, decode, encode
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.ucan import Delegation, Invocation, open_envelope, seal_envelope

REQUEST_TAG = "agora/req@1"
RECEIPT_TAG = "agora/rcpt@1.0.0"
ANNOUNCE_TAG = "agora/announce@1.0.0"
DEFAULT_MAX_MESSAGE = 1024 * 1024


def check_size(data: bytes, limit: int) -> None:
    if len(data) > limit:
        raise AgoraError("message_too_large", f"message of {len(data)} bytes is over the {limit}-byte limit")


@dataclass(frozen=True)
class Request:
    invocation: Invocation
    delegations: tuple[Delegation, ...] = ()

    def encode(self) -> bytes:
        return encode({"t": REQUEST_TAG, "inv": self.invocation.raw, "dlg": [d.raw for d in self.delegations]})

    @classmethod
    def decode(cls, data: bytes, *, max_bytes: int = DEFAULT_MAX_MESSAGE) -> Request:
        check_size(data, max_bytes)
        body = decode(data)
        if not isinstance(body, dict) or body.get("t") != REQUEST_TAG or set(body) != {"t", "inv", "dlg"}:
            raise AgoraError("message_malformed", "not an agora request")
        inv, dlg = body["inv"], body["dlg"]
        if not isinstance(inv, bytes) or not isinstance(dlg, list) or not all(isinstance(d, bytes) for d in dlg):
            raise AgoraError("message_malformed", "request fields have the wrong types")
        if len(dlg) > 16:
            raise AgoraError("message_malformed", "a request carries at most 16 delegations")
        return cls(Invocation.decode(inv), tuple(Delegation.decode(d) for d in dlg))

    def proofs(self) -> dict[CID, Delegation]:
        return {d.cid: d for d in self.delegations}


@dataclass(frozen=True)
class Receipt:
    iss: str
    ran: CID
    ok: Any = None
    error: AgoraError | None = None
    iat: int = 0
    raw: bytes = field(default=b"", compare=False, repr=False)

    @property
    def is_ok(self) -> bool:
        return self.error is None

    def result(self) -> Any:
        """The value, or the error raised as an AgoraError (errors travel as data, raise here)."""
        if self.error is not None:
            raise self.error
        return self.ok

    @classmethod
    def issue(cls, keypair: Keypair, ran: CID, *, ok: Any = None, error: AgoraError | None = None, iat: int) -> Receipt:
        out: dict[str, Any] = {"err": error.to_dict()} if error is not None else {"ok": ok}
        payload = {"iss": keypair.did, "ran": ran, "out": out, "iat": int(iat)}
        raw = seal_envelope(keypair, RECEIPT_TAG, payload)
        return cls(keypair.did, ran, ok if error is None else None, error, int(iat), raw)

    @classmethod
    def decode(
        cls, data: bytes, *, expected_issuer: str | None = None, max_bytes: int = DEFAULT_MAX_MESSAGE
    ) -> Receipt:
        """Decode and verify a receipt; raises `receipt_invalid` for anything that does not verify."""
        try:
            check_size(data, max_bytes)
            env = open_envelope(data)
        except AgoraError as exc:
            raise AgoraError("receipt_invalid", f"undecodable receipt: {exc.message}") from None
        p = env.payload
        if env.type_tag != RECEIPT_TAG or not isinstance(p, dict) or set(p) != {"iss", "ran", "out", "iat"}:
            raise AgoraError("receipt_invalid", "not an agora receipt")
        iss, ran, out, iat = p["iss"], p["ran"], p["out"], p["iat"]
        if not isinstance(iss, str) or not isinstance(ran, CID) or type(iat) is not int or not isinstance(out, dict):
            raise AgoraError("receipt_invalid", "receipt fields have the wrong types")
        if expected_issuer is not None and iss != expected_issuer:
            raise AgoraError("receipt_invalid", f"receipt signed by {iss}, expected {expected_issuer}")
        try:
            verified = env.verify(iss)
        except AgoraError:
            verified = False
        if not verified:
            raise AgoraError("receipt_invalid", "receipt signature does not verify")
        if set(out) == {"ok"}:
            return cls(iss, ran, out["ok"], None, iat, bytes(data))
        if set(out) == {"err"} and isinstance(out["err"], dict):
            return cls(iss, ran, None, AgoraError.from_dict(out["err"]), iat, bytes(data))
        raise AgoraError("receipt_invalid", "receipt `out` must hold exactly one of ok / err")


def raw_cid(data: bytes) -> CID:
    """CID naming bytes that could not be decoded, so even a reject receipt names what it answers."""
    return CID.of(data, codec=RAW)


@dataclass(frozen=True)
class Announcement:
    """A node's signed presence: who it is, how to reach it, what it offers."""

    did: str
    kind: str  # "join" | "heartbeat" | "leave"
    version: str
    hubs: tuple[str, ...]
    capabilities: dict[str, Any]
    seq: int
    ts: int
    interval_ms: int | None = None  # the sender's heartbeat interval; absent from older nodes (None)

    KINDS = ("join", "heartbeat", "leave")

    def seal(self, keypair: Keypair) -> bytes:
        if keypair.did != self.did:
            raise AgoraError("invalid_argument", "an announcement is signed by the node it describes")
        payload = {
            "did": self.did,
            "kind": self.kind,
            "version": self.version,
            "hubs": list(self.hubs),
            "caps": self.capabilities,
            "seq": self.seq,
            "ts": self.ts,
        }
        if self.interval_ms is not None:
            payload["ivl"] = self.interval_ms
        return seal_envelope(keypair, ANNOUNCE_TAG, payload)

    @classmethod
    def open(cls, data: bytes, *, max_bytes: int = DEFAULT_MAX_MESSAGE) -> Announcement:
        check_size(data, max_bytes)
        env = open_envelope(data)
        p = env.payload
        keys = {"did", "kind", "version", "hubs", "caps", "seq", "ts"}
        if env.type_tag != ANNOUNCE_TAG or not isinstance(p, dict) or set(p) - {"ivl"} != keys:
            raise AgoraError("message_malformed", "not an agora announcement")
        if (
            not isinstance(p["did"], str)
            or p["kind"] not in cls.KINDS
            or not isinstance(p["version"], str)
            or not isinstance(p["hubs"], list)
            or not all(isinstance(h, str) for h in p["hubs"])
            or not isinstance(p["caps"], dict)
            or type(p["seq"]) is not int
            or type(p["ts"]) is not int
            or ("ivl" in p and (type(p["ivl"]) is not int or p["ivl"] <= 0))
        ):
            raise AgoraError("message_malformed", "announcement fields have the wrong types")
        if not env.verify(p["did"]):
            raise AgoraError("ucan_signature_invalid", "announcement signature does not verify")
        return cls(p["did"], p["kind"], p["version"], tuple(p["hubs"]), p["caps"], p["seq"], p["ts"], p.get("ivl"))


MESSAGE_TYPES: dict[str, str] = {
    REQUEST_TAG: "request: a UCAN invocation with its delegations",
    RECEIPT_TAG: "receipt: the signed answer to one request",
    ANNOUNCE_TAG: "announcement: a node's signed presence (join, heartbeat, leave)",
}


def build_request(invocation: Invocation, delegations: Sequence[Delegation] = ()) -> Request:
    return Request(invocation, tuple(delegations))


__all__ = [
    "ANNOUNCE_TAG",
    "DEFAULT_MAX_MESSAGE",
    "MESSAGE_TYPES",
    "RECEIPT_TAG",
    "REQUEST_TAG",
    "Announcement",
    "Receipt",
    "Request",
    "build_request",
    "check_size",
    "raw_cid",
]
