"""The onboarding benchmark, run for real with tiny durations, and stored in a real SQLite store."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from agora.clock import ManualClock
from agora.errors import AgoraError
from agora.models.capability import MiB
from agora.resources.bench import (
    BENCH_VERSION,
    COLLECTION,
    BenchConfig,
    BenchmarkResult,
    load_latest_benchmark,
    run_benchmark,
    save_benchmark,
    usable_cores,
)
from agora.store import SqliteStore

TINY = BenchConfig(
    cpu_seconds=0.05,
    multi_seconds=0.1,
    memory_seconds=0.05,
    memory_buffer_bytes=4 * MiB,
    disk_bytes=2 * MiB,
    ping_count=3,
)
ONE = replace(TINY, workers=1)  # for tests about something else: skips starting worker processes


async def test_benchmark_produces_positive_figures_and_cleans_up(tmp_path: Path) -> None:
    rtts = iter([0.004, 0.002, 0.003])
    calls = 0

    async def ping() -> float:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        return next(rtts)

    result = await run_benchmark(tmp_path, ping=ping, clock=ManualClock(1_700_000_000.0), config=TINY)
    assert result.version == BENCH_VERSION
    assert result.timestamp == 1_700_000_000.0
    assert result.duration_s > 0
    assert result.cpu_single_ops > 0 and result.cpu_multi_ops > 0
    assert result.cpu_workers == usable_cores()
    assert result.memory_gb_s > 0
    assert result.disk_write_mb_s > 0 and result.disk_read_mb_s > 0
    assert calls == 3 and result.hub_rtt_ms == pytest.approx(3.0)
    assert result.score > 0
    assert os.listdir(tmp_path) == []  # the disk test file is gone
    data = json.loads(json.dumps(result.to_dict()))
    assert data["score"] == result.score
    assert BenchmarkResult.from_dict(data) == result


async def test_explicit_worker_count_and_no_ping(tmp_path: Path) -> None:
    result = await run_benchmark(tmp_path, config=replace(TINY, workers=2))
    assert result.cpu_workers == 2 and result.cpu_multi_ops > 0
    assert result.hub_rtt_ms is None and result.notes == []
    one = await run_benchmark(tmp_path, config=ONE)
    assert one.cpu_multi_ops == one.cpu_single_ops
    assert one.notes == ["cpu_multi: one usable core; equal to cpu_single"]


async def test_a_failing_hub_is_noted_not_fatal(tmp_path: Path) -> None:
    async def down() -> float:
        raise AgoraError("hub_unreachable", "connection refused")

    result = await run_benchmark(tmp_path, ping=down, config=ONE)
    assert result.hub_rtt_ms is None
    assert result.notes[-1] == "hub_rtt: hub_unreachable: connection refused"

    async def nonsense() -> float:
        return -1.0

    result = await run_benchmark(tmp_path, ping=nonsense, config=ONE)
    assert result.hub_rtt_ms is None and result.notes[-1] == "hub_rtt: ping returned -1.0, not seconds"
    assert os.listdir(tmp_path) == []


async def test_bad_home_and_config(tmp_path: Path) -> None:
    with pytest.raises(AgoraError) as e:
        await run_benchmark(tmp_path / "missing", config=ONE)
    assert e.value.code == "config_invalid"
    for bad in ({"cpu_seconds": 0}, {"disk_bytes": 0}, {"workers": 0}, {"ping_count": 0}, {"memory_seconds": -1}):
        with pytest.raises(AgoraError) as e:
            BenchConfig(**bad)  # type: ignore[arg-type]
        assert e.value.code == "invalid_argument"


def test_score_formula() -> None:
    ref = BenchmarkResult(BENCH_VERSION, 0.0, 1.0, 3500.0, 6000.0, 2, 8.0, 900.0, 900.0)
    assert ref.score == 1000.0
    doubled = BenchmarkResult(BENCH_VERSION, 0.0, 1.0, 7000.0, 12000.0, 2, 16.0, 1800.0, 1800.0)
    assert doubled.score == 2000.0
    assert BenchmarkResult(BENCH_VERSION, 0.0, 1.0, 3500.0, 0.0, 2, 8.0, 900.0, 900.0).score == 0.0
    with pytest.raises(AgoraError) as e:
        BenchmarkResult.from_dict({**ref.to_dict(), "version": 99})
    assert e.value.code == "invalid_argument"
    with pytest.raises(AgoraError):
        BenchmarkResult.from_dict({"version": BENCH_VERSION})


async def test_save_and_load_latest_in_sqlite(tmp_path: Path) -> None:
    clock = ManualClock(1_700_000_000.0)
    store = await SqliteStore(tmp_path / "node.db", clock).open()
    try:
        assert await load_latest_benchmark(store) is None
        first = await run_benchmark(tmp_path, clock=clock, config=ONE)
        await save_benchmark(store, first)
        clock.advance(60)
        second = await run_benchmark(tmp_path, clock=clock, config=ONE)
        await save_benchmark(store, second)
        assert await load_latest_benchmark(store) == second
        history = await store.query(COLLECTION, order_by="timestamp")
        assert [d["timestamp"] for d in history] == [first.timestamp, second.timestamp, second.timestamp]
        await store.put(COLLECTION, "latest", {**second.to_dict(), "version": BENCH_VERSION + 1})
        assert await load_latest_benchmark(store) is None  # another version: run it again
    finally:
        await store.close()


async def test_disk_file_is_removed_when_the_disk_step_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)  # a full disk, injected at the one call that reports it
    with pytest.raises(AgoraError) as e:
        await run_benchmark(tmp_path, config=ONE)
    assert e.value.code == "benchmark_failed" and "No space left on device" in e.value.message
    assert os.listdir(tmp_path) == []
