"""Delegations and invocations: typed, shape-checked views of UCAN 1.0 envelopes.

Both classes are immutable by convention and built only by `decode` (from received bytes) or by
`delegate` / `invoke` (which seal a fresh token). Each keeps its exact `raw` bytes and `cid`
(CIDv1, dag-cbor, sha2-256 of `raw`): the CID names exactly the bytes that were signed, which is
what lets the validator cache "this delegation verified" by CID.

Decoding checks the shape of every field (types, required fields, command syntax, did:key issuer,
integer time bounds within 53 bits) and rejects unknown fields: a field this code does not understand
could carry a restriction it would then silently ignore. Signatures are NOT checked here; that is
`validate_invocation`'s job (or `verify()`).
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from agora.codec import CID
from agora.errors import AgoraError
from agora.identity import Keypair, public_from_did, verify
from agora.ucan.command import command_problem
from agora.ucan.envelope import open_parts, seal_envelope
from agora.ucan.policy import Policy

DELEGATION_TAG = "ucan/dlg@1.0.0"
INVOCATION_TAG = "ucan/inv@1.0.0"
NONCE_SIZE = 12
MAX_TIME = 2**53 - 1
MAX_PROOFS = 64  # each unknown proof costs a signature check; real chains are a handful long
_CID_PREFIX = b"\x01\x71\x12\x20"  # CIDv1, dag-cbor, sha2-256, 32-byte digest

_DLG_REQUIRED = frozenset({"iss", "aud", "sub", "cmd", "pol", "nonce", "exp"})
_DLG_ALLOWED = _DLG_REQUIRED | {"nbf", "meta"}
_INV_REQUIRED = frozenset({"iss", "sub", "cmd", "args", "prf", "nonce", "exp"})
_INV_ALLOWED = _INV_REQUIRED | {"aud", "meta", "iat", "cause"}


def token_cid(raw: bytes) -> CID:
    return CID(_CID_PREFIX + hashlib.sha256(raw).digest())


def _bad(message: str) -> AgoraError:
    return AgoraError("ucan_malformed", message)


def _did(payload: dict[str, Any], key: str, *, signer: bool = False) -> str:
    value = payload[key]
    if type(value) is not str or not value.startswith("did:") or value.count(":") < 2 or len(value) > 512:
        raise _bad(f"{key} must be a DID string")
    if signer:  # the issuer signs, so its DID must name an Ed25519 key we can verify with
        try:
            public_from_did(value)
        except AgoraError as exc:
            raise _bad(f"{key}: {exc.message}") from None
    return value


def _time(payload: dict[str, Any], key: str, *, nullable: bool) -> int | None:
    value = payload.get(key)
    if value is None:
        if nullable or key not in payload:
            return None
        raise _bad(f"{key} must be an integer")
    if type(value) is not int or not -MAX_TIME <= value <= MAX_TIME:
        raise _bad(f"{key} must be an integer of at most 53 bits{' or null' if nullable else ''}")
    return value


def _common(payload: dict[str, Any], required: frozenset[str], allowed: frozenset[str], what: str) -> None:
    keys = payload.keys()
    if not required <= keys:
        raise _bad(f"{what} lacks {', '.join(sorted(required - keys))}")
    if not keys <= allowed:
        raise _bad(f"{what} has unknown fields: {', '.join(sorted(keys - allowed))[:200]}")
    cmd = payload["cmd"]
    if type(cmd) is not str:
        raise _bad("cmd must be a string")
    problem = command_problem(cmd)
    if problem is not None:
        raise _bad(problem)
    if type(payload["nonce"]) is not bytes:
        raise _bad("nonce must be bytes")
    meta = payload.get("meta")
    if meta is not None and type(meta) is not dict:
        raise _bad("meta must be a map")
    if "meta" in payload and meta is None:
        raise _bad("meta must be a map")


class Delegation:
    """A UCAN delegation: `iss` grants `aud` authority for `cmd` (and below) on `sub`, under `pol`."""

    __slots__ = (
        "_verified",
        "aud",
        "cid",
        "cmd",
        "exp",
        "iss",
        "meta",
        "nbf",
        "nonce",
        "pol",
        "policy",
        "raw",
        "signature",
        "signed_bytes",
        "sub",
    )

    raw: bytes
    cid: CID
    signature: bytes
    signed_bytes: bytes
    iss: str
    aud: str
    sub: str | None
    cmd: str
    pol: list[Any]
    policy: Policy
    nonce: bytes
    exp: int | None
    nbf: int | None
    meta: dict[str, Any] | None
    _verified: bool

    def __init__(self) -> None:  # use Delegation.decode or delegate()
        raise TypeError("build a Delegation with Delegation.decode(raw) or agora.ucan.delegate(...)")

    @classmethod
    def decode(cls, raw: bytes) -> Delegation:
        """Parse a delegation token; cached by its exact bytes (a proof arrives with many invocations)."""
        if type(raw) is bytes:
            hit = _DECODED.get(raw)
            if hit is not None:
                return hit
        signature, tag, payload, signed = open_parts(raw)
        if tag != DELEGATION_TAG:
            raise _bad(f"expected a {DELEGATION_TAG} envelope, got {tag[:80]!r}")
        _common(payload, _DLG_REQUIRED, _DLG_ALLOWED, "a delegation")
        self = object.__new__(cls)
        self.raw = bytes(raw)
        self.cid = token_cid(self.raw)
        self.signature = signature
        self.signed_bytes = signed
        self.iss = _did(payload, "iss", signer=True)
        self.aud = _did(payload, "aud")
        self.sub = None if payload["sub"] is None else _did(payload, "sub")
        self.cmd = payload["cmd"]
        pol = payload["pol"]
        if type(pol) is not list:
            raise _bad("pol must be an array of statements")
        self.policy = Policy.from_json(pol)  # raises ucan_policy_invalid naming the bad statement
        self.pol = pol
        self.nonce = payload["nonce"]
        self.exp = _time(payload, "exp", nullable=True)
        self.nbf = _time(payload, "nbf", nullable=False)
        self.meta = payload.get("meta")
        self._verified = False
        _remember(self)
        return self

    def verify(self) -> bool:
        """True when the signature verifies with `iss`'s key (remembered: the bytes cannot change)."""
        if not self._verified:
            self._verified = verify(self.iss, self.signed_bytes, self.signature)
        return self._verified

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Delegation) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.cid)

    def __repr__(self) -> str:
        return f"Delegation({self.cid}, {self.iss[-8:]}->{self.aud[-8:]} {self.cmd})"


