"""A trivial wasm job on a remote devnet node through the API path of `agora job run`, vs the raw executor.

    .venv/bin/python bench/remote_job.py [--runs 200] [--warmup 10] [--smoke]

A devnet of a hub and 2 nodes starts on loopback (onboarding benchmark off, so it does not compete).
node-1 grants node-2; then, from node-2's API, each run submits the same one-task wasm job for node-1
(POST /jobs) and waits for its end (GET /jobs/{id}?wait=): parse, read and hash the module, the signed
/agora/alloc/start over the hub with the delegation, staging, the wasm run, output collection, the
signed usage receipt, status long-poll, receipt verification, output fetch and hash check, and every
state change persisted on both nodes. The same module is then run through `WasmExecutor.run` in this
process (compiled-module cache warm), which is the floor. Prints p50/p99 of both and their ratio.
Target: p50 <= 30 ms for the remote job. Nothing is asserted: it reports.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import wasmtime

from agora.client import AgoraClient
from agora.devnet import down, up
from agora.executors import ExecRequest, Limits
from agora.executors.wasm import WasmExecutor

WAT = r"""
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "ok\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 3))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def spec(module: Path) -> dict[str, Any]:
    return {
        "name": "bench",
        "tasks": [
            {
                "name": "t",
                "engine": "wasm",
                "module": str(module),
                "resources": {"cpu": "100m", "memory": "16Mi", "disk": "1Mi"},
                "timeout": 10,
            }
        ],
    }


def remote(runs: int, warmup: int, root: Path, module: Path) -> list[float]:
    os.environ["AGORA_BENCHMARK"] = "off"  # the daemons inherit it
    state = up(2, root / "devnet")
    try:
        one, two = state["nodes"]
        with AgoraClient(one["api"]) as c1, AgoraClient(two["api"]) as c2:
            grant = c1.grant(two["did"], ttl_s=3600)
            if not grant["delivered"]:
                c2.add_delegation(grant["token"])
            body = spec(module)
            samples: list[float] = []
            for i in range(warmup + runs):
                t0 = time.perf_counter()
                job = c2.submit_job(body, node=one["did"])
                doc = c2.job(job["id"], wait=20)
                dt = (time.perf_counter() - t0) * 1000
                if doc["state"] != "completed":
                    raise SystemExit(f"run {i}: job ended {doc['state']}: {doc.get('error')}")
                if i >= warmup:
                    samples.append(dt)
            return samples
    finally:
        down(root / "devnet")


async def raw(runs: int, warmup: int, root: Path, module: Path) -> list[float]:
    ex = WasmExecutor(root / "raw-cache")
    samples: list[float] = []
    for i in range(warmup + runs):
        work = root / "raw" / str(i)
        (work / "inputs").mkdir(parents=True)
        (work / "outputs").mkdir()
        req = ExecRequest(
            task_id=f"raw-{i}",
            engine="wasm",
            work_dir=work,
            module=str(module),
            limits=Limits(memory_bytes=16 << 20, cpu_millis=100, disk_bytes=1 << 20, timeout_s=10),
        )
        t0 = time.perf_counter()
        result = await ex.run(req)
        dt = (time.perf_counter() - t0) * 1000
        if not result.ok:
            raise SystemExit(f"raw run {i} failed: {result.reason} {result.message}")
        if i >= warmup:
            samples.append(dt)
    return samples


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--smoke", action="store_true", help="a few runs: checks the benchmark runs")
    ns = p.parse_args(argv)
    if ns.smoke:
        ns.runs, ns.warmup = 3, 1
    with tempfile.TemporaryDirectory(prefix="agora-bench-job-") as tmp:
        root = Path(tmp)
        module = root / "ok.wasm"
        module.write_bytes(wasmtime.wat2wasm(WAT))
        t0 = time.perf_counter()
        job_ms = remote(ns.runs, ns.warmup, root, module)
        wall = time.perf_counter() - t0
        raw_ms = asyncio.run(raw(ns.runs, ns.warmup, root, module))
    rows = [("agora remote job (API)", job_ms), ("raw WasmExecutor.run", raw_ms)]
    print(f"{'path':<26} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, xs in rows:
        print(f"{name:<26} {pct(xs, 0.5):>8.2f} {pct(xs, 0.99):>8.2f} {statistics.fmean(xs):>8.2f}")
    ratio = pct(job_ms, 0.5) / max(pct(raw_ms, 0.5), 1e-9)
    print(f"p50 ratio remote/raw: {ratio:.1f}x; added at p50: {pct(job_ms, 0.5) - pct(raw_ms, 0.5):.2f} ms")
    verdict = "met" if pct(job_ms, 0.5) <= 30 else "NOT met"
    print(f"target p50 <= 30 ms: {verdict} ({ns.runs} runs; the devnet part took {wall:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
