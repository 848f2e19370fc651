"""Pure parts of the cgroup support: mount discovery, limit values, kernel file parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from agora.executors.cgroups import (
    Cgroups,
    cpu_quota_us,
    parse_flat_keyed,
    parse_mountinfo,
    parse_pids,
    v1_limit_writes,
    v2_limit_writes,
)
from agora.executors.interfaces import Limits

HYBRID = """\
25 30 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
28 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:13 - cgroup cgroup rw,cpu,cpuacct
29 25 0:26 / /sys/fs/cgroup/memory rw,nosuid shared:14 - cgroup cgroup rw,memory
30 25 0:27 / /sys/fs/cgroup/pids rw,nosuid shared:15 - cgroup cgroup rw,pids
31 25 0:28 / /sys/fs/cgroup/freezer rw,nosuid shared:16 - cgroup cgroup rw,freezer
32 25 0:29 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
"""

PURE_V2 = "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n"


def test_parse_mountinfo_hybrid_finds_every_v1_controller_and_the_v2_mount() -> None:
    mounts = parse_mountinfo(HYBRID)
    assert mounts.v2 == Path("/sys/fs/cgroup/unified")
    assert mounts.v1 == {
        "cpu": Path("/sys/fs/cgroup/cpu,cpuacct"),
        "cpuacct": Path("/sys/fs/cgroup/cpu,cpuacct"),
        "memory": Path("/sys/fs/cgroup/memory"),
        "pids": Path("/sys/fs/cgroup/pids"),
        "freezer": Path("/sys/fs/cgroup/freezer"),
    }


def test_parse_mountinfo_pure_v2_and_garbage_lines() -> None:
    mounts = parse_mountinfo("garbage line without separator\n1 2 - x\n" + PURE_V2)
    assert mounts.v2 == Path("/sys/fs/cgroup")
    assert mounts.v1 == {}


def test_cpu_quota_scales_with_millis_and_has_the_kernel_floor() -> None:
    assert cpu_quota_us(1000) == 100_000
    assert cpu_quota_us(2500) == 250_000
    assert cpu_quota_us(250) == 25_000
    assert cpu_quota_us(1) == 1000  # the kernel rejects quotas under 1 ms


def test_v2_writes_carry_every_limit() -> None:
    writes = dict(v2_limit_writes(Limits(memory_bytes=64 << 20, cpu_millis=500, pids=12)))
    assert writes == {
        "memory.max": str(64 << 20),
        "memory.swap.max": "0",
        "memory.oom.group": "1",
        "cpu.max": "50000 100000",
        "pids.max": "12",
    }


def test_v1_writes_put_memsw_after_memory_and_only_when_accounted() -> None:
    limits = Limits(memory_bytes=1 << 30, cpu_millis=2000, pids=7)
    with_swap = v1_limit_writes(limits, memsw=True)
    files = [f for _, f, _ in with_swap]
    assert files.index("memory.limit_in_bytes") < files.index("memory.memsw.limit_in_bytes")
    assert ("cpu", "cpu.cfs_quota_us", "200000") in with_swap
    assert ("pids", "pids.max", "7") in with_swap
    assert ("memory", "memory.memsw.limit_in_bytes", str(1 << 30)) in with_swap
    without = v1_limit_writes(limits, memsw=False)
    assert all(f != "memory.memsw.limit_in_bytes" for _, f, _ in without)


def test_parse_flat_keyed_and_pids() -> None:
    events = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n"
    assert parse_flat_keyed(events)["oom_kill"] == 1
    assert parse_flat_keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n") == {
        "oom_kill_disable": 0,
        "under_oom": 0,
        "oom_kill": 3,
    }
    assert parse_flat_keyed("usage_usec abc\nfoo\n") == {}
    assert parse_pids("12\n345\n\n") == {12, 345}
    assert parse_pids("") == set()


def test_detect_reports_why_when_no_cgroup_fs_is_mounted(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text("22 1 0:5 / / rw - ext4 /dev/vda rw\n")
    support = Cgroups(mountinfo=info).detect()
    assert support.version is None
    assert "no cgroup filesystem" in support.reason


def test_detect_reports_missing_v2_controllers(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu io\n")
    info = tmp_path / "mountinfo"
    info.write_text(f"35 24 0:30 / {root} rw shared:9 - cgroup2 cgroup2 rw\n")
    support = Cgroups(mountinfo=info).detect()
    assert support.version is None
    assert "lacks controllers memory,pids" in support.reason


def test_detect_reports_unreadable_mountinfo(tmp_path: Path) -> None:
    support = Cgroups(mountinfo=tmp_path / "missing").detect()
    assert support.version is None
    assert "cannot read" in support.reason


@pytest.mark.parametrize("bad", ["", "../x", "a/../b", "a b", "x" * 200])
def test_parent_names_are_validated(bad: str) -> None:
    with pytest.raises(ValueError):
        Cgroups(parent=bad)
