"""Detection on this real machine, on fixture trees shaped like / (cgroup v1 and v2), and the GPU probe."""

from __future__ import annotations

import json
import os
import platform
import shutil
import stat
from pathlib import Path

import pytest

from agora.clock import ManualClock
from agora.errors import AgoraError
from agora.models.capability import GiB, MiB
from agora.resources.detect import detect, detect_async, detect_gpus
from agora.resources.parsers import GpuInfo

EXECUTORS = {"wasm": (True, "wasmtime 20"), "docker": (False, "no engine at /var/run/docker.sock")}


def test_detect_this_machine(tmp_path: Path) -> None:
    info = detect(tmp_path, EXECUTORS, clock=ManualClock(123.0))
    assert info.cpu.logical_cores >= 1
    assert 1 <= info.cpu.usable_cores <= info.cpu.logical_cores
    assert 0 < info.cpu.cpu_millis <= info.cpu.usable_cores * 1000
    assert info.cpu.arch == platform.machine() and info.cpu.arch
    assert info.memory.total_bytes > 0
    assert 0 < info.memory.available_bytes <= info.memory.total_bytes
    assert 0 < info.memory.usable_bytes <= info.memory.total_bytes
    usage = shutil.disk_usage(tmp_path)
    assert info.disk.path == str(tmp_path)
    assert info.disk.total_bytes == usage.total and 0 < info.disk.free_bytes <= usage.total
    assert info.os.system == platform.system() and info.os.kernel == platform.release()
    assert info.detected_at == 123.0
    if shutil.which("nvidia-smi") is None:
        assert info.gpus == []
        assert info.gpu_probe == "nvidia-smi not found"
    else:
        assert info.gpus and all(g.vram_bytes > 0 for g in info.gpus)
    assert {k: (v.available, v.reason) for k, v in info.executors.items()} == EXECUTORS
    json.dumps(info.to_dict())  # JSON-able as is

    cap = info.capability()
    assert cap.cpu_millis == info.cpu.cpu_millis
    assert cap.memory_bytes == info.memory.usable_bytes
    assert cap.disk_bytes == info.disk.free_bytes
    assert cap.executors == frozenset({"wasm"})
    assert cap.gpu_count == len(info.gpus)


def test_cpu_flags_match_proc_cpuinfo(tmp_path: Path) -> None:
    text = Path("/proc/cpuinfo").read_text()
    info = detect(tmp_path, {})
    line = next((ln for ln in text.splitlines() if ln.split(":")[0].strip() in ("flags", "Features")), "")
    words = set(line.partition(":")[2].split())
    assert set(info.cpu.flags) <= words | {"neon"}
    for flag in ("sse4_2", "avx2", "avx512f"):
        assert (flag in info.cpu.flags) == (flag in words)


async def test_detect_async_gives_the_same_answer(tmp_path: Path) -> None:
    a = await detect_async(tmp_path, EXECUTORS, clock=ManualClock(1.0))
    b = detect(tmp_path, EXECUTORS, clock=ManualClock(1.0))
    assert (a.cpu, a.disk.path, a.os, a.gpus, a.executors) == (b.cpu, b.disk.path, b.os, b.gpus, b.executors)


def test_missing_home_and_bad_executors(tmp_path: Path) -> None:
    with pytest.raises(AgoraError) as e:
        detect(tmp_path / "nope", {})
    assert e.value.code == "config_invalid"
    with pytest.raises(AgoraError) as e:
        detect(tmp_path, {"wasm": True})  # type: ignore[dict-item]
    assert e.value.code == "invalid_argument"


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


MEMINFO = f"MemTotal: {8 * GiB // 1024} kB\nMemAvailable: {6 * GiB // 1024} kB\n"


