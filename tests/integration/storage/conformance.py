"""The Storage contract as tests; LocalCAS, S3Storage and HubObjectStore all run every one.

Use: subclass `StorageConformance` and provide a `harness` fixture returning a `Harness`: the
storage under test (fresh namespace per test), a `corrupt(ref, data)` that rewrites the stored object
directly through the backend (bypassing the Storage API, as a broken disk or a hostile server would),
the size of the "big object" to stream and whether the backend must stream it in bounded memory.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from agora.errors import AgoraError
from agora.storage import ContentRef, Storage

Corrupt = Callable[[ContentRef, bytes], Awaitable[None]]


@dataclass
class Harness:
    storage: Storage
    corrupt: Corrupt
    big_size: int
    bounded_memory: bool = True


async def _raises(code: str, aw: Awaitable[object]) -> AgoraError:
    with pytest.raises(AgoraError) as info:
        await aw
    assert info.value.code == code, f"expected {code}, got {info.value.code}: {info.value}"
    return info.value


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def listing(directory: Path) -> list[str]:
    """Names in a directory (sync on purpose: tests inspect the disk between awaits)."""
    return sorted(p.name for p in directory.iterdir())


def _write_random(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 1 << 20))
            h.update(block)
            f.write(block)
            left -= len(block)
    return h.hexdigest()


def _file_sha(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class StorageConformance:
    @pytest.fixture
    def dl(self, tmp_path: Path) -> Path:
        """An empty download dir, so tests can check that nothing but the result lands there."""
        d = tmp_path / "dl"
        d.mkdir()
        return d

    # -- round trips ------------------------------------------------------------------------------

    async def test_put_get_round_trip(self, harness: Harness) -> None:
        data = os.urandom(3000) + b"agora"
        ref = await harness.storage.put(data)
        assert ref.sha256 == _sha(data)
        assert ref.size == len(data)
        assert ref.scheme == harness.storage.scheme
        assert ref.uri.endswith(ref.sha256)
        assert ref == harness.storage.ref_for(ref.sha256, len(data))
        assert await harness.storage.get(ref) == data
        assert await harness.storage.exists(ref)

    async def test_put_file_gives_the_same_ref_as_bytes(self, harness: Harness, tmp_path: Path) -> None:
        data = os.urandom(70_000)
        src = tmp_path / "src.bin"
        src.write_bytes(data)
        ref_file = await harness.storage.put(src)
        ref_bytes = await harness.storage.put(data)
        assert ref_file == ref_bytes
        assert await harness.storage.get(ref_file) == data

    async def test_get_to_file_writes_verified_content(self, harness: Harness, dl: Path) -> None:
        data = os.urandom(5000)
        ref = await harness.storage.put(data)
        dest = dl / "out.bin"
        await harness.storage.get_to_file(ref, dest)
        assert dest.read_bytes() == data
        assert listing(dl) == ["out.bin"]

    async def test_a_ref_is_found_by_hash_whatever_its_uri(self, harness: Harness) -> None:
        data = os.urandom(100)
        ref = await harness.storage.put(data)
        foreign = ContentRef(sha256=ref.sha256, size=ref.size, uri=f"cas://sha256/{ref.sha256}")
        assert await harness.storage.get(foreign) == data
        parsed = ContentRef.parse(ref.uri)  # size unknown: only the hash is checked
        assert await harness.storage.get(parsed) == data

    # -- idempotence and deletion -----------------------------------------------------------------

    async def test_put_is_idempotent(self, harness: Harness) -> None:
        data = os.urandom(2048)
        first = await harness.storage.put(data)
        second = await harness.storage.put(data)
        assert first == second
        # one object under one name: a single delete removes it
        await harness.storage.delete(first)
        assert not await harness.storage.exists(second)

    async def test_concurrent_puts_of_the_same_bytes_agree(self, harness: Harness) -> None:
        data = os.urandom(200_000)
        refs = await asyncio.gather(*(harness.storage.put(data) for _ in range(5)))
        assert len(set(refs)) == 1
        assert await harness.storage.get(refs[0]) == data

    async def test_exists_and_delete(self, harness: Harness) -> None:
        data = os.urandom(64)
        ref = await harness.storage.put(data)
        assert await harness.storage.exists(ref)
        await harness.storage.delete(ref)
        assert not await harness.storage.exists(ref)
        await _raises("input_missing", harness.storage.get(ref))
        await harness.storage.delete(ref)  # idempotent
        assert not await harness.storage.exists(ref)

    async def test_missing_ref(self, harness: Harness, dl: Path) -> None:
        ref = harness.storage.ref_for(_sha(os.urandom(32)), 32)
        assert not await harness.storage.exists(ref)
        err = await _raises("input_missing", harness.storage.get(ref))
        assert ref.sha256 in err.message
        await _raises("input_missing", harness.storage.get_to_file(ref, dl / "x"))
        assert listing(dl) == []

    # -- integrity --------------------------------------------------------------------------------

    async def test_corrupted_object_fails_get(self, harness: Harness, dl: Path) -> None:
        data = os.urandom(4096)
        ref = await harness.storage.put(data)
        await harness.corrupt(ref, os.urandom(777))
        await _raises("storage_integrity", harness.storage.get(ref))
        await _raises("storage_integrity", harness.storage.get_to_file(ref, dl / "x"))
        assert listing(dl) == [], "a failed verification must leave no file behind"

    async def test_same_size_corruption_is_caught_by_the_hash(self, harness: Harness, dl: Path) -> None:
        data = os.urandom(4096)
        ref = await harness.storage.put(data)
        flipped = bytes([data[0] ^ 0xFF]) + data[1:]
        await harness.corrupt(ref, flipped)
        err = await _raises("storage_integrity", harness.storage.get(ref))
        assert err.details["expected_sha256"] == ref.sha256
        assert err.details["actual_sha256"] == _sha(flipped)
        await _raises("storage_integrity", harness.storage.get_to_file(ref, dl / "x"))
        assert listing(dl) == []

    async def test_ref_with_wrong_size_fails(self, harness: Harness) -> None:
        data = os.urandom(100)
        ref = await harness.storage.put(data)
        wrong = ContentRef(sha256=ref.sha256, size=101, uri=ref.uri)
        await _raises("storage_integrity", harness.storage.get(wrong))

    # -- sizes ------------------------------------------------------------------------------------

    async def test_empty_object(self, harness: Harness, tmp_path: Path) -> None:
        ref = await harness.storage.put(b"")
        assert ref.size == 0
        assert ref.sha256 == _sha(b"")
        assert await harness.storage.exists(ref)
        assert await harness.storage.get(ref) == b""
        dest = tmp_path / "empty"
        await harness.storage.get_to_file(ref, dest)
        assert dest.is_file()
        assert dest.stat().st_size == 0

    async def test_big_object_streams_to_file(self, harness: Harness, tmp_path: Path) -> None:
        src = tmp_path / "big.src"
        digest = _write_random(src, harness.big_size)
        ref = await harness.storage.put(src)
        assert ref.sha256 == digest
        assert ref.size == harness.big_size
        dest = tmp_path / "big.out"
        gc.collect()
        tracemalloc.start()
        try:
            await harness.storage.get_to_file(ref, dest)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert dest.stat().st_size == harness.big_size
        assert _file_sha(dest) == ref.sha256
        if harness.bounded_memory:
            assert peak < harness.big_size // 4, f"get_to_file held {peak} bytes for a {harness.big_size}-byte object"
