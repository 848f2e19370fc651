"""The usage receipt: what a provider signs when an allocation ends, so a requester can prove what ran.

A `UsageReceipt` is a sealed envelope of type `agora/usage@1.0.0` (its own type tag, so a signature
made for an RPC receipt or an announcement can never pass for a usage receipt) signed by the provider
node. It names the allocation, both parties, the job and task, how it ended, what it used, and the
SHA-256 of every output, and it cites the CID of the invocation that started the allocation: the
requester can tie the receipt to a request it signed itself, and the ledger (a later issue) can pay
against it.

`issue` signs; `open` decodes, checks every field's type and verifies the provider's signature over
the exact bytes received (raising `receipt_invalid` for anything else). Times are float seconds since
the epoch (DAG-CBOR floats are always 64-bit, so they survive the round trip exactly).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agora.codec import CID
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.ucan import open_envelope, seal_envelope
from agora.wire.messages import DEFAULT_MAX_MESSAGE, MESSAGE_TYPES, check_size

USAGE_TAG = "agora/usage@1.0.0"
MAX_OUTPUTS = 4096
MESSAGE_TYPES[USAGE_TAG] = "usage receipt: a provider's signed account of one allocation"

_FIELDS: dict[str, type | tuple[type, ...]] = {
    "alloc": str,
    "prov": str,
    "req": str,
    "job": str,
    "task": str,
    "engine": str,
    "exit": (int, type(None)),
    "reason": str,
    "err": (str, type(None)),
    "start": float,
    "end": float,
    "wall": float,
    "cpu": float,
    "mem": int,
    "outs": list,
    "inv": CID,
    "iat": int,
}


def _bad(message: str) -> AgoraError:
    return AgoraError("receipt_invalid", f"usage receipt: {message}")


@dataclass(frozen=True)
class OutputDigest:
    """One output file: its declared output name, its path under the outputs dir, hash and size, and where
    the provider published it when the spec asked for more than its own store (`hub://...`, `s3://...`)."""

    name: str
    path: str
    sha256: str
    size: int
    uri: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "path": self.path, "sha256": self.sha256, "size": self.size}
        if self.uri is not None:
            out["uri"] = self.uri
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutputDigest:
        required = {"name", "path", "sha256", "size"}
        if not isinstance(data, Mapping) or not required <= set(data) or not set(data) <= required | {"uri"}:
            raise _bad("an output is {name, path, sha256, size[, uri]}")
        name, path, sha, size = data["name"], data["path"], data["sha256"], data["size"]
        if not isinstance(name, str) or not isinstance(path, str) or not path:
            raise _bad("output name and path must be strings")
        if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise _bad(f"output {path!r}: sha256 must be 64 lowercase hex characters")
        if type(size) is not int or size < 0:
            raise _bad(f"output {path!r}: size must be a non-negative integer")
        uri = data.get("uri")
        if "uri" in data and (not isinstance(uri, str) or not uri or len(uri) > 2048):
            raise _bad(f"output {path!r}: uri must be a non-empty string")
        return cls(name, path, sha, size, uri)


@dataclass(frozen=True)
class UsageReceipt:
    alloc_id: str
    provider: str
    requester: str
    job: str
    task: str
    engine: str
    exit_code: int | None
    reason: str  # exited | timeout | oom | disk_limit | cancelled | trap | error | interrupted (node restarted)
    error_code: str | None  # a catalog code, None only for a clean exit 0
    started_at: float
    ended_at: float
    wall_s: float
    cpu_s: float
    peak_memory_bytes: int
    outputs: tuple[OutputDigest, ...]
    invocation: CID  # the invocation that started the allocation
    iat: int
    raw: bytes = field(default=b"", compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.reason == "exited" and self.exit_code == 0

    @property
    def cid(self) -> CID:
        """Names exactly the signed bytes (what a ledger entry or a dispute refers to)."""
        return CID.of(self.raw)

    @classmethod
    def issue(
        cls,
        keypair: Keypair,
        *,
        alloc_id: str,
        requester: str,
        job: str,
        task: str,
        engine: str,
        exit_code: int | None,
        reason: str,
        error_code: str | None,
        started_at: float,
        ended_at: float,
        wall_s: float,
        cpu_s: float,
        peak_memory_bytes: int,
        outputs: Sequence[OutputDigest],
        invocation: CID,
        iat: int,
    ) -> UsageReceipt:
        """Sign a receipt as the provider `keypair`."""
        payload = {
            "alloc": alloc_id,
            "prov": keypair.did,
            "req": requester,
            "job": job,
            "task": task,
            "engine": engine,
            "exit": exit_code,
            "reason": reason,
            "err": error_code,
            "start": float(started_at),
            "end": float(ended_at),
            "wall": float(max(0.0, wall_s)),
            "cpu": float(max(0.0, cpu_s)),
            "mem": int(max(0, peak_memory_bytes)),
            "outs": [o.to_dict() for o in outputs],
            "inv": invocation,
            "iat": int(iat),
        }
        raw = seal_envelope(keypair, USAGE_TAG, payload)
        return cls.open(raw, expected_provider=keypair.did)

    @classmethod
    def open(
        cls, raw: bytes, *, expected_provider: str | None = None, max_bytes: int = DEFAULT_MAX_MESSAGE
    ) -> UsageReceipt:
        """Decode, shape-check and verify a receipt; anything that does not verify is `receipt_invalid`."""
        if not isinstance(raw, bytes | bytearray | memoryview):
            raise _bad(f"expected bytes, got {type(raw).__name__}")
        raw = bytes(raw)
        try:
            check_size(raw, max_bytes)
            env = open_envelope(raw)
        except AgoraError as exc:
            raise _bad(f"undecodable: {exc.message}") from None
        p = env.payload
        if env.type_tag != USAGE_TAG:
            raise _bad(f"type tag is {env.type_tag[:60]!r}, not {USAGE_TAG}")
        if set(p) != set(_FIELDS):
            raise _bad(f"fields must be exactly {sorted(_FIELDS)}")
        for key, kind in _FIELDS.items():
            value = p[key]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise _bad(f"field {key!r} has the wrong type ({type(value).__name__})")
        if isinstance(p["exit"], bool):
            raise _bad("field 'exit' has the wrong type (bool)")
        for key in ("start", "end", "wall", "cpu"):
            if not math.isfinite(p[key]) or p[key] < 0:
                raise _bad(f"field {key!r} must be a finite non-negative number")
        if p["mem"] < 0 or len(p["outs"]) > MAX_OUTPUTS:
            raise _bad("mem must be >= 0 and outputs at most " + str(MAX_OUTPUTS))
        if expected_provider is not None and p["prov"] != expected_provider:
            raise _bad(f"signed for provider {p['prov']}, expected {expected_provider}")
        if not env.verify(p["prov"]):
            raise _bad("the provider's signature does not verify")
        return cls(
            alloc_id=p["alloc"],
            provider=p["prov"],
            requester=p["req"],
            job=p["job"],
            task=p["task"],
            engine=p["engine"],
            exit_code=p["exit"],
            reason=p["reason"],
            error_code=p["err"],
            started_at=p["start"],
            ended_at=p["end"],
            wall_s=p["wall"],
            cpu_s=p["cpu"],
            peak_memory_bytes=p["mem"],
            outputs=tuple(OutputDigest.from_dict(o) for o in p["outs"]),
            invocation=p["inv"],
            iat=p["iat"],
            raw=raw,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the API; `raw` (base64) lets anyone re-verify it later with `open`."""
        return {
            "type": USAGE_TAG,
            "cid": str(self.cid),
            "alloc_id": self.alloc_id,
            "provider": self.provider,
            "requester": self.requester,
            "job": self.job,
            "task": self.task,
            "engine": self.engine,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "error_code": self.error_code,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "peak_memory_bytes": self.peak_memory_bytes,
            "outputs": [o.to_dict() for o in self.outputs],
            "invocation": str(self.invocation),
            "iat": self.iat,
            "raw": base64.b64encode(self.raw).decode("ascii"),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, expected_provider: str | None = None) -> UsageReceipt:
        """Rebuild from `to_dict` output by verifying its `raw` (the other fields are only a view)."""
        raw = data.get("raw") if isinstance(data, Mapping) else None
        if not isinstance(raw, str):
            raise _bad("the JSON form carries the signed bytes in 'raw' (base64)")
        try:
            decoded = base64.b64decode(raw, validate=True)
        except ValueError:
            raise _bad("'raw' is not base64") from None
        return cls.open(decoded, expected_provider=expected_provider)


__all__ = ["MAX_OUTPUTS", "USAGE_TAG", "OutputDigest", "UsageReceipt"]
