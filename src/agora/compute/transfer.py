"""Moving bytes in and out of a provider in chunks that fit in one message.

Uploads: a requester sends a module or an input too big to ride inline with the start request as
`/agora/alloc/upload {sha256, size, offset, data}` chunks, in order. The provider appends them to a
part file and, when the last byte arrives, checks the hash and moves the object into its CAS; a
later start names it `sha256:<hex>`. Part files are bounded in number and size and expire, so an
abandoned upload cannot fill the disk.

Downloads (`/agora/alloc/fetch`) read a stored output by offset; the requester verifies the whole file
against the signed usage receipt, so the provider does not re-hash per chunk.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from agora.errors import AgoraError
from agora.storage import LocalCAS
from agora.storage.interfaces import check_sha256_hex

CHUNK = 256 * 1024
MAX_UPLOAD = 256 * 1024 * 1024
MAX_PARTIAL = 16
PARTIAL_TTL_S = 600.0


@dataclass
class _Part:
    path: Path
    size: int
    received: int
    owner: str
    touched: float


class Uploads:
    def __init__(self, cas: LocalCAS, part_dir: Path, *, max_size: int = MAX_UPLOAD) -> None:
        self.cas = cas
        self.part_dir = part_dir
        self.max_size = max_size
        self._parts: dict[str, _Part] = {}
        self._lock = asyncio.Lock()

    def clear(self) -> None:
        """Drop part files left by an earlier run (blocking; call at start)."""
        self.part_dir.mkdir(parents=True, exist_ok=True)
        for p in self.part_dir.iterdir():
            p.unlink(missing_ok=True)

    async def receive(self, owner: str, sha256: object, size: object, offset: object, data: object) -> dict[str, int]:
        digest = check_sha256_hex(sha256 if isinstance(sha256, str) else "", "sha256")
        if type(size) is not int or not 0 < size <= self.max_size:
            raise AgoraError("input_too_large", f"an upload is 1 to {self.max_size} bytes, got {size!r}")
        if type(offset) is not int or not isinstance(data, bytes) or not 0 < len(data) <= CHUNK:
            raise AgoraError("invalid_argument", f"offset must be an integer and data 1 to {CHUNK} bytes")
        if await self.cas.exists(self.cas.ref_for(digest, None)):
            return {"received": size, "complete": 1}
        async with self._lock:
            now = time.monotonic()
            for key, part in list(self._parts.items()):
                if now - part.touched > PARTIAL_TTL_S:
                    await self._drop(key)
            found = self._parts.get(digest)
            if found is None:
                if offset != 0:
                    raise AgoraError("invalid_argument", f"no upload of {digest} in progress; start at offset 0")
                if len(self._parts) >= MAX_PARTIAL:
                    raise AgoraError("unavailable", "too many uploads in progress here; retry later", retryable=True)
                part = _Part(self.part_dir / digest, size, 0, owner, now)
                await asyncio.to_thread(part.path.write_bytes, b"")
                self._parts[digest] = part
            else:
                part = found
            if part.owner != owner or part.size != size:
                raise AgoraError("already_exists", f"another upload of {digest} is in progress")
            if offset != part.received:
                raise AgoraError("invalid_argument", f"expected offset {part.received}, got {offset}")
            if offset + len(data) > size:
                await self._drop(digest)
                raise AgoraError("invalid_argument", "the chunks are longer than the announced size")
            await asyncio.to_thread(_append, part.path, data)
            part.received += len(data)
            part.touched = now
            if part.received < size:
                return {"received": part.received, "complete": 0}
            try:
                actual = await asyncio.to_thread(_sha256_file, part.path)
                if actual != digest:
                    raise AgoraError("storage_integrity", f"the upload hashes to {actual}, not {digest}")
                await self.cas.put(part.path)
            finally:
                await self._drop(digest)
            return {"received": size, "complete": 1}

    async def _drop(self, digest: str) -> None:
        part = self._parts.pop(digest, None)
        if part is not None:
            await asyncio.to_thread(part.path.unlink, True)


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


async def read_chunk(cas: LocalCAS, sha256: str, offset: object, length: object) -> dict[str, object]:
    """One chunk of a stored object: {data, size, eof}."""
    if type(offset) is not int or offset < 0:
        raise AgoraError("invalid_argument", "offset must be a non-negative integer")
    want = CHUNK if length is None else length
    if type(want) is not int or not 0 < want <= CHUNK:
        raise AgoraError("invalid_argument", f"length must be 1 to {CHUNK}")
    path = cas.path_of(sha256)

    def read() -> tuple[bytes, int]:
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                f.seek(offset)
                return f.read(want), size
        except FileNotFoundError:
            raise AgoraError("input_missing", f"output sha256:{sha256} is no longer stored on this node") from None

    data, size = await asyncio.to_thread(read)
    return {"data": data, "size": size, "eof": offset + len(data) >= size}


__all__ = ["CHUNK", "MAX_UPLOAD", "Uploads", "read_chunk"]
