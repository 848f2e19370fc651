"""The work-dir cleanup never touches what a task's symlinks point at (review: chmod_symlink.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from agora.storage import remove_tree
from tests.unit.compute.harness import Provider


def _plant(work: Path, outside: Path) -> None:
    """What a task can leave behind: read-only dirs, and links to dirs and files outside its work dir."""
    (work / "outputs" / "sub").mkdir(parents=True)
    (work / "inputs").mkdir()
    (work / "inputs" / "data.txt").write_text("x")
    os.chmod(work / "inputs", 0o555)
    os.chmod(work / "outputs" / "sub", 0o500)
    os.symlink(outside, work / "outputs" / "evil")
    os.symlink(outside / "secret.txt", work / "outputs" / "evil-file")


def _outside(tmp_path: Path) -> Path:
    outside = tmp_path / "host-dir"
    outside.mkdir()
    (outside / "secret.txt").write_text("keep me")
    os.chmod(outside / "secret.txt", 0o600)
    os.chmod(outside, 0o700)
    return outside


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_a_planted_link_to_a_host_dir_is_not_followed(tmp_path: Path) -> None:
    outside = _outside(tmp_path)
    work = tmp_path / "work" / "alloc-1"
    _plant(work, outside)
    remove_tree(work)
    assert not work.exists() and not work.is_symlink()
    assert _mode(outside) == 0o700 and _mode(outside / "secret.txt") == 0o600
    assert (outside / "secret.txt").read_text() == "keep me"


def test_a_work_dir_that_is_itself_a_link_is_unlinked_only(tmp_path: Path) -> None:
    outside = _outside(tmp_path)
    link = tmp_path / "alloc-2"
    os.symlink(outside, link)
    remove_tree(link)
    assert not link.is_symlink() and _mode(outside) == 0o700 and (outside / "secret.txt").exists()
    remove_tree(tmp_path / "missing")  # nothing there: nothing to do


async def test_recover_clears_leftover_dirs_without_following_links(provider: Provider, tmp_path: Path) -> None:
    outside = _outside(tmp_path)
    work = provider.manager.work_root / "alloc-left-behind"
    _plant(work, outside)
    await provider.manager.recover()
    assert list(provider.manager.work_root.iterdir()) == []
    assert _mode(outside) == 0o700 and _mode(outside / "secret.txt") == 0o600
