"""What a machine has, how fast it is, and how much of it is free right now.

- `comparator.py` (pure): `rank` fitting machines by weighted soft preferences, with the breakdown kept,
  and `reason_counts` for the `why` view. `fits`, `Capability`, `FitResult` and `Reason` live in
  `agora.models.capability` (pure data, layer 1) and are re-exported here.
- `capacity.py`: `CapacityTracker`, live accounting of free capacity as allocations start and stop.
- `parsers.py` (pure): /proc, cgroup, os-release and nvidia-smi text -> data.
- `machine.py`: `MachineInfo` (what detection found, JSON-able) and the `Capability` it offers.
- `detect.py`: reads the machine (CPU, memory, disk, GPUs, OS); `detect`, `detect_async`.
- `bench.py`: the onboarding benchmark (`run_benchmark`), its composite score, store helpers.
"""

from agora.models.capability import Capability, FitResult, PriceSchedule, Reason, fits
from agora.resources.bench import (
    BenchConfig,
    BenchmarkResult,
    load_latest_benchmark,
    run_benchmark,
    save_benchmark,
)
from agora.resources.capacity import CapacityTracker, Reservation
from agora.resources.comparator import Ranked, ScorePart, Weights, rank, reason_counts
from agora.resources.detect import detect, detect_async
from agora.resources.machine import MachineInfo
from agora.resources.parsers import GpuInfo, parse_nvidia_smi

__all__ = [
    "BenchConfig",
    "BenchmarkResult",
    "Capability",
    "CapacityTracker",
    "FitResult",
    "GpuInfo",
    "MachineInfo",
    "PriceSchedule",
    "Ranked",
    "Reason",
    "Reservation",
    "ScorePart",
    "Weights",
    "detect",
    "detect_async",
    "fits",
    "load_latest_benchmark",
    "parse_nvidia_smi",
    "rank",
    "reason_counts",
    "run_benchmark",
    "save_benchmark",
]
