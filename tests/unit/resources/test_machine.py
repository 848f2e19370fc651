"""MachineInfo: JSON round trip and the Capability a machine offers."""

from __future__ import annotations

import json

import pytest

from agora.errors import AgoraError
from agora.models.capability import Capability, GiB, MiB
from agora.resources.machine import CpuInfo, DiskInfo, ExecutorStatus, MachineInfo, MemoryInfo, OsInfo
from agora.resources.parsers import GpuInfo


def machine(gpus: list[GpuInfo], limit: int | None = None) -> MachineInfo:
    return MachineInfo(
        cpu=CpuInfo("Xeon", "amd64", 16, 4, 3500, ["avx2"], cgroup_quota_millis=3500),
        memory=MemoryInfo(total_bytes=64 * GiB, available_bytes=30 * GiB, cgroup_limit_bytes=limit),
        disk=DiskInfo("/home/agora", 500 * GiB, 120 * GiB),
        gpus=gpus,
        os=OsInfo("Linux", "6.1", "Debian", "3.11.7"),
        executors={"wasm": ExecutorStatus(True, "ok"), "docker": ExecutorStatus(False, "no engine")},
        detected_at=1_700_000_000.0,
        gpu_probe="ok" if gpus else "nvidia-smi not found",
    )


def test_capability_of_a_plain_machine() -> None:
    cap = machine([], limit=16 * GiB).capability(labels={"site": "home"}, location="eu", price=3)
    assert cap == Capability(
        cpu_millis=3500,
        memory_bytes=16 * GiB,
        disk_bytes=120 * GiB,
        arch="x86_64",
        executors=frozenset({"wasm"}),
        labels={"site": "home"},
        location="eu",
        price=3,
    )
    assert machine([]).capability().memory_bytes == 64 * GiB


def test_capability_of_mixed_gpus_uses_most_common_model_and_smallest_vram() -> None:
    gpus = [
        GpuInfo(0, "nvidia", "A100", 80 * GiB, "550"),
        GpuInfo(1, "nvidia", "A100", 40 * GiB, "550"),
        GpuInfo(2, "nvidia", "T4", 16 * GiB, "550"),
    ]
    cap = machine(gpus).capability()
    assert (cap.gpu_count, cap.gpu_model, cap.gpu_vram_bytes) == (2, "A100", 40 * GiB)


def test_json_round_trip() -> None:
    m = machine([GpuInfo(0, "nvidia", "T4", 15360 * MiB, None)], limit=GiB)
    again = MachineInfo.from_dict(json.loads(json.dumps(m.to_dict())))
    assert again == m
    with pytest.raises(AgoraError) as e:
        MachineInfo.from_dict({"cpu": {}})
    assert e.value.code == "invalid_argument"
