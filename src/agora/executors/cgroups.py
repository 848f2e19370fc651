"""Per-task cgroups (v2 unified or v1 per-controller) for the process executor.

Why cgroups and not rlimits alone: rlimits are per process (RLIMIT_AS) or per uid (RLIMIT_NPROC),
so a task that forks escapes them or starves every other task of the same uid; a cgroup bounds the
whole process tree, counts its CPU and peak memory, reports OOM kills and can kill every member at
once. Every task gets `<hierarchy>/<parent>/<task>`; the parent (default `agora`) is created on
first use and left in place (it is shared), the task cgroup is removed by `TaskCgroup.remove`.

The top half of this module is pure (parsing and computing the values to write) so it can be unit
tested without root; the bottom half touches /sys/fs/cgroup and is used from worker threads.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from agora.executors.interfaces import Limits

CgroupVersion = Literal["v1", "v2"]
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids")  # freezer is optional (used to kill atomically)
V2_CONTROLLERS = ("memory", "cpu", "pids")
CPU_PERIOD_US = 100_000
_NAME = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9_.-]{1,128}$")  # a plain directory name, never . or ..


# ---------------------------------------------------------------- pure part


@dataclass(frozen=True)
class Mounts:
    """Where the cgroup hierarchies are mounted, from /proc/self/mountinfo."""

    v2: Path | None = None
    v1: dict[str, Path] = field(default_factory=dict)  # controller -> mount point ("cpu" and "cpuacct" may share)


def parse_mountinfo(text: str) -> Mounts:
    v2: Path | None = None
    v1: dict[str, Path] = {}
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        mount_point, fstype, options = Path(fields[4]), rfields[0], rfields[2].split(",")
        if fstype == "cgroup2" and v2 is None:
            v2 = mount_point
        elif fstype == "cgroup":
            for opt in options:
                if opt in V1_CONTROLLERS or opt == "freezer":
                    v1.setdefault(opt, mount_point)
    return Mounts(v2=v2, v1=v1)


def cpu_quota_us(cpu_millis: int, period_us: int = CPU_PERIOD_US) -> int:
    """1000 millis = one core = a quota equal to the period; the kernel refuses quotas under 1 ms."""
    return max(1000, cpu_millis * period_us // 1000)


def v2_limit_writes(limits: Limits) -> list[tuple[str, str]]:
    """Files to write, in order, into a v2 task cgroup."""
    return [
        ("memory.max", str(limits.memory_bytes)),
        ("memory.swap.max", "0"),  # swap would let a task exceed its memory limit silently
        ("memory.oom.group", "1"),  # an OOM kills the whole task, not one random member of it
        ("cpu.max", f"{cpu_quota_us(limits.cpu_millis)} {CPU_PERIOD_US}"),
        ("pids.max", str(limits.pids)),
    ]


def v1_limit_writes(limits: Limits, *, memsw: bool) -> list[tuple[str, str, str]]:
    """(controller, file, value) to write into v1 task cgroups; memsw only where swap accounting exists."""
    out = [("memory", "memory.limit_in_bytes", str(limits.memory_bytes))]
    if memsw:  # must come after memory.limit_in_bytes: the kernel requires memsw >= memory limit
        out.append(("memory", "memory.memsw.limit_in_bytes", str(limits.memory_bytes)))
    out += [
        ("cpu", "cpu.cfs_period_us", str(CPU_PERIOD_US)),
        ("cpu", "cpu.cfs_quota_us", str(cpu_quota_us(limits.cpu_millis))),
        ("pids", "pids.max", str(limits.pids)),
    ]
    return out


def parse_flat_keyed(text: str) -> dict[str, int]:
    """`key value` lines (memory.events, cpu.stat, memory.oom_control) -> dict; non-integers skipped."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def parse_pids(text: str) -> set[int]:
    return {int(tok) for tok in text.split() if tok.isdigit()}


# ---------------------------------------------------------------- I/O part


@dataclass(frozen=True)
class CgroupSupport:
    version: CgroupVersion | None
    reason: str = ""  # why cgroups cannot be used, when version is None
    roots: dict[str, Path] = field(default_factory=dict)  # controller -> parent dir ("" for v2)
    memsw: bool = False


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:  # one write() call: cgroup files reject partial or buffered writes
        f.write(value)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


