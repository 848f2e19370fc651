"""The Storage interface every backend honours, and the content reference it hands out.

A `ContentRef` names bytes by their SHA-256, so a reference is checkable by anyone who holds the bytes:
a provider cannot swap an output without the hash in its receipt changing, and a corrupted disk or a
lying server is caught on read. The URI only says where a copy lives; two backends holding the same
bytes hold the same `sha256`, which is why every backend looks objects up by hash, not by URI.

Contract (the conformance suite in tests/integration/storage/conformance.py is the executable one):
- `put` is idempotent: putting the same bytes twice gives the same ref and stores one copy.
- `get` and `get_to_file` verify the hash (and size when known) of what they read, every time:
  a mismatch is `storage_integrity`, and `get_to_file` leaves no file behind.
- a ref that is not stored is `input_missing`; a backend that does not answer is
  `storage_unreachable`; refused credentials are `storage_auth_failed`.
- `delete` is idempotent; `exists` never raises for a missing object.
- blocking I/O runs in worker threads; no method blocks the event loop.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agora.errors import AgoraError

_HEX64 = re.compile(r"^[0-9a-f]{64}$")

CAS_URI_PREFIX = "cas://sha256/"
"""URI of an object in a node's local content-addressed store: cas://sha256/<hex>."""


def is_sha256_hex(value: str) -> bool:
    return bool(_HEX64.match(value))


def check_sha256_hex(value: str, what: str = "sha256") -> str:
    """Normalise a user-supplied digest to lowercase hex or fail with the field named."""
    if not isinstance(value, str) or not _HEX64.match(value.lower()):
        raise AgoraError("invalid_argument", f"{what} must be 64 hexadecimal characters, got {value!r}")
    return value.lower()


@dataclass(frozen=True, slots=True)
class ContentRef:
    """A content address: the SHA-256 (lowercase hex) and size of some bytes, and where a copy lives.

    `size` is None for a ref parsed from a bare URI (cas://sha256/<hex> carries no size); reads then
    check the hash only. Refs cross the wire as dicts (`to_dict`/`from_dict`).
    """

    sha256: str
    size: int | None
    uri: str

    def __post_init__(self) -> None:
        if not isinstance(self.sha256, str) or not _HEX64.match(self.sha256):
            raise AgoraError("invalid_argument", f"sha256 must be 64 lowercase hex characters, got {self.sha256!r}")
        if self.size is not None and (not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0):
            raise AgoraError("invalid_argument", f"size must be a non-negative integer, got {self.size!r}")
        if not isinstance(self.uri, str) or "://" not in self.uri:
            raise AgoraError("invalid_argument", f"uri must look like scheme://..., got {self.uri!r}")

    @property
    def scheme(self) -> str:
        return self.uri.split("://", 1)[0]

    @classmethod
    def parse(cls, uri: str, size: int | None = None) -> ContentRef:
        """Parse a content-addressed URI whose last path segment is the hex digest.

        Accepts cas://sha256/<hex>, hub://<bucket>/<hex> and s3://<bucket>/<prefix>/sha256/<hex>.
        An S3 URI of an arbitrary key is not content-addressed; fetch it with S3Storage.get_object.
        """
        if not isinstance(uri, str) or "://" not in uri:
            raise AgoraError("invalid_argument", f"not a URI: {uri!r}")
        scheme, rest = uri.split("://", 1)
        if scheme not in ("cas", "hub", "s3"):
            raise AgoraError("invalid_argument", f"URI scheme {scheme!r} is not content-addressed (cas, hub, s3)")
        last = rest.rsplit("/", 1)[-1].lower()
        if "/" not in rest or not _HEX64.match(last):
            raise AgoraError("invalid_argument", f"URI {uri!r} does not end in a sha256 hex digest")
        return cls(sha256=last, size=size, uri=uri)

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size, "uri": self.uri}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContentRef:
        if not isinstance(data, dict):
            raise AgoraError("invalid_argument", "a content ref must be a mapping with sha256, size and uri")
        try:
            return cls(sha256=data["sha256"], size=data.get("size"), uri=data["uri"])
        except KeyError as e:
            raise AgoraError("invalid_argument", f"content ref lacks field {e.args[0]!r}") from None


class Storage(abc.ABC):
    """A content-addressed object store (local disk, S3, the hub's JetStream object store)."""

    scheme: str
    """The URI scheme of the refs this backend hands out (cas, s3, hub)."""

    @abc.abstractmethod
    def ref_for(self, sha256: str, size: int | None) -> ContentRef:
        """The ref this backend would hand out for bytes with this digest (no I/O)."""

    @abc.abstractmethod
    async def put(self, data: bytes | Path) -> ContentRef:
        """Store bytes, or a file streamed from disk, under their hash."""

    @abc.abstractmethod
    async def get(self, ref: ContentRef) -> bytes:
        """Read an object into memory, verified. Use `get_to_file` for anything big."""

    @abc.abstractmethod
    async def get_to_file(self, ref: ContentRef, path: Path) -> None:
        """Stream an object to `path` with bounded memory; `path` appears only once verified."""

    @abc.abstractmethod
    async def exists(self, ref: ContentRef) -> bool: ...

    @abc.abstractmethod
    async def delete(self, ref: ContentRef) -> None:
        """Remove the object; deleting a missing object is not an error."""

    async def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections the backend owns; idempotent."""


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split s3://bucket/key into (bucket, key)."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise AgoraError("invalid_argument", f"an S3 URI looks like s3://bucket/key, got {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket or not key:
        raise AgoraError("invalid_argument", f"an S3 URI needs a bucket and a key, got {uri!r}")
    return bucket, key


__all__ = [
    "CAS_URI_PREFIX",
    "ContentRef",
    "Storage",
    "check_sha256_hex",
    "is_sha256_hex",
    "parse_s3_uri",
]
