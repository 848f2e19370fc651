"""Where a remote job's time goes, phase by phase, on both sides: the tool behind docs/performance.md's
"The ~200 ms step".

    .venv/bin/python bench/job_phases.py [--runs 50] [--warmup 5] [--smoke]

The same devnet and job as `bench/remote_job.py` (a hub and 2 nodes, node-1 grants node-2, a one-task wasm
job from node-2's API for node-1, waited for with `GET /jobs/{id}?wait=`). For every run it reads the
requester's job record (the job's and the unit's moves, each with its time) and the provider's allocation
record (`GET /allocations`: accepted, staging, running, the end, each with its time), and splits the run's
wall time into phases on one clock (every process is on this machine):

    submit     the client's POST until the job record's `submitted`
    start      `submitted` until the provider accepted the allocation
    staging    accepted -> running on the provider (work dir, module, executor start)
    run        running -> the end on the provider (the task, output collection, the signed receipt)
    follow     the provider's end until the requester's unit is `completed` (the watch reply with the end,
               receipt check, outputs fetched)
    finish     the unit's `completed` until the client has the job's end (the job's own move, the API wait)

It prints each phase's p50 and p90, then the runs slower than `--slow-ms` (default 150) against the others:
the phase that carries a step is the one whose median differs. Nothing is asserted: it reports.
"""

from __future__ import annotations

import argparse
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
from remote_job import WAT, pct, spec  # the remote job benchmark's module and job (bench/ is on sys.path)

PHASES = ("submit", "start", "staging", "run", "follow", "finish")


def _at(history: list[dict[str, Any]], state: str) -> float:
    return float(next(h["at"] for h in history if h["state"] == state))


def phases(t0: float, t1: float, doc: dict[str, Any], alloc: dict[str, Any]) -> dict[str, float]:
    [unit] = doc["units"]
    prov = alloc["history"]
    ended = float(prov[-1]["at"])
    marks = [
        t0,
        _at(doc["history"], "submitted"),
        _at(prov, "accepted"),
        _at(prov, "running"),
        ended,
        _at(unit["history"], "completed"),
        t1,
    ]
    return {name: (b - a) * 1000 for name, a, b in zip(PHASES, marks, marks[1:], strict=False)}


def measure(runs: int, warmup: int, root: Path, module: Path) -> list[dict[str, float]]:
    os.environ["AGORA_BENCHMARK"] = "off"  # the daemons inherit it
    state = up(2, root / "devnet")
    try:
        one, two = state["nodes"]
        with AgoraClient(one["api"]) as c1, AgoraClient(two["api"]) as c2:
            grant = c1.grant(two["did"], ttl_s=3600)
            if not grant["delivered"]:
                c2.add_delegation(grant["token"])
            body = spec(module)
            out: list[dict[str, float]] = []
            for i in range(warmup + runs):
                t0 = time.time()
                job = c2.submit_job(body, node=one["did"])
                doc = c2.job(job["id"], wait=20)
                t1 = time.time()
                if doc["state"] != "completed":
                    raise SystemExit(f"run {i}: job ended {doc['state']}: {doc.get('error')}")
                alloc_id = doc["units"][0]["alloc_id"]
                [alloc] = [a for a in c1.allocations(limit=5) if a["alloc_id"] == alloc_id]
                if i >= warmup:
                    out.append({"total": (t1 - t0) * 1000, **phases(t0, t1, doc, alloc)})
            return out
    finally:
        down(root / "devnet")


def report(rows: list[dict[str, float]], slow_ms: float) -> None:
    print(
        f"{len(rows)} runs; total p50 {pct([r['total'] for r in rows], 0.5):.1f} ms, "
        f"p90 {pct([r['total'] for r in rows], 0.9):.1f} ms"
    )
    print(f"{'phase':<9} {'p50 ms':>8} {'p90 ms':>8}")
    for name in PHASES:
        xs = [r[name] for r in rows]
        print(f"{name:<9} {pct(xs, 0.5):>8.1f} {pct(xs, 0.9):>8.1f}")
    slow = [r for r in rows if r["total"] > slow_ms]
    fast = [r for r in rows if r["total"] <= slow_ms]
    print(f"\n{len(slow)} runs over {slow_ms:g} ms, {len(fast)} under; median of each phase:")
    print(f"{'phase':<9} {'slow':>8} {'fast':>8}")
    for name in PHASES:
        s = statistics.median([r[name] for r in slow]) if slow else float("nan")
        f = statistics.median([r[name] for r in fast]) if fast else float("nan")
        print(f"{name:<9} {s:>8.1f} {f:>8.1f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--slow-ms", type=float, default=150.0)
    p.add_argument("--smoke", action="store_true", help="a few runs: checks the tool runs")
    ns = p.parse_args(argv)
    if ns.smoke:
        ns.runs, ns.warmup = 3, 1
    with tempfile.TemporaryDirectory(prefix="agora-bench-phases-") as tmp:
        root = Path(tmp)
        module = root / "ok.wasm"
        module.write_bytes(wasmtime.wat2wasm(WAT))
        rows = measure(ns.runs, ns.warmup, root, module)
    report(rows, ns.slow_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
