"""LocalCAS: the node's own content-addressed store on disk.

Layout: `<root>/sha256/<hex[0:2]>/<hex>` (256 shard directories, so no directory grows to millions of
entries) and `<root>/tmp/` for writes in progress. A put writes into tmp/ while hashing, then renames
into place: rename is atomic on one filesystem, so a crash leaves at worst a stray temp file, never a
half object under a valid name. Stored objects are made read-only (0444) so nothing on the node edits
one by accident; a put of bytes already stored still rewrites them, which repairs a damaged copy.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import shutil
from pathlib import Path

from agora.errors import AgoraError
from agora.storage.integrity import CHUNK, VerifiedFileWriter, integrity_error, verify_bytes
from agora.storage.interfaces import CAS_URI_PREFIX, ContentRef, Storage


class LocalCAS(Storage):
    scheme = "cas"

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._objects = self.root / "sha256"
        self._tmp = self.root / "tmp"
        self._objects.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)

    def path_of(self, sha256: str) -> Path:
        """Where the object with this digest lives (it may not exist)."""
        return self._objects / sha256[:2] / sha256

    def ref_for(self, sha256: str, size: int | None) -> ContentRef:
        return ContentRef(sha256=sha256, size=size, uri=CAS_URI_PREFIX + sha256)

    async def put(self, data: bytes | Path) -> ContentRef:
        return await asyncio.to_thread(self._put_sync, data)

    def _put_sync(self, data: bytes | Path) -> ContentRef:
        tmp = self._tmp / f"put-{secrets.token_hex(8)}"
        h = hashlib.sha256()
        size = 0
        try:
            with open(tmp, "xb") as out:
                if isinstance(data, bytes | bytearray | memoryview):
                    h.update(data)
                    out.write(data)
                    size = len(data)
                else:
                    try:
                        src = open(data, "rb")  # noqa: SIM115 - closed below
                    except FileNotFoundError:
                        raise AgoraError("input_missing", f"no such file to store: {data}") from None
                    with src:
                        while chunk := src.read(CHUNK):
                            h.update(chunk)
                            out.write(chunk)
                            size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = h.hexdigest()
            final = self.path_of(digest)
            final.parent.mkdir(exist_ok=True)
            os.chmod(tmp, 0o444)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return self.ref_for(digest, size)

    async def get(self, ref: ContentRef) -> bytes:
        return await asyncio.to_thread(self._get_sync, ref)

    def _get_sync(self, ref: ContentRef) -> bytes:
        try:
            data = self.path_of(ref.sha256).read_bytes()
        except FileNotFoundError:
            raise self._missing(ref) from None
        verify_bytes(data, ref.sha256, ref.size, f"local object {ref.sha256}")
        return data

    async def get_to_file(self, ref: ContentRef, path: Path) -> None:
        await asyncio.to_thread(self._get_to_file_sync, ref, path)

    def _get_to_file_sync(self, ref: ContentRef, path: Path) -> None:
        try:
            src = open(self.path_of(ref.sha256), "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise self._missing(ref) from None
        with (
            src,
            VerifiedFileWriter(
                path, expected_sha256=ref.sha256, expected_size=ref.size, what=f"local object {ref.sha256}"
            ) as w,
        ):
            while chunk := src.read(CHUNK):
                w.write(chunk)
            w.commit()

    async def exists(self, ref: ContentRef) -> bool:
        return await asyncio.to_thread(self.path_of(ref.sha256).is_file)

    async def delete(self, ref: ContentRef) -> None:
        await asyncio.to_thread(self.path_of(ref.sha256).unlink, True)

    async def verify(self, ref: ContentRef) -> None:
        """Re-hash a stored object (a scrub); raises storage_integrity or input_missing."""

        def check() -> None:
            try:
                with open(self.path_of(ref.sha256), "rb") as f:
                    h = hashlib.sha256()
                    while chunk := f.read(CHUNK):
                        h.update(chunk)
            except FileNotFoundError:
                raise self._missing(ref) from None
            if h.hexdigest() != ref.sha256:
                raise integrity_error(f"local object {ref.sha256}", ref.sha256, h.hexdigest())

        await asyncio.to_thread(check)

    def clear_tmp(self) -> None:
        """Remove temp files left by a crash; call at node start, before any put runs."""
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _missing(ref: ContentRef) -> AgoraError:
        return AgoraError("input_missing", f"no object sha256:{ref.sha256} in the local store")


__all__ = ["LocalCAS"]
