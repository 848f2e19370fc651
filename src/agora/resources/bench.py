"""A short, repeatable self-benchmark run at onboarding and on demand (`agora bench`).

Each figure is a fixed unit of work repeated for a configurable time (default total about 3 s on a
2-core box), reported as a rate, so a shorter run measures the same thing with more noise:

- cpu_single_ops: units/s of `_cpu_unit` (sha256 over a fixed 16 KiB buffer, 4 times, plus a tight
  pure-Python integer loop: one C-bound and one interpreter-bound part, as real tasks mix both);
- cpu_multi_ops: the sum of the same rate over N worker processes started together (N = usable cores);
- memory_gb_s: bytes per second copied between two large buffers through memoryviews (numpy is not a
  dependency; a memoryview slice assignment is a plain memcpy);
- disk_write_mb_s / disk_read_mb_s: a temp file in the node's home, written then fsync'ed, then read
  back after asking the kernel to drop it from the page cache (removed afterwards, whatever happens);
- hub_rtt_ms: median of a few round trips through the caller's `ping` (None when not given).

`score` is a weighted geometric mean of the figures relative to `REFERENCE` (a modest 2-core cloud VM
scores about 1000): score = 1000 * prod((figure / reference) ** weight). A geometric mean keeps one
outstanding figure from hiding a weak one, and doubling any figure multiplies the score by the same
factor whatever its units. Hub latency is not in the score: it depends on the hub, not the machine.

Blocking work runs in threads (`asyncio.to_thread`) so the node's event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import multiprocessing
import os
import statistics
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agora.clock import SYSTEM_CLOCK, Clock
from agora.errors import AgoraError
from agora.models.capability import MiB

BENCH_VERSION = 1
COLLECTION = "benchmarks"
REFERENCE = {"cpu_single_ops": 3500.0, "cpu_multi_ops": 6000.0, "memory_gb_s": 8.0, "disk_mb_s": 900.0}
WEIGHTS = {"cpu_single_ops": 0.3, "cpu_multi_ops": 0.4, "memory_gb_s": 0.15, "disk_mb_s": 0.15}

_BUFFER = bytes(range(256)) * 64  # 16 KiB, the same on every machine
_INT_LOOP = 2000


@dataclass(frozen=True)
class BenchConfig:
    cpu_seconds: float = 0.5
    multi_seconds: float = 0.75
    memory_seconds: float = 0.4
    memory_buffer_bytes: int = 64 * MiB
    disk_bytes: int = 32 * MiB
    ping_count: int = 5
    ping_timeout_s: float = 5.0
    workers: int | None = None  # None: usable cores (affinity)
    max_units: int = 10_000_000  # hard bound on every loop, whatever the clock does

    def __post_init__(self) -> None:
        for name in ("cpu_seconds", "multi_seconds", "memory_seconds", "ping_timeout_s"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
                raise AgoraError("invalid_argument", f"bench {name} must be a positive number, got {v!r}")
        for name in ("memory_buffer_bytes", "disk_bytes", "max_units"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise AgoraError("invalid_argument", f"bench {name} must be a positive integer")
        if not isinstance(self.ping_count, int) or self.ping_count < 1:
            raise AgoraError("invalid_argument", "bench ping_count must be at least 1")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            raise AgoraError("invalid_argument", "bench workers must be at least 1")


@dataclass(frozen=True)
class BenchmarkResult:
    version: int
    timestamp: float
    duration_s: float
    cpu_single_ops: float
    cpu_multi_ops: float
    cpu_workers: int
    memory_gb_s: float
    disk_write_mb_s: float
    disk_read_mb_s: float
    hub_rtt_ms: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        disk = math.sqrt(max(self.disk_write_mb_s, 0.0) * max(self.disk_read_mb_s, 0.0))
        figures = {
            "cpu_single_ops": self.cpu_single_ops,
            "cpu_multi_ops": self.cpu_multi_ops,
            "memory_gb_s": self.memory_gb_s,
            "disk_mb_s": disk,
        }
        if any(v <= 0 for v in figures.values()):
            return 0.0
        log = sum(WEIGHTS[k] * math.log(v / REFERENCE[k]) for k, v in figures.items())
        return round(1000.0 * math.exp(log), 3)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["score"] = self.score
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchmarkResult:
        try:
            version = data["version"]
            if version != BENCH_VERSION:
                raise AgoraError(
                    "invalid_argument", f"benchmark version {version!r} is not {BENCH_VERSION}; run it again"
                )
            floats = ("timestamp", "duration_s", "cpu_single_ops", "cpu_multi_ops", "memory_gb_s")
            values: dict[str, Any] = {k: float(data[k]) for k in (*floats, "disk_write_mb_s", "disk_read_mb_s")}
            rtt = data.get("hub_rtt_ms")
            return cls(
                version=BENCH_VERSION,
                cpu_workers=int(data["cpu_workers"]),
                hub_rtt_ms=None if rtt is None else float(rtt),
                notes=[str(n) for n in data.get("notes", [])],
                **values,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise AgoraError("invalid_argument", f"malformed benchmark result: {e!r}") from None


def _cpu_unit() -> int:
    digest = _BUFFER
    for _ in range(4):
        digest = hashlib.sha256(_BUFFER + digest[:32]).digest()
    acc = 0
    for i in range(_INT_LOOP):
        acc = (acc * 31 + i) & 0xFFFFFFFF
    return acc ^ digest[0]


def _cpu_work(seconds: float, max_units: int) -> tuple[int, float]:
    """(units done, seconds taken): at least one batch, then until `seconds` passed or `max_units`."""
    start = time.perf_counter()
    units = 0
    while True:
        for _ in range(8):
            _cpu_unit()
        units += 8
        elapsed = time.perf_counter() - start
        if elapsed >= seconds or units >= max_units:
            return units, elapsed


_barrier: Any = None


def _init_worker(barrier: Any) -> None:
    global _barrier
    _barrier = barrier


def _multi_worker(seconds: float, max_units: int) -> tuple[int, float]:
    """Wait for every worker to be up (process start-up is slow and uneven), then measure together."""
    if _barrier is not None:
        try:
            _barrier.wait(timeout=30.0)
        except threading.BrokenBarrierError:
            pass  # measure anyway; the overlap is only less exact
    return _cpu_work(seconds, max_units)


def _cpu_multi(workers: int, seconds: float, max_units: int) -> float:
    ctx = multiprocessing.get_context("spawn")  # fork is unsafe in a process that runs threads
    barrier = ctx.Barrier(workers)
    try:
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(barrier,)) as pool:
            futures = [pool.submit(_multi_worker, seconds, max_units) for _ in range(workers)]
            results = [f.result(timeout=60.0 + seconds) for f in futures]
    except (BrokenProcessPool, TimeoutError, OSError) as e:
        raise AgoraError("benchmark_failed", f"multi-core benchmark with {workers} processes failed: {e!r}") from None
    return sum(units / elapsed for units, elapsed in results)


def _memory_bandwidth(size: int, seconds: float, max_rounds: int) -> float:
    src = bytearray(_BUFFER * (size // len(_BUFFER) + 1))[:size]
    dst = bytearray(size)
    s, d = memoryview(src), memoryview(dst)
    d[:] = s  # touch every page once before timing
    copied, start = 0, time.perf_counter()
    while True:
        d[:] = s
        copied += size
        elapsed = time.perf_counter() - start
        if elapsed >= seconds or copied // size >= max_rounds:
            return copied / elapsed / 1e9


def _disk_throughput(home: Path, size: int) -> tuple[float, float]:
    """(write MB/s including fsync, read MB/s); the temp file is removed even when something fails."""
    path = home / f".agora-bench-{uuid.uuid4().hex}.tmp"
    chunk = (_BUFFER * (MiB // len(_BUFFER)))[:MiB]
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            start = time.perf_counter()
            written = 0
            while written < size:
                written += os.write(fd, chunk[: min(MiB, size - written)])
            os.fsync(fd)
            write_s = time.perf_counter() - start
        finally:
            os.close(fd)
        fd = os.open(path, os.O_RDONLY)
        try:
            if hasattr(os, "posix_fadvise"):  # otherwise the read measures the page cache
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            start = time.perf_counter()
            read = 0
            while data := os.read(fd, MiB):
                read += len(data)
            read_s = time.perf_counter() - start
        finally:
            os.close(fd)
    except OSError as e:
        raise AgoraError("benchmark_failed", f"disk benchmark in {home} failed: {e}") from None
    finally:
        path.unlink(missing_ok=True)
    return size / 1e6 / max(write_s, 1e-9), read / 1e6 / max(read_s, 1e-9)


async def _hub_rtt(ping: Callable[[], Awaitable[float]], config: BenchConfig, notes: list[str]) -> float | None:
    samples: list[float] = []
    for _ in range(config.ping_count):
        try:
            rtt = await asyncio.wait_for(ping(), timeout=config.ping_timeout_s)
        except (AgoraError, OSError, TimeoutError) as e:
            notes.append(f"hub_rtt: {e!s}" if str(e) else f"hub_rtt: {type(e).__name__}")
            return None
        if not isinstance(rtt, int | float) or not math.isfinite(rtt) or rtt < 0:
            notes.append(f"hub_rtt: ping returned {rtt!r}, not seconds")
            return None
        samples.append(float(rtt) * 1000.0)
    return statistics.median(samples)


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


async def run_benchmark(
    home: Path,
    *,
    ping: Callable[[], Awaitable[float]] | None = None,
    clock: Clock = SYSTEM_CLOCK,
    config: BenchConfig | None = None,
) -> BenchmarkResult:
    """Run every step one after the other (so they do not disturb each other). `ping` does one round
    trip to the hub and returns its duration in seconds."""
    cfg = config or BenchConfig()
    if not await asyncio.to_thread(home.is_dir):
        raise AgoraError("config_invalid", f"node home {home} does not exist or is not a directory")
    notes: list[str] = []
    started = time.perf_counter()
    units, elapsed = await asyncio.to_thread(_cpu_work, cfg.cpu_seconds, cfg.max_units)
    single = units / elapsed
    workers = cfg.workers or usable_cores()
    if workers == 1:
        multi = single
        notes.append("cpu_multi: one usable core; equal to cpu_single")
    else:
        multi = await asyncio.to_thread(_cpu_multi, workers, cfg.multi_seconds, cfg.max_units)
    memory = await asyncio.to_thread(_memory_bandwidth, cfg.memory_buffer_bytes, cfg.memory_seconds, cfg.max_units)
    disk_write, disk_read = await asyncio.to_thread(_disk_throughput, home, cfg.disk_bytes)
    rtt = await _hub_rtt(ping, cfg, notes) if ping is not None else None
    return BenchmarkResult(
        version=BENCH_VERSION,
        timestamp=clock.now(),
        duration_s=time.perf_counter() - started,
        cpu_single_ops=single,
        cpu_multi_ops=multi,
        cpu_workers=workers,
        memory_gb_s=memory,
        disk_write_mb_s=disk_write,
        disk_read_mb_s=disk_read,
        hub_rtt_ms=rtt,
        notes=notes,
    )


class DocStore(Protocol):
    """The part of `agora.store.Store` the benchmark needs (any Store implementation satisfies it)."""

    async def put(self, collection: str, id: str, doc: dict[str, Any]) -> Any: ...

    async def get(self, collection: str, id: str) -> dict[str, Any] | None: ...


async def save_benchmark(store: DocStore, result: BenchmarkResult) -> None:
    """Keep every run (id = millisecond timestamp, so history sorts by id) and the latest under "latest"."""
    doc = result.to_dict()
    await store.put(COLLECTION, f"{round(result.timestamp * 1000):015d}", doc)
    await store.put(COLLECTION, "latest", doc)


async def load_latest_benchmark(store: DocStore) -> BenchmarkResult | None:
    """The last saved run, or None when there is none or it came from another benchmark version
    (figures of different versions do not compare, so the caller should run it again)."""
    doc = await store.get(COLLECTION, "latest")
    if doc is None or doc.get("version") != BENCH_VERSION:
        return None
    return BenchmarkResult.from_dict(doc)


__all__ = [
    "BENCH_VERSION",
    "COLLECTION",
    "REFERENCE",
    "WEIGHTS",
    "BenchConfig",
    "BenchmarkResult",
    "DocStore",
    "load_latest_benchmark",
    "run_benchmark",
    "save_benchmark",
    "usable_cores",
]
