"""Hashing and verified writes shared by every backend (synchronous: call it from worker threads).

`VerifiedFileWriter` is the one way bytes reach a final path: it writes a hidden temp file next to the
destination, hashes while writing, enforces a size cap as the bytes arrive (so a lying server cannot
fill the disk), and only renames into place once the digest matches. A failure at any point removes
the temp file, so a reader never sees a half-written or unverified file.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from types import TracebackType

from agora.errors import AgoraError

CHUNK = 1024 * 1024
"""Read/write granularity: large enough to be fast, small enough that memory stays bounded."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> tuple[str, int]:
    """Digest and size of a file, read in chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def integrity_error(what: str, expected: str, actual: str) -> AgoraError:
    return AgoraError(
        "storage_integrity",
        f"{what}: content hash is sha256:{actual}, expected sha256:{expected}",
        details={"expected_sha256": expected, "actual_sha256": actual},
    )


def verify_bytes(data: bytes, sha256: str, size: int | None, what: str) -> None:
    """Raise storage_integrity unless `data` has this digest (and size, when known)."""
    if size is not None and len(data) != size:
        raise AgoraError(
            "storage_integrity",
            f"{what}: got {len(data)} bytes, expected {size}",
            details={"expected_size": size, "actual_size": len(data)},
        )
    actual = sha256_bytes(data)
    if actual != sha256:
        raise integrity_error(what, sha256, actual)


def too_large(what: str, limit: int, hint: str | None = None) -> AgoraError:
    return AgoraError(
        "input_too_large",
        f"{what} is larger than the limit of {limit} bytes",
        hint=hint,
        details={"limit_bytes": limit},
    )


class VerifiedFileWriter:
    """Write to `dest` atomically, verifying digest/size and capping the byte count.

    Use as a context manager: leaving the block with an exception removes the temp file; call
    `commit()` inside the block to verify and rename. `commit` returns (sha256, size).
    """

    def __init__(
        self,
        dest: Path,
        *,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
        max_bytes: int | None = None,
        what: str = "object",
    ) -> None:
        self.dest = dest
        self.expected_sha256 = expected_sha256
        self.expected_size = expected_size
        self.max_bytes = max_bytes
        self.what = what
        self.size = 0
        self._hash = hashlib.sha256()
        self._tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.part")
        try:
            self._file = open(self._tmp, "xb")  # noqa: SIM115 - closed in commit/abort
        except FileNotFoundError:
            raise AgoraError("invalid_argument", f"cannot write {dest}: its directory does not exist") from None
        self._done = False

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.max_bytes is not None and self.size > self.max_bytes:
            raise too_large(self.what, self.max_bytes)
        if self.expected_size is not None and self.size > self.expected_size:
            raise AgoraError(
                "storage_integrity",
                f"{self.what}: more than the expected {self.expected_size} bytes",
                details={"expected_size": self.expected_size},
            )
        self._hash.update(chunk)
        self._file.write(chunk)

    def writable(self) -> bool:  # lets nats-py and shutil treat this as a file object
        return True

    def commit(self) -> tuple[str, int]:
        try:
            return self._commit()
        except BaseException:
            self.abort()
            raise

    def _commit(self) -> tuple[str, int]:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        actual = self._hash.hexdigest()
        if self.expected_size is not None and self.size != self.expected_size:
            raise AgoraError(
                "storage_integrity",
                f"{self.what}: got {self.size} bytes, expected {self.expected_size}",
                details={"expected_size": self.expected_size, "actual_size": self.size},
            )
        if self.expected_sha256 is not None and actual != self.expected_sha256:
            raise integrity_error(self.what, self.expected_sha256, actual)
        os.replace(self._tmp, self.dest)
        self._done = True
        return actual, self.size

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VerifiedFileWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._done:
            self.abort()


__all__ = [
    "CHUNK",
    "VerifiedFileWriter",
    "integrity_error",
    "sha256_bytes",
    "sha256_file",
    "too_large",
    "verify_bytes",
]