class Invocation:
    """A UCAN invocation: `iss` asks for `cmd` with `args` on `sub`, proven by `prf` (root first)."""

    __slots__ = (
        "args",
        "aud",
        "cause",
        "cid",
        "cmd",
        "exp",
        "iat",
        "iss",
        "meta",
        "nonce",
        "prf",
        "raw",
        "signature",
        "signed_bytes",
        "sub",
    )

    raw: bytes
    cid: CID
    signature: bytes
    signed_bytes: bytes
    iss: str
    sub: str
    aud: str | None
    cmd: str
    args: dict[str, Any]
    prf: list[CID]
    nonce: bytes
    exp: int | None
    iat: int | None
    meta: dict[str, Any] | None
    cause: CID | None

    def __init__(self) -> None:  # use Invocation.decode or invoke()
        raise TypeError("build an Invocation with Invocation.decode(raw) or agora.ucan.invoke(...)")

    @classmethod
    def decode(cls, raw: bytes) -> Invocation:
        signature, tag, payload, signed = open_parts(raw)
        if tag != INVOCATION_TAG:
            raise _bad(f"expected a {INVOCATION_TAG} envelope, got {tag[:80]!r}")
        return cls._build(bytes(raw), signature, signed, payload)

    @classmethod
    def _build(cls, raw: bytes, signature: bytes, signed: bytes, payload: dict[str, Any]) -> Invocation:
        _common(payload, _INV_REQUIRED, _INV_ALLOWED, "an invocation")
        self = object.__new__(cls)
        self.raw = raw
        self.cid = token_cid(raw)
        self.signature = signature
        self.signed_bytes = signed
        self.iss = _did(payload, "iss", signer=True)
        self.sub = _did(payload, "sub")
        self.aud = _did(payload, "aud") if "aud" in payload else None
        self.cmd = payload["cmd"]
        args = payload["args"]
        if type(args) is not dict:
            raise _bad("args must be a map")
        self.args = args
        prf = payload["prf"]
        if type(prf) is not list or any(type(c) is not CID for c in prf):
            raise _bad("prf must be an array of CIDs")
        if len(prf) > MAX_PROOFS:
            raise _bad(f"prf cites {len(prf)} proofs; at most {MAX_PROOFS} are accepted")
        self.prf = prf
        self.nonce = payload["nonce"]
        self.exp = _time(payload, "exp", nullable=True)
        self.iat = _time(payload, "iat", nullable=False)
        self.meta = payload.get("meta")
        cause = payload.get("cause")
        if (cause is not None and type(cause) is not CID) or ("cause" in payload and cause is None):
            raise _bad("cause must be a CID")
        self.cause = cause
        return self

    def verify(self) -> bool:
        return verify(self.iss, self.signed_bytes, self.signature)

    @property
    def audience(self) -> str:
        """Who is meant to execute it: `aud`, or the subject when `aud` is absent (the spec's default)."""
        return self.aud if self.aud is not None else self.sub

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Invocation) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.cid)

    def __repr__(self) -> str:
        return f"Invocation({self.cid}, {self.iss[-8:]} {self.cmd})"


