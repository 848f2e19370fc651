"""Detect what this machine has: CPU, memory, disk, GPUs, OS (the I/O half; parsing is in parsers.py).

Detection reports what *this process* can use, not only what the hardware has: CPU affinity and a
cgroup CPU quota lower the usable cores, a cgroup memory limit lowers usable memory. A node inside a
container that advertised the host's 64 cores would accept work it cannot do.

Nothing here fails because a component is missing: no nvidia-smi means no GPUs (with `gpu_probe`
saying why), an unreadable /proc file falls back to psutil or the os module and adds a note.
`root` lets tests point detection at a fixture tree shaped like / (proc, sys, etc).
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import psutil

from agora.clock import SYSTEM_CLOCK, Clock
from agora.errors import AgoraError
from agora.resources.machine import CpuInfo, DiskInfo, ExecutorStatus, MachineInfo, MemoryInfo, OsInfo
from agora.resources.parsers import (
    CgroupMount,
    GpuInfo,
    cfs_millis,
    cgroup_dir,
    parse_cpu_max,
    parse_cpuinfo,
    parse_meminfo,
    parse_memory_limit,
    parse_mountinfo,
    parse_nvidia_smi,
    parse_os_release,
    parse_proc_cgroup,
)

NVIDIA_QUERY = ["--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


class _Cgroups:
    """Finds this process's cgroup directories (v1 per controller, or v2 unified) and reads limits,
    taking the lowest along the path up to the mount, since a parent's limit binds its children."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.paths = parse_proc_cgroup(_read(root / "proc/self/cgroup") or "")
        self.mounts = parse_mountinfo(_read(root / "proc/self/mountinfo") or "")

    def _dirs(self, controller: str) -> tuple[int, list[Path]] | None:
        for mount in self.mounts:
            if mount.version == 1 and controller in mount.controllers and controller in self.paths:
                return 1, self._chain(mount, self.paths[controller])
        for mount in self.mounts:
            if mount.version == 2 and "" in self.paths:
                return 2, self._chain(mount, self.paths[""])
        return None

    def _chain(self, mount: CgroupMount, path: str) -> list[Path]:
        top = self.root / mount.mount_point.lstrip("/")
        here = self.root / cgroup_dir(mount, path).lstrip("/")
        chain = [here]
        while here != top and top in here.parents:
            here = here.parent
            chain.append(here)
        return chain

    def cpu_millis(self) -> int | None:
        found = self._dirs("cpu")
        if found is None:
            return None
        version, dirs = found
        limits: list[int] = []
        for d in dirs:
            try:
                if version == 2:
                    text = _read(d / "cpu.max")
                    limit = parse_cpu_max(text) if text is not None else None
                else:
                    quota, period = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
                    limit = cfs_millis(int(quota), int(period)) if quota and period else None
            except ValueError:
                limit = None
            if limit is not None:
                limits.append(limit)
        return min(limits, default=None)

    def memory(self) -> tuple[int | None, int | None]:
        """(limit, current usage) of the tightest limit on the path, or (None, None)."""
        found = self._dirs("memory")
        if found is None:
            return None, None
        version, dirs = found
        limit_file, usage_file = (
            ("memory.max", "memory.current") if version == 2 else ("memory.limit_in_bytes", "memory.usage_in_bytes")
        )
        best: tuple[int | None, int | None] = (None, None)
        for d in dirs:
            text = _read(d / limit_file)
            try:
                limit = parse_memory_limit(text) if text is not None else None
                usage_text = _read(d / usage_file)
                usage = int(usage_text.strip()) if usage_text and usage_text.strip().isdigit() else None
            except ValueError:
                continue
            if limit is not None and (best[0] is None or limit < best[0]):
                best = (limit, usage)
        return best


