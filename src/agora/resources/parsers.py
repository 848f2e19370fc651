"""Pure parsers for the text that machine detection reads (/proc, /sys/fs/cgroup, os-release, nvidia-smi).

Kept apart from `detect.py` so each format is unit-tested on sample text from many machine kinds
(x86, ARM, cgroup v1 and v2, GPU boxes) without needing those machines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agora.models.capability import MiB

# Flags worth advertising (what a task might require); the full list is hundreds of entries long.
NOTABLE_FLAGS = frozenset(
    {
        "sse4_1",
        "sse4_2",
        "avx",
        "avx2",
        "fma",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512_vnni",
        "avx512_bf16",
        "amx_tile",
        "aes",
        "sha_ni",
        "neon",
        "asimd",
        "sve",
        "sve2",
        "sha2",
    }
)
_UNLIMITED = 1 << 62  # cgroup v1 writes "no limit" as a page-rounded 2**63 - 1


@dataclass(frozen=True)
class GpuInfo:
    index: int
    vendor: str
    model: str
    vram_bytes: int
    driver: str | None


@dataclass(frozen=True)
class CgroupMount:
    mount_point: str
    root: str  # the part of the hierarchy that is mounted there (not "/" inside a container)
    version: int  # 1 or 2
    controllers: frozenset[str]  # v1: cpu, memory, ...; v2: empty (all controllers)


def parse_cpuinfo(text: str) -> tuple[str | None, frozenset[str]]:
    """CPU model and notable flags. x86 says `model name`/`flags`; ARM says `Features` (and `asimd`
    is NEON, which we name too since that is what people ask for)."""
    model: str | None = None
    flags: set[str] = set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if model is None and key in ("model name", "cpu model", "hardware", "model") and value:
            model = value if key != "model" or not value.isdigit() else None
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    if "asimd" in flags:
        flags.add("neon")
    return model, frozenset(flags & NOTABLE_FLAGS)


def parse_meminfo(text: str) -> tuple[int, int | None]:
    """(MemTotal, MemAvailable) in bytes; MemAvailable is missing on very old kernels."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        parts = rest.split()
        if sep and parts and parts[0].isdigit():
            scale = 1024 if len(parts) > 1 and parts[1].lower() == "kb" else 1
            values[key.strip()] = int(parts[0]) * scale
    if "MemTotal" not in values:
        raise ValueError("no MemTotal in meminfo")
    return values["MemTotal"], values.get("MemAvailable")


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/self/cgroup -> controller -> path; the v2 unified entry (`0::/path`) is under key ""."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            out[""] = path
        for c in controllers.split(","):
            if c:
                out[c] = path
    return out


def parse_mountinfo(text: str) -> list[CgroupMount]:
    """cgroup mounts from /proc/self/mountinfo (which, unlike /proc/mounts, tells the mounted root)."""
    mounts: list[CgroupMount] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 1:
            continue
        fstype = tail[0]
        if fstype == "cgroup2":
            mounts.append(CgroupMount(fields[4], fields[3], 2, frozenset()))
        elif fstype == "cgroup" and len(tail) >= 3:
            opts = set(tail[2].split(","))
            ctrls = frozenset(o for o in opts if o in ("cpu", "cpuacct", "memory", "cpuset", "pids", "blkio"))
            mounts.append(CgroupMount(fields[4], fields[3], 1, ctrls))
    return mounts


def cgroup_dir(mount: CgroupMount, path: str) -> str:
    """Where in the filesystem the cgroup at `path` lives, given the mount of its hierarchy."""
    root = mount.root.rstrip("/")
    # outside the mounted root (a cgroup namespace), the process lives at the mount's root
    rel = path[len(root) :].strip("/") if path == mount.root or path.startswith(root + "/") else ""
    return mount.mount_point.rstrip("/") + ("/" + rel if rel else "")


def parse_cpu_max(text: str) -> int | None:
    """cgroup v2 `cpu.max` ("200000 100000" = 2 cores, "max 100000" = unlimited) -> milli-cores."""
    parts = text.split()
    if not parts or parts[0] == "max":
        return None
    quota = int(parts[0])
    period = int(parts[1]) if len(parts) > 1 else 100000
    return cfs_millis(quota, period)


def cfs_millis(quota: int, period: int) -> int | None:
    """cgroup v1 cfs_quota_us/cfs_period_us -> milli-cores; -1 (or nonsense) means unlimited."""
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota * 1000 / period))


def parse_memory_limit(text: str) -> int | None:
    """cgroup v2 `memory.max` or v1 `memory.limit_in_bytes` -> bytes, None when unlimited."""
    value = text.strip()
    if value in ("", "max"):
        return None
    n = int(value)
    return None if n >= _UNLIMITED else n


def parse_os_release(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            out[key] = value.strip().strip('"').strip("'")
    return out


def parse_nvidia_smi(text: str) -> list[GpuInfo]:
    """Output of `nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader`.

    Tolerates `nounits` output, `[N/A]`/`[Not Supported]` memory (reported as 0) and blank lines; a
    line that does not have three fields is skipped rather than failing the whole probe.
    """
    gpus: list[GpuInfo] = []
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 3 or not fields[0]:
            continue
        name, memory, driver = fields[0], fields[1], fields[2]
        gpus.append(
            GpuInfo(
                index=len(gpus),
                vendor="nvidia",
                model=name,
                vram_bytes=_nvidia_memory(memory),
                driver=None if driver.startswith("[") or not driver else driver,
            )
        )
    return gpus


def _nvidia_memory(field: str) -> int:
    parts = field.split()
    if not parts:
        return 0
    try:
        amount = float(parts[0])
    except ValueError:
        return 0
    unit = parts[1].lower() if len(parts) > 1 else "mib"  # nounits output is in MiB
    scale = {"kib": 1024, "mib": MiB, "gib": 1024 * MiB}.get(unit, MiB)
    return int(amount * scale)


__all__ = [
    "NOTABLE_FLAGS",
    "CgroupMount",
    "GpuInfo",
    "cfs_millis",
    "cgroup_dir",
    "parse_cpu_max",
    "parse_cpuinfo",
    "parse_meminfo",
    "parse_memory_limit",
    "parse_mountinfo",
    "parse_nvidia_smi",
    "parse_os_release",
    "parse_proc_cgroup",
]