# Decoded delegations by exact bytes; bounded LRU, safe to share because a Delegation never changes.
_DECODED: OrderedDict[bytes, Delegation] = OrderedDict()
DECODE_CACHE_SIZE = 4096


def _remember(d: Delegation) -> None:
    _DECODED[d.raw] = d
    if len(_DECODED) > DECODE_CACHE_SIZE:
        try:
            _DECODED.popitem(last=False)
        except KeyError:  # emptied by another thread meanwhile
            pass


def _arg_error(message: str) -> AgoraError:
    return AgoraError("invalid_argument", message)


def _check_time_arg(name: str, value: object, *, nullable: bool) -> None:
    if value is None and nullable:
        return
    if type(value) is not int or not -MAX_TIME <= value <= MAX_TIME:
        raise _arg_error(f"{name} must be an integer Unix time in seconds{' or None' if nullable else ''}")


def _nonce_arg(nonce: bytes | None) -> bytes:
    if nonce is None:
        return os.urandom(NONCE_SIZE)
    if not isinstance(nonce, bytes | bytearray):
        raise _arg_error("nonce must be bytes")
    return bytes(nonce)


def _cmd_arg(cmd: object) -> str:
    if not isinstance(cmd, str):
        raise _arg_error("cmd must be a string")
    problem = command_problem(cmd)
    if problem is not None:
        raise _arg_error(problem)
    return cmd


def delegate(
    issuer: Keypair,
    *,
    aud: str,
    cmd: str,
    sub: str | None,
    pol: Sequence[Any] | Policy = (),
    exp: int | None,
    nbf: int | None = None,
    meta: dict[str, Any] | None = None,
    nonce: bytes | None = None,
) -> Delegation:
    """Sign a delegation from `issuer` to `aud` (`sub=None` makes a powerline; see README)."""
    policy = Policy.from_json(list(pol.rules) if isinstance(pol, Policy) else list(pol))
    payload: dict[str, Any] = {
        "iss": issuer.did,
        "aud": aud,
        "sub": sub,
        "cmd": _cmd_arg(cmd),
        "pol": policy.rules,
        "nonce": _nonce_arg(nonce),
        "exp": exp,
    }
    _check_time_arg("exp", exp, nullable=True)
    if nbf is not None:
        _check_time_arg("nbf", nbf, nullable=False)
        payload["nbf"] = nbf
    if meta is not None:
        payload["meta"] = meta
    try:
        return Delegation.decode(seal_envelope(issuer, DELEGATION_TAG, payload))
    except AgoraError as exc:
        if exc.code == "ucan_malformed":
            raise _arg_error(exc.message) from None
        raise


def invoke(
    issuer: Keypair,
    *,
    sub: str,
    cmd: str,
    args: dict[str, Any],
    prf: Sequence[CID] = (),
    aud: str | None = None,
    exp: int | None,
    iat: int | None = None,
    nonce: bytes | None = None,
    meta: dict[str, Any] | None = None,
    cause: CID | None = None,
) -> Invocation:
    """Sign an invocation; `prf` lists the proof chain's CIDs root first. agora passes exp=now+300."""
    if not isinstance(args, dict):
        raise _arg_error("args must be a dict")
    _check_time_arg("exp", exp, nullable=True)
    payload: dict[str, Any] = {
        "iss": issuer.did,
        "sub": sub,
        "cmd": _cmd_arg(cmd),
        "args": args,
        "prf": list(prf),
        "nonce": _nonce_arg(nonce),
        "exp": exp,
    }
    for name, value in (("aud", aud), ("meta", meta), ("cause", cause)):
        if value is not None:
            payload[name] = value
    if iat is not None:
        _check_time_arg("iat", iat, nullable=False)
        payload["iat"] = iat
    raw = seal_envelope(issuer, INVOCATION_TAG, payload)
    signature, signed = raw[3:67], raw[67:]
    try:
        return Invocation._build(raw, signature, signed, payload)
    except AgoraError as exc:
        raise _arg_error(exc.message) from None


__all__ = [
    "DELEGATION_TAG",
    "INVOCATION_TAG",
    "MAX_PROOFS",
    "NONCE_SIZE",
    "Delegation",
    "Invocation",
    "delegate",
    "invoke",
    "token_cid",
]