class Cgroups:
    """Finds a usable hierarchy and creates task cgroups under `<root>/<parent>`."""

    def __init__(self, parent: str = "agora", mountinfo: Path = Path("/proc/self/mountinfo")) -> None:
        if not all(_NAME.match(p) for p in parent.split("/")):
            raise ValueError(f"invalid cgroup parent {parent!r}")
        self.parent = parent
        self._mountinfo = mountinfo
        self._support: CgroupSupport | None = None

    def detect(self) -> CgroupSupport:
        """Prefer v2 when it has the controllers (pure v2 hosts); else v1 (hybrid hosts like this one)."""
        if self._support is None:
            self._support = self._detect()
        return self._support

    def _detect(self) -> CgroupSupport:
        try:
            mounts = parse_mountinfo(self._mountinfo.read_text())
        except OSError as exc:
            return CgroupSupport(None, f"cannot read {self._mountinfo}: {exc}")
        reasons: list[str] = []
        if mounts.v2 is not None:
            have = set(_read(mounts.v2 / "cgroup.controllers").split())
            missing = [c for c in V2_CONTROLLERS if c not in have]
            if not missing:
                try:
                    return self._setup_v2(mounts.v2)
                except OSError as exc:
                    reasons.append(f"cgroup v2 at {mounts.v2} not writable: {exc}")
            else:
                reasons.append(f"cgroup v2 at {mounts.v2} lacks controllers {','.join(missing)}")
        missing = [c for c in V1_CONTROLLERS if c not in mounts.v1]
        if mounts.v1 and not missing:
            try:
                return self._setup_v1(mounts.v1)
            except OSError as exc:
                reasons.append(f"cgroup v1 not writable: {exc}")
        elif mounts.v1:
            reasons.append(f"cgroup v1 lacks controllers {','.join(missing)}")
        if not reasons:
            reasons.append("no cgroup filesystem is mounted")
        return CgroupSupport(None, "; ".join(reasons))

    def _setup_v2(self, root: Path) -> CgroupSupport:
        wanted = " ".join(f"+{c}" for c in V2_CONTROLLERS)
        current = root
        for part in self.parent.split("/"):
            enabled = set(_read(current / "cgroup.subtree_control").split())
            if not set(V2_CONTROLLERS) <= enabled:
                _write(current / "cgroup.subtree_control", wanted)
            current = current / part
            current.mkdir(exist_ok=True)
        _write(current / "cgroup.subtree_control", wanted)  # task cgroups get memory/cpu/pids files
        return CgroupSupport("v2", roots={"": current})

    def _setup_v1(self, mounts: dict[str, Path]) -> CgroupSupport:
        roots: dict[str, Path] = {}
        for ctrl, mount in mounts.items():
            path = mount / self.parent
            path.mkdir(parents=True, exist_ok=True)
            if not os.access(path / "cgroup.procs", os.W_OK):
                raise OSError(errno.EACCES, f"{path}/cgroup.procs is not writable")
            roots[ctrl] = path
        memsw = (roots["memory"] / "memory.memsw.limit_in_bytes").exists()
        return CgroupSupport("v1", roots=roots, memsw=memsw)

    def sweep(self, prefix: str = "", min_age_s: float = 60.0) -> int:
        """Remove the empty task cgroups a node that died (kill -9, power loss) left under the parent.

        Only empty ones: `rmdir` of a cgroup with members fails (EBUSY), so a task still running, of
        this node or of another node sharing the parent, is never touched. With a `prefix` (a node's own
        tag on its task cgroups) only those, at any age; without, only those older than `min_age_s`, so
        one another node just made and has not joined yet stays. Returns how many went."""
        support = self.detect()
        removed = 0
        now = time.time()
        for root in sorted(set(support.roots.values())):
            try:
                children = [
                    p for p in root.iterdir() if p.is_dir() and _NAME.match(p.name) and p.name.startswith(prefix)
                ]
            except OSError:
                continue
            for child in children:
                try:
                    if not prefix and now - child.stat().st_mtime < min_age_s:
                        continue
                    child.rmdir()
                    removed += 1
                except OSError:  # busy (a live task), or gone already
                    continue
        return removed

    def create(self, name: str, limits: Limits) -> TaskCgroup:
        """Make the task's cgroup and write its limits; on any failure nothing is left behind."""
        support = self.detect()
        if support.version is None:
            raise OSError(errno.ENOTSUP, support.reason)
        if not _NAME.match(name):
            raise ValueError(f"invalid cgroup name {name!r}")
        if support.version == "v2":
            cg = TaskCgroup("v2", {"": support.roots[""] / name})
        else:
            dirs: dict[str, Path] = {}
            for ctrl, root in support.roots.items():
                dirs[ctrl] = root / name
            cg = TaskCgroup("v1", dirs)
        try:
            for path in cg.unique_dirs():
                path.mkdir()
            if support.version == "v2":
                for fname, value in v2_limit_writes(limits):
                    target = cg.dirs[""] / fname
                    if target.exists():  # memory.swap.max / memory.oom.group are missing on some kernels
                        _write(target, value)
            else:
                for ctrl, fname, value in v1_limit_writes(limits, memsw=support.memsw):
                    _write(cg.dirs[ctrl] / fname, value)
        except BaseException:
            cg.remove(timeout_s=2.0)
            raise
        return cg