def test_cgroup_v2_limits_from_the_tightest_level(tmp_path: Path) -> None:
    root = _tree(
        tmp_path / "root",
        {
            "proc/self/cgroup": "0::/app.slice/node.scope\n",
            "proc/self/mountinfo": "40 30 0:33 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n",
            "proc/meminfo": MEMINFO,
            "proc/cpuinfo": "processor : 0\nFeatures : fp asimd sve\n",
            "sys/fs/cgroup/cpu.max": "max 100000\n",
            "sys/fs/cgroup/app.slice/cpu.max": "max 100000\n",
            "sys/fs/cgroup/app.slice/memory.max": f"{GiB}\n",
            "sys/fs/cgroup/app.slice/memory.current": f"{256 * MiB}\n",
            "sys/fs/cgroup/app.slice/node.scope/cpu.max": "50000 100000\n",
            "sys/fs/cgroup/app.slice/node.scope/memory.max": "max\n",
            "etc/os-release": 'PRETTY_NAME="Test Linux 1"\n',
        },
    )
    info = detect(tmp_path, {}, root=root)
    assert info.cpu.cgroup_quota_millis == 500
    assert (info.cpu.cpu_millis, info.cpu.usable_cores) == (500, 1)
    assert info.cpu.flags == ["asimd", "neon", "sve"]
    assert info.memory.total_bytes == 8 * GiB
    assert info.memory.cgroup_limit_bytes == GiB
    assert info.memory.usable_bytes == GiB
    assert info.memory.available_bytes == 768 * MiB
    assert info.os.distro == "Test Linux 1"
    assert info.capability().memory_bytes == GiB and info.capability().cpu_millis == 500


def test_cgroup_v1_limits(tmp_path: Path) -> None:
    root = _tree(
        tmp_path / "root",
        {
            "proc/self/cgroup": "5:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n",
            "proc/self/mountinfo": (
                "35 30 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
                "36 30 0:32 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
            ),
            "proc/meminfo": MEMINFO,
            "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
            "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": f"{2 * GiB}\n",
            "sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes": f"{GiB}\n",
            "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "150000\n",
            "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
        },
    )
    info = detect(tmp_path, {}, root=root)
    affinity = len(os.sched_getaffinity(0))
    assert info.cpu.cpu_millis == min(1500, affinity * 1000)
    assert info.cpu.usable_cores == min(2, affinity)
    assert info.cpu.model is None and info.notes == ["cpu: /proc/cpuinfo unreadable; model and flags unknown"]
    assert (info.memory.cgroup_limit_bytes, info.memory.available_bytes) == (2 * GiB, GiB)


def test_without_cgroups_the_host_figures_stand(tmp_path: Path) -> None:
    root = _tree(tmp_path / "root", {"proc/meminfo": MEMINFO})
    info = detect(tmp_path, {}, root=root)
    assert info.cpu.cgroup_quota_millis is None
    assert info.cpu.cpu_millis == len(os.sched_getaffinity(0)) * 1000
    assert (info.memory.usable_bytes, info.memory.available_bytes) == (8 * GiB, 6 * GiB)
    assert info.os.distro is None


# The GPU probe runs a real subprocess. No GPU exists here, so stand-in scripts play nvidia-smi's part
# (its exact output format, a driver failure, a hang); the parser itself is covered in the unit tests.
def _script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_gpu_probe_parses_nvidia_smi_output(tmp_path: Path) -> None:
    binary = _script(
        tmp_path,
        "nvsmi-ok",
        'test "$1" = "--query-gpu=name,memory.total,driver_version" || exit 3\n'
        'test "$2" = "--format=csv,noheader" || exit 4\n'
        "echo 'NVIDIA H100 80GB HBM3, 81559 MiB, 550.54.15'\n",
    )
    gpus, status = detect_gpus(binary)
    assert status == "ok"
    assert gpus == [GpuInfo(0, "nvidia", "NVIDIA H100 80GB HBM3", 81559 * MiB, "550.54.15")]
    info = detect(tmp_path, {}, nvidia_smi=binary)
    assert info.capability().gpu_count == 1 and info.capability().gpu_model == "NVIDIA H100 80GB HBM3"


def test_gpu_probe_failures_report_no_gpus_with_a_reason(tmp_path: Path) -> None:
    broken = _script(
        tmp_path, "nvsmi-broken", 'echo "NVIDIA-SMI has failed because it couldn\'t communicate" >&2\nexit 9\n'
    )
    assert detect_gpus(broken) == (
        [],
        f"{broken} failed (exit 9): NVIDIA-SMI has failed because it couldn't communicate",
    )
    empty = _script(tmp_path, "nvsmi-empty", "exit 0\n")
    assert detect_gpus(empty) == ([], f"{empty} reported no GPUs")
    hang = _script(tmp_path, "nvsmi-hang", "exec sleep 30\n")
    gpus, status = detect_gpus(hang, timeout_s=0.3)
    assert (gpus, status) == ([], f"{hang} timed out after 0.3s")
    assert detect_gpus(str(tmp_path / "absent")) == ([], f"{tmp_path / 'absent'} not found")
