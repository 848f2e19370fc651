"""Node start-up time, idle memory and hub start-up, against references measured in the same run.

    .venv/bin/python bench/node.py [--runs 5] [--smoke]

- hub ready: `HubProcess.start()` (config written, nats-server spawned, accepting clients) vs the raw
  nats-server binary started by hand until its port accepts a TCP connection.
- node ready: a node process (`python -m agora.daemon`) from spawn to its ready line (joined the hub, API
  serving) vs a bare `python -c pass` of the same interpreter; `ready_s` is the node's own figure from
  Node.start() (identity, store, self-test, transport, discovery) without interpreter and import time.
- idle RSS of the node process once its start-up work is done (the onboarding benchmark a new node runs
  in the background included), vs the bare interpreter's RSS.
Targets: node ready <= 1 s, idle RSS <= 100 MB, hub ready <= 0.3 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from agora.transport import HubConfig, HubProcess, find_nats_server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raw_nats_ready(home: Path) -> float:
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [find_nats_server(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(home)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                return time.perf_counter() - t0
            except OSError:
                if time.perf_counter() - t0 > 10:
                    raise RuntimeError("raw nats-server did not start") from None
                time.sleep(0.002)
    finally:
        proc.terminate()
        proc.wait(5)


def hub_ready(home: Path) -> float:
    hub = HubProcess(HubConfig(home=home))
    t0 = time.perf_counter()
    asyncio.run(hub.start())
    took = time.perf_counter() - t0
    asyncio.run(hub.stop())
    return took


def node_ready(home: Path, hub_url: str) -> tuple[float, float, int]:
    home.mkdir(parents=True, exist_ok=True)
    out = home / "out"
    t0 = time.perf_counter()
    with open(out, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agora.daemon", "--home", str(home), "--hub-url", hub_url, "--api-port", "0"],
            stdout=fh,
            stderr=subprocess.DEVNULL,
        )
    try:
        while True:
            lines = [json.loads(x) for x in out.read_text().splitlines() if x.startswith("{")]
            ready = [x for x in lines if x.get("event") == "ready"]
            if ready:
                took = time.perf_counter() - t0
                break
            if proc.poll() is not None or time.perf_counter() - t0 > 30:
                raise RuntimeError(f"node did not start: {out.read_text()}")
            time.sleep(0.005)
        # idle: after the start-up work, including the onboarding benchmark a new node runs in the background
        api = ready[0]["api"]
        for _ in range(300):  # bounded: 30 s
            res = httpx.get(f"{api}/node/resources", timeout=5).json()
            if not res.get("benchmark_running"):
                break
            time.sleep(0.1)
        time.sleep(1.0)
        rss = psutil.Process(proc.pid).memory_info().rss
        return took, float(ready[0]["ready_s"]), rss
    finally:
        proc.terminate()
        proc.wait(10)


def bare_python() -> tuple[float, int]:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    took = time.perf_counter() - t0
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    time.sleep(1.0)
    rss = psutil.Process(proc.pid).memory_info().rss
    proc.wait()
    return took, rss


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--smoke", action="store_true", help="one run: checks the benchmark runs")
    args = ap.parse_args()
    if args.smoke:
        args.runs = 1
    root = Path(tempfile.mkdtemp(prefix="agora-bench-node-"))
    raw_hub = [raw_nats_ready(root / f"raw{i}") for i in range(args.runs)]
    agora_hub = [hub_ready(root / f"hub{i}") for i in range(args.runs)]
    hub = HubProcess(HubConfig(home=root / "hub"))
    asyncio.run(hub.start())
    try:
        nodes = [node_ready(root / f"node{i}", hub.url) for i in range(args.runs)]
    finally:
        asyncio.run(hub.stop())
    bare = [bare_python() for _ in range(args.runs)]
    med = statistics.median
    print(f"runs: {args.runs} (medians)")
    print(
        f"hub ready:   agora HubProcess {med(agora_hub) * 1000:7.1f} ms   raw nats-server {med(raw_hub) * 1000:7.1f} ms"
        f"   ratio x{med(agora_hub) / med(raw_hub):.2f}   (target <= 300 ms)"
    )
    spawn, start = med([n[0] for n in nodes]), med([n[1] for n in nodes])
    print(
        f"node ready:  spawn->ready {spawn * 1000:7.1f} ms   Node.start {start * 1000:7.1f} ms"
        f"   bare python start {med([b[0] for b in bare]) * 1000:6.1f} ms   (target <= 1000 ms)"
    )
    rss = med([n[2] for n in nodes]) / 2**20
    print(
        f"idle RSS:    node {rss:7.1f} MiB   bare python {med([b[1] for b in bare]) / 2**20:6.1f} MiB"
        f"   (target <= 100 MB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