class TaskCgroup:
    """One task's cgroup(s): add the gated process, read stats, kill everything, remove."""

    def __init__(self, version: CgroupVersion, dirs: dict[str, Path]) -> None:
        self.version = version
        self.dirs = dirs
        self._peak_seen = 0

    def unique_dirs(self) -> list[Path]:
        seen: list[Path] = []
        for path in self.dirs.values():
            if path not in seen:
                seen.append(path)
        return seen

    def _file(self, ctrl: str, name: str) -> Path:
        return self.dirs["" if self.version == "v2" else ctrl] / name

    def add_pid(self, pid: int) -> None:
        for path in self.unique_dirs():
            _write(path / "cgroup.procs", str(pid))

    def pids(self) -> set[int]:
        out: set[int] = set()
        for path in self.unique_dirs():
            out |= parse_pids(_read(path / "cgroup.procs"))
        return out

    def oom_kills(self) -> int:
        if self.version == "v2":
            return parse_flat_keyed(_read(self._file("memory", "memory.events"))).get("oom_kill", 0)
        ctl = parse_flat_keyed(_read(self._file("memory", "memory.oom_control")))
        if "oom_kill" in ctl:
            return ctl["oom_kill"]
        # old kernels: no counter; a failed charge at the limit is the best evidence there is
        failcnt = _read(self._file("memory", "memory.failcnt")).strip()
        return 1 if failcnt.isdigit() and int(failcnt) > 0 else 0

    def cpu_seconds(self) -> float:
        if self.version == "v2":
            return parse_flat_keyed(_read(self._file("cpu", "cpu.stat"))).get("usage_usec", 0) / 1e6
        text = _read(self._file("cpuacct", "cpuacct.usage")).strip()
        return int(text) / 1e9 if text.isdigit() else 0.0

    def peak_memory(self) -> int:
        names = ("memory.peak", "memory.current") if self.version == "v2" else ("memory.max_usage_in_bytes",)
        for name in names:
            text = _read(self._file("memory", name)).strip()
            if text.isdigit():
                self._peak_seen = max(self._peak_seen, int(text))
                break
        return self._peak_seen

    def signal_all(self, sig: int) -> int:
        """Send `sig` to every member; returns how many were signalled."""
        count = 0
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
                count += 1
        return count

    def kill(self, timeout_s: float = 5.0) -> bool:
        """SIGKILL every member until the cgroup is empty (bounded); True when it is empty.

        v2 `cgroup.kill` is atomic against forks; on v1 the freezer (when mounted) stops a fork
        bomb from refilling the group between reading the pid list and killing it.
        """
        deadline = time.monotonic() + timeout_s
        kill_file = self._file("", "cgroup.kill") if self.version == "v2" else None
        freezer = self.dirs.get("freezer") if self.version == "v1" else None
        while time.monotonic() < deadline:
            if not self.pids():
                return True
            if kill_file is not None and kill_file.exists():
                with contextlib.suppress(OSError):
                    _write(kill_file, "1")
            else:
                if freezer is not None:
                    with contextlib.suppress(OSError):
                        _write(freezer / "freezer.state", "FROZEN")
                self.signal_all(signal.SIGKILL)
                if freezer is not None:
                    with contextlib.suppress(OSError):
                        _write(freezer / "freezer.state", "THAWED")  # killed tasks die only once thawed
            time.sleep(0.02)
        return not self.pids()

    def remove(self, timeout_s: float = 5.0) -> None:
        """Kill what is left and rmdir; retried while the kernel still counts exiting members."""
        self.kill(timeout_s)
        deadline = time.monotonic() + timeout_s
        for path in self.unique_dirs():
            while True:
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise
                    self.signal_all(signal.SIGKILL)
                    time.sleep(0.02)

    def exists(self) -> bool:
        return any(path.exists() for path in self.unique_dirs())


__all__ = [
    "CgroupSupport",
    "CgroupVersion",
    "Cgroups",
    "Mounts",
    "TaskCgroup",
    "cpu_quota_us",
    "parse_flat_keyed",
    "parse_mountinfo",
    "parse_pids",
    "v1_limit_writes",
    "v2_limit_writes",
]
