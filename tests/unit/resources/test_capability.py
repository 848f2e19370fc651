"""The Capability model: validation, units, every failing dimension with exact text, arithmetic."""

from __future__ import annotations

import pytest

from agora.errors import AgoraError
from agora.models.capability import (
    Capability,
    FitResult,
    GiB,
    MiB,
    PriceSchedule,
    Reason,
    add,
    fits,
    format_bytes,
    format_cpu,
    gpu_model_matches,
    location_matches,
    subtract,
)

BOX = Capability(
    cpu_millis=2000,
    memory_bytes=2 * GiB,
    disk_bytes=10 * GiB,
    gpu_count=1,
    gpu_model="NVIDIA A100-SXM4-40GB",
    gpu_vram_bytes=40 * GiB,
    arch="x86_64",
    executors=frozenset({"wasm", "process"}),
    labels={"tier": "silver"},
    location="eu-west-1",
)


def test_a_need_that_fits_has_no_reasons() -> None:
    need = Capability(cpu_millis=2000, memory_bytes=GiB, executors=frozenset({"wasm"}), arch="amd64", location="eu")
    result = fits(need, BOX)
    assert result == FitResult(ok=True, reasons=[])
    assert result.text == "fits"


def test_every_failing_dimension_is_listed_with_exact_text() -> None:
    need = Capability(
        cpu_millis=4500,
        memory_bytes=4 * GiB,
        disk_bytes=20 * GiB,
        gpu_count=2,
        gpu_model="H100",
        gpu_vram_bytes=80 * GiB,
        arch="arm64",
        executors=frozenset({"docker", "firecracker", "wasm"}),
        labels={"tier": "gold", "zone": "a"},
        location="us",
    )
    result = fits(need, BOX)
    assert not result.ok
    assert [r.text for r in result.reasons] == [
        "insufficient_cpu: need 4.5 cores, free 2 cores",
        "insufficient_memory: need 4 GiB, free 2 GiB",
        "insufficient_disk: need 20 GiB, free 10 GiB",
        "insufficient_gpu: need 2 GPUs, free 1 GPU",
        "gpu_model_mismatch: need H100, has NVIDIA A100-SXM4-40GB",
        "insufficient_vram: need 80 GiB per GPU, has 40 GiB",
        "arch_mismatch: need aarch64, has x86_64",
        "executor_unavailable: docker, firecracker",
        "label_mismatch: need tier=gold, has tier=silver; need zone=a, has none",
        "location_mismatch: need us, has eu-west-1",
    ]
    assert result.codes == [
        "insufficient_cpu",
        "insufficient_memory",
        "insufficient_disk",
        "insufficient_gpu",
        "gpu_model_mismatch",
        "insufficient_vram",
        "arch_mismatch",
        "executor_unavailable",
        "label_mismatch",
        "location_mismatch",
    ]
    mem = result.reasons[1]
    assert (mem.need, mem.have, mem.shortfall, mem.dimension) == (4 * GiB, 2 * GiB, 2 * GiB, "memory_bytes")
    assert result.reasons[7].need == ["docker", "firecracker"]


def test_single_reason_texts_from_the_spec() -> None:
    r = fits(Capability(memory_bytes=4 * GiB), Capability(memory_bytes=2 * GiB))
    assert r.text == "insufficient_memory: need 4 GiB, free 2 GiB"
    r = fits(Capability(executors=frozenset({"docker"})), Capability(executors=frozenset({"wasm"})))
    assert r.reasons == [
        Reason("executor_unavailable", "executors", ["docker"], ["wasm"], "executor_unavailable: docker")
    ]


def test_unknown_machine_fields_fail_named_needs() -> None:
    need = Capability(gpu_count=1, gpu_model="T4", arch="x86_64", location="eu")
    assert [r.text for r in fits(need, Capability()).reasons] == [
        "insufficient_gpu: need 1 GPU, free 0 GPUs",
        "gpu_model_mismatch: need T4, has none",
        "arch_mismatch: need x86_64, has unknown",
        "location_mismatch: need eu, has unknown",
    ]


def test_gpu_model_and_vram_only_matter_when_gpus_are_needed() -> None:
    assert fits(Capability(gpu_model="H100", gpu_vram_bytes=80 * GiB), BOX).ok


@pytest.mark.parametrize(
    ("wanted", "model", "ok"),
    [
        ("A100", "NVIDIA A100-SXM4-80GB", True),
        ("a100 80gb", "NVIDIA A100-SXM4-80GB", True),
        ("A10", "NVIDIA A100-SXM4-80GB", False),
        ("RTX 4090", "NVIDIA GeForce RTX 4090", True),
        ("T4", "Tesla T4", True),
        ("T4", None, False),
    ],
)
def test_gpu_model_matching(wanted: str, model: str | None, ok: bool) -> None:
    assert gpu_model_matches(wanted, model) is ok


@pytest.mark.parametrize(
    ("wanted", "have", "ok"),
    [("eu", "eu-west-1", True), ("eu", "EU/paris", True), ("eu", "europa", False), ("eu-west-1", "eu", False)],
)
def test_location_is_hierarchical(wanted: str, have: str, ok: bool) -> None:
    assert location_matches(wanted, have) is ok