def detect_cpu(root: Path, cgroups: _Cgroups, notes: list[str]) -> CpuInfo:
    text = _read(root / "proc/cpuinfo")
    model, flags = parse_cpuinfo(text) if text is not None else (None, frozenset[str]())
    if text is None:
        notes.append("cpu: /proc/cpuinfo unreadable; model and flags unknown")
    logical = os.cpu_count() or 1
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = logical
    quota = cgroups.cpu_millis()
    millis = affinity * 1000 if quota is None else min(affinity * 1000, quota)
    return CpuInfo(
        model=model or (platform.processor() or None),
        arch=platform.machine() or "unknown",
        logical_cores=logical,
        usable_cores=max(1, -(-millis // 1000)),
        cpu_millis=millis,
        flags=sorted(flags),
        cgroup_quota_millis=quota,
    )


def detect_memory(root: Path, cgroups: _Cgroups, notes: list[str]) -> MemoryInfo:
    text = _read(root / "proc/meminfo")
    try:
        if text is None:
            raise ValueError("unreadable")
        total, available = parse_meminfo(text)
    except ValueError:
        notes.append("memory: /proc/meminfo unreadable; used psutil")
        vm = psutil.virtual_memory()
        total, available = int(vm.total), int(vm.available)
    if available is None:
        available = total
    limit, usage = cgroups.memory()
    if limit is not None:
        headroom = limit - usage if usage is not None else limit
        available = max(0, min(available, headroom))
    return MemoryInfo(total_bytes=total, available_bytes=available, cgroup_limit_bytes=limit)


def detect_disk(home: Path) -> DiskInfo:
    if not home.is_dir():
        raise AgoraError("config_invalid", f"node home {home} does not exist or is not a directory")
    usage = shutil.disk_usage(home)
    return DiskInfo(path=str(home), total_bytes=int(usage.total), free_bytes=int(usage.free))


def detect_gpus(binary: str = "nvidia-smi", timeout_s: float = 5.0) -> tuple[list[GpuInfo], str]:
    """GPUs via nvidia-smi, and a short status. Never raises: a GPU probe must not stop onboarding."""
    path = shutil.which(binary)
    if path is None:
        return [], f"{binary} not found"
    try:
        proc = subprocess.run([path, *NVIDIA_QUERY], capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return [], f"{binary} timed out after {timeout_s:g}s"
    except OSError as e:
        return [], f"{binary} could not run: {e}"
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        return [], f"{binary} failed (exit {proc.returncode}): {detail[0] if detail else 'no output'}"
    gpus = parse_nvidia_smi(proc.stdout)
    return gpus, "ok" if gpus else f"{binary} reported no GPUs"


def detect_os(root: Path) -> OsInfo:
    release = parse_os_release(_read(root / "etc/os-release") or _read(root / "usr/lib/os-release") or "")
    return OsInfo(
        system=platform.system(),
        kernel=platform.release(),
        distro=release.get("PRETTY_NAME") or release.get("NAME"),
        python=platform.python_version(),
    )


def detect(
    home: Path,
    executors: Mapping[str, tuple[bool, str]],
    *,
    clock: Clock = SYSTEM_CLOCK,
    root: Path = Path("/"),
    nvidia_smi: str = "nvidia-smi",
    gpu_timeout_s: float = 5.0,
) -> MachineInfo:
    """Everything onboarding needs to know about this machine. Blocking (reads files, may run
    nvidia-smi): from async code use `detect_async`. `executors` maps engine -> (available, reason),
    as probed by the caller (this package does not know the executors)."""
    for name, status in executors.items():
        if not isinstance(status, tuple) or len(status) != 2:
            raise AgoraError("invalid_argument", f"executor {name!r}: expected (available, reason), got {status!r}")
    notes: list[str] = []
    cgroups = _Cgroups(root)
    gpus, gpu_probe = detect_gpus(nvidia_smi, gpu_timeout_s)
    return MachineInfo(
        cpu=detect_cpu(root, cgroups, notes),
        memory=detect_memory(root, cgroups, notes),
        disk=detect_disk(home),
        gpus=gpus,
        os=detect_os(root),
        executors={str(k): ExecutorStatus(bool(v[0]), str(v[1])) for k, v in sorted(executors.items())},
        detected_at=clock.now(),
        gpu_probe=gpu_probe,
        notes=notes,
    )


async def detect_async(
    home: Path,
    executors: Mapping[str, tuple[bool, str]],
    *,
    clock: Clock = SYSTEM_CLOCK,
    root: Path = Path("/"),
    nvidia_smi: str = "nvidia-smi",
    gpu_timeout_s: float = 5.0,
) -> MachineInfo:
    return await asyncio.to_thread(
        detect, home, executors, clock=clock, root=root, nvidia_smi=nvidia_smi, gpu_timeout_s=gpu_timeout_s
    )


__all__ = ["NVIDIA_QUERY", "detect", "detect_async", "detect_cpu", "detect_disk", "detect_gpus", "detect_memory"]
