"""What detection found on a machine (`MachineInfo`), as JSON-able data, and the `Capability` it offers.

Kept separate from `detect.py` (which does the I/O) so a stored or received MachineInfo can be
rebuilt and turned into a capability without touching the machine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from agora.errors import AgoraError
from agora.models.capability import Capability, PriceSchedule, normalize_arch
from agora.resources.parsers import GpuInfo


@dataclass(frozen=True)
class CpuInfo:
    model: str | None
    arch: str
    logical_cores: int  # os.cpu_count(): what the hardware has
    usable_cores: int  # after CPU affinity and the cgroup quota, rounded up
    cpu_millis: int  # the exact usable amount (a 1.5-core quota is 1500)
    flags: list[str]
    cgroup_quota_millis: int | None = None


@dataclass(frozen=True)
class MemoryInfo:
    total_bytes: int  # physical (MemTotal)
    available_bytes: int  # MemAvailable, capped by what the cgroup still allows
    cgroup_limit_bytes: int | None = None

    @property
    def usable_bytes(self) -> int:
        """What this process may ever use: physical memory or the cgroup limit, whichever is lower."""
        if self.cgroup_limit_bytes is None:
            return self.total_bytes
        return min(self.total_bytes, self.cgroup_limit_bytes)


@dataclass(frozen=True)
class DiskInfo:
    path: str
    total_bytes: int
    free_bytes: int


@dataclass(frozen=True)
class OsInfo:
    system: str
    kernel: str
    distro: str | None
    python: str


@dataclass(frozen=True)
class ExecutorStatus:
    available: bool
    reason: str  # why not (or a version string / "ok" when available)


@dataclass(frozen=True)
class MachineInfo:
    cpu: CpuInfo
    memory: MemoryInfo
    disk: DiskInfo
    gpus: list[GpuInfo]
    os: OsInfo
    executors: dict[str, ExecutorStatus]
    detected_at: float
    gpu_probe: str = "not probed"  # "ok", "nvidia-smi not found", "nvidia-smi failed: ..." (never an error)
    notes: list[str] = field(default_factory=list)  # anything detection had to guess, for `agora node info`

    def capability(
        self,
        *,
        labels: Mapping[str, str] | None = None,
        location: str | None = None,
        price: int | PriceSchedule | None = None,
        trust: float | None = None,
        latency_ms: float | None = None,
        benchmark_score: float | None = None,
    ) -> Capability:
        """The capacity this machine can offer: usable cores and memory, free disk under the node's
        home, and its GPUs as the most common model with the smallest VRAM among those (a need for
        `gpu_model` and `gpu_vram_bytes` must hold for every GPU counted)."""
        gpu_model: str | None = None
        gpu_count = 0
        vram = 0
        if self.gpus:
            gpu_model = Counter(g.model for g in self.gpus).most_common(1)[0][0]
            same = [g for g in self.gpus if g.model == gpu_model]
            gpu_count, vram = len(same), min(g.vram_bytes for g in same)
        return Capability(
            cpu_millis=self.cpu.cpu_millis,
            memory_bytes=self.memory.usable_bytes,
            disk_bytes=self.disk.free_bytes,
            gpu_count=gpu_count,
            gpu_model=gpu_model,
            gpu_vram_bytes=vram,
            arch=normalize_arch(self.cpu.arch) if self.cpu.arch else None,
            executors=frozenset(name for name, st in self.executors.items() if st.available),
            labels=dict(labels or {}),
            location=location,
            price=price,
            trust=trust,
            latency_ms=latency_ms,
            benchmark_score=benchmark_score,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MachineInfo:
        try:
            return cls(
                cpu=CpuInfo(**data["cpu"]),
                memory=MemoryInfo(**data["memory"]),
                disk=DiskInfo(**data["disk"]),
                gpus=[GpuInfo(**g) for g in data["gpus"]],
                os=OsInfo(**data["os"]),
                executors={str(k): ExecutorStatus(**v) for k, v in data["executors"].items()},
                detected_at=float(data["detected_at"]),
                gpu_probe=str(data.get("gpu_probe", "not probed")),
                notes=[str(n) for n in data.get("notes", [])],
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise AgoraError("invalid_argument", f"malformed machine info: {e!r}") from None


__all__ = ["CpuInfo", "DiskInfo", "ExecutorStatus", "GpuInfo", "MachineInfo", "MemoryInfo", "OsInfo"]
