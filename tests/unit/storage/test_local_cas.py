"""LocalCAS specifics beyond the shared conformance suite: layout, modes, crash leftovers."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from agora.errors import AgoraError
from agora.storage import LocalCAS


async def test_layout_is_sharded_by_hash_prefix_and_read_only(tmp_path: Path) -> None:
    cas = LocalCAS(tmp_path)
    ref = await cas.put(b"layout")
    digest = hashlib.sha256(b"layout").hexdigest()
    path = tmp_path / "sha256" / digest[:2] / digest
    assert cas.path_of(digest) == path
    assert path.read_bytes() == b"layout"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert ref.uri == f"cas://sha256/{digest}"
    assert list((tmp_path / "tmp").iterdir()) == [], "no temp file survives a put"


async def test_put_repairs_a_damaged_copy(tmp_path: Path) -> None:
    cas = LocalCAS(tmp_path)
    ref = await cas.put(b"precious")
    path = cas.path_of(ref.sha256)
    path.chmod(0o644)
    path.write_bytes(b"rotten")
    with pytest.raises(AgoraError) as info:
        await cas.verify(ref)
    assert info.value.code == "storage_integrity"
    assert await cas.put(b"precious") == ref
    await cas.verify(ref)
    assert await cas.get(ref) == b"precious"


async def test_put_of_a_missing_file_is_input_missing(tmp_path: Path) -> None:
    cas = LocalCAS(tmp_path / "cas")
    with pytest.raises(AgoraError) as info:
        await cas.put(tmp_path / "nope")
    assert info.value.code == "input_missing"
    assert list((tmp_path / "cas" / "tmp").iterdir()) == []


async def test_clear_tmp_removes_crash_leftovers(tmp_path: Path) -> None:
    cas = LocalCAS(tmp_path)
    (tmp_path / "tmp" / "put-deadbeef").write_bytes(b"half")
    cas.clear_tmp()
    assert list((tmp_path / "tmp").iterdir()) == []


async def test_verify_of_missing_is_input_missing(tmp_path: Path) -> None:
    cas = LocalCAS(tmp_path)
    with pytest.raises(AgoraError) as info:
        await cas.verify(cas.ref_for("0" * 64, None))
    assert info.value.code == "input_missing"