def test_units_format_for_people() -> None:
    assert format_bytes(4 * GiB) == "4 GiB"
    assert format_bytes(1536 * MiB) == "1.5 GiB"
    assert format_bytes(512 * MiB) == "512 MiB"
    assert format_bytes(100) == "100 B"
    assert format_cpu(1000) == "1 core"
    assert format_cpu(500) == "0.5 cores"
    assert format_cpu(2250) == "2.25 cores"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cpu_millis": -1}, "cpu_millis"),
        ({"memory_bytes": 1.5}, "memory_bytes"),
        ({"gpu_count": True}, "gpu_count"),
        ({"trust": 1.5}, "trust"),
        ({"trust": float("nan")}, "trust"),
        ({"latency_ms": -3}, "latency_ms"),
        ({"price": -1}, "price"),
        ({"price": "cheap"}, "price"),
        ({"arch": ""}, "arch"),
        ({"executors": "docker"}, "executors"),
        ({"labels": {"": "x"}}, "labels"),
    ],
)
def test_invalid_capabilities_are_rejected_with_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(AgoraError) as e:
        Capability(**kwargs)  # type: ignore[arg-type]
    assert e.value.code == "capability_invalid"
    assert e.value.details["field"] == field


def test_capability_is_immutable_and_hashable() -> None:
    labels = {"a": "1"}
    cap = Capability(labels=labels, executors=frozenset({"wasm"}))
    labels["a"] = "2"
    assert cap.labels["a"] == "1"
    with pytest.raises(TypeError):
        cap.labels["a"] = "3"  # type: ignore[index]
    assert hash(cap) == hash(Capability(labels={"a": "1"}, executors=frozenset({"wasm"})))


def test_dict_round_trip_and_strict_parsing() -> None:
    cap = Capability(
        cpu_millis=1500,
        memory_bytes=GiB,
        gpu_count=1,
        gpu_model="T4",
        arch="arm64",
        executors=frozenset({"wasm", "docker"}),
        labels={"z": "1", "a": "2"},
        price=PriceSchedule(cpu_second=3, gpu_second=100),
        trust=0.5,
        benchmark_score=1000,
    )
    data = cap.to_dict()
    assert data["executors"] == ["docker", "wasm"]
    assert data["arch"] == "aarch64"
    assert data["price"] == {"cpu_second": 3, "memory_gib_second": 0, "gpu_second": 100, "minimum": 0}
    assert Capability.from_dict(data) == cap
    assert Capability.from_dict(Capability(price=7).to_dict()).price == 7
    for bad in ({"cpu": 1}, {"executors": "wasm"}, {"price": {"per_token": 1}}, {"memory_bytes": "1GiB"}):
        with pytest.raises(AgoraError) as e:
            Capability.from_dict(bad)
        assert e.value.code == "capability_invalid"


def test_fit_result_round_trips_as_data() -> None:
    result = fits(Capability(cpu_millis=3000, executors=frozenset({"docker"})), BOX)
    again = FitResult.from_dict(result.to_dict())
    assert again == result
    with pytest.raises(AgoraError) as e:
        FitResult.from_dict({"reasons": [{"code": "x"}]})
    assert e.value.code == "invalid_argument"


def test_price_schedule_cost_is_exact_integer_minor_units() -> None:
    p = PriceSchedule(cpu_second=10, memory_gib_second=2, gpu_second=100, minimum=5)
    need = Capability(cpu_millis=500, memory_bytes=GiB // 2, gpu_count=1)
    assert p.cost(need, 10) == 10 * (5 + 1 + 100)
    assert p.cost(Capability(cpu_millis=1), 1) == 5  # the minimum
    assert PriceSchedule(cpu_second=1).cost(Capability(cpu_millis=1), 1) == 1  # rounded up, never free
    assert Capability(price=3).price_schedule == PriceSchedule(cpu_second=3)
    with pytest.raises(AgoraError):
        p.cost(need, -1)


def test_subtract_and_add_move_only_quantities() -> None:
    need = Capability(cpu_millis=500, memory_bytes=GiB, disk_bytes=GiB, gpu_count=1, executors=frozenset({"wasm"}))
    left = BOX - need
    assert (left.cpu_millis, left.memory_bytes, left.disk_bytes, left.gpu_count) == (1500, GiB, 9 * GiB, 0)
    assert (left.gpu_model, left.gpu_vram_bytes, left.executors, left.location) == (
        BOX.gpu_model,
        BOX.gpu_vram_bytes,
        BOX.executors,
        BOX.location,
    )
    assert left + need == BOX
    assert add(subtract(BOX, need), need) == BOX


def test_subtracting_more_than_free_raises_with_every_reason() -> None:
    need = Capability(cpu_millis=3000, memory_bytes=3 * GiB, executors=frozenset({"docker"}))
    with pytest.raises(AgoraError) as e:
        BOX - need
    assert e.value.code == "insufficient_capacity"
    assert [r["code"] for r in e.value.details["reasons"]] == [
        "insufficient_cpu",
        "insufficient_memory",
        "executor_unavailable",
    ]
    assert e.value.details["reasons"][1]["text"] == "insufficient_memory: need 3 GiB, free 2 GiB"
    assert BOX.cpu_millis == 2000  # unchanged (immutable, but say it)


def test_describe_reads_like_a_sentence() -> None:
    assert BOX.describe() == (
        "2 cores, 2 GiB memory, 10 GiB disk, 1 GPU (NVIDIA A100-SXM4-40GB, 40 GiB), x86_64, "
        "executors: process/wasm, in eu-west-1"
    )
