"""Moving bytes in and out of a provider in chunks that fit in one message.

Uploads: a requester sends a module or an input too big to ride inline with the start request as
`/agora/alloc/upload {sha256, size, offset, data}` chunks, in order. The provider appends them to a
part file and, when the last byte arrives, checks the hash and moves the object into its CAS; a
later start names it `sha256:<hex>`. Part files are bounded in number and size and expire, so an
abandoned upload cannot fill the disk.

Downloads (`/agora/alloc/fetch`) read a stored output by offset; the requester verifies the whole file
against the signed usage receipt, so the provider does not re-hash per chunk.

Ownership: the CAS is shared by every requester of this node, and a digest is no secret (an output's
is in its requester's receipt). So `CasOwners` records, per digest, which requesters put it there (by
uploading or sending its bytes, or as an output of their allocation), and a task may name by hash only
objects its own requester owns. An upload of a digest someone else stored is taken in full (the bytes
prove possession) and never answered "already complete", so the reply does not reveal what is stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from agora.errors import AgoraError
from agora.storage import LocalCAS
from agora.storage.interfaces import check_sha256_hex
from agora.store import Store

CHUNK = 256 * 1024
MAX_UPLOAD = 256 * 1024 * 1024
MAX_PARTIAL = 16
PARTIAL_TTL_S = 600.0
OWNERS = "cas_owners"
"""Store collection: CAS digest -> {"owners": [requester DIDs]}."""


class CasOwners:
    """Which requesters may name a CAS object by its digest (they stored it or their task produced it)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = asyncio.Lock()  # add() is read-modify-write of one row

    async def add(self, owner: str, digests: Iterable[str]) -> None:
        async with self._lock:
            for digest in dict.fromkeys(digests):
                doc = await self.store.get(OWNERS, digest)
                owners = list(doc.get("owners", [])) if doc else []
                if owner not in owners:
                    await self.store.put(OWNERS, digest, {"owners": [*owners, owner]})

    async def remove(self, owner: str, digest: str) -> None:
        """The owner no longer holds the object (its retention ran out): it may not name it any more."""
        async with self._lock:
            doc = await self.store.get(OWNERS, digest)
            if doc is None:
                return
            owners = [o for o in doc.get("owners", []) if o != owner]
            if owners:
                await self.store.put(OWNERS, digest, {"owners": owners})
            else:
                await self.store.delete(OWNERS, digest)

    async def owns(self, owner: str, digest: str) -> bool:
        doc = await self.store.get(OWNERS, digest.lower())
        return doc is not None and owner in doc.get("owners", [])

    async def require(self, owner: str, refs: Iterable[tuple[str, str]]) -> None:
        """Refuse a (what, digest) reference the owner does not own, exactly as if it were not stored.

        `what` is "module" or an input name (see `taskprep.cas_references`).
        """
        for what, digest in refs:
            if await self.owns(owner, digest):
                continue
            if what == "module":
                raise AgoraError(
                    "module_invalid",
                    f"module sha256:{digest} does not exist on this node",
                    hint="Send the module with the start request or upload it first (`agora job run` does both).",
                )
            raise AgoraError(
                "input_missing",
                f"input {what!r}: sha256:{digest} is not stored on this node",
                hint="Upload the input first or send its bytes with the request (`agora job run` does both).",
                details={"input": what},
            )


@dataclass
class _Part:
    path: Path
    size: int
    received: int
    owner: str
    touched: float


class Uploads:
    """Chunked uploads into the CAS; with `owners`, each complete one is recorded as its uploader's.

    Without `owners` nothing can tell who may know a digest, so an upload is never cut short.
    """

    def __init__(
        self,
        cas: LocalCAS,
        part_dir: Path,
        *,
        max_size: int = MAX_UPLOAD,
        owners: CasOwners | None = None,
        admit: Callable[[str, int], Awaitable[None]] | None = None,
        stored: Callable[[str, str, int], Awaitable[None]] | None = None,
    ) -> None:
        self.cas = cas
        self.admit = admit  # (owner, size): raises when the owner may not store that much more
        self.stored = stored  # (owner, digest, size): a complete upload is in the CAS
        self.part_dir = part_dir
        self.max_size = max_size
        self.owners = owners
        self._parts: dict[tuple[str, str], _Part] = {}  # (owner, digest): parts of two requesters never meet
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
        key = (owner, digest)
        if (
            self.owners is not None
            and key not in self._parts
            and await self.owners.owns(owner, digest)
            and await self.cas.exists(self.cas.ref_for(digest, None))
        ):
            return {"received": size, "complete": 1}
        async with self._lock:
            now = time.monotonic()
            for old, part in list(self._parts.items()):
                if now - part.touched > PARTIAL_TTL_S:
                    await self._drop(old)
            found = self._parts.get(key)
            if found is None:
                if offset != 0:
                    raise AgoraError("invalid_argument", f"no upload of {digest} in progress; start at offset 0")
                if len(self._parts) >= MAX_PARTIAL:
                    raise AgoraError("unavailable", "too many uploads in progress here; retry later", retryable=True)
                if self.admit is not None:
                    await self.admit(owner, size)  # storage_quota_exceeded before the first byte lands
                tag = hashlib.sha256(owner.encode()).hexdigest()[:16]
                part = _Part(self.part_dir / f"{digest}.{tag}", size, 0, owner, now)
                await asyncio.to_thread(part.path.write_bytes, b"")
                self._parts[key] = part
            else:
                part = found
            if part.size != size:
                await self._drop(key)
                raise AgoraError("invalid_argument", f"the upload of {digest} was announced with size {part.size}")
            if offset != part.received:
                raise AgoraError("invalid_argument", f"expected offset {part.received}, got {offset}")
            if offset + len(data) > size:
                await self._drop(key)
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
                if self.owners is not None:
                    await self.owners.add(owner, [digest])
                if self.stored is not None:
                    await self.stored(owner, digest, size)
            finally:
                await self._drop(key)
            return {"received": size, "complete": 1}

    async def _drop(self, key: tuple[str, str]) -> None:
        part = self._parts.pop(key, None)
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


__all__ = ["CHUNK", "MAX_UPLOAD", "OWNERS", "CasOwners", "Uploads", "read_chunk"]
