"""Signed agora RPC over a NATS hub vs raw nats-py request/reply of the same payload, in one run.

    .venv/bin/python bench/rpc.py [--serial 2000] [--parallel 8000] [--inflight 16] [--smoke]

A hub (nats-server) starts on a free loopback port. A server process answers both a raw NATS subject
(echoing the payload) and agora invocations of `/agora/bench/echo`, a protected (granted) command: the
caller cites the server's delegation, so every call checks a UCAN chain and gets a signed receipt.
(Public behaviours such as `/agora/node/ping` refuse proofs, so they cannot measure a granted call.)
`--smoke` runs a handful of calls: the test suite runs it so that this benchmark cannot rot unnoticed.
This process is the client: it measures serial round trips (p50, p99, requests/s) and throughput with
N requests in flight, for raw and for agora, and prints the ratios. Nothing is asserted: it reports.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats

from agora.actor import Actor, CallContext, Runtime, behavior
from agora.codec import encode
from agora.identity import Keypair
from agora.transport import HubConfig, HubProcess, NatsTransport
from agora.ucan import delegate

RAW_SUBJECT = "bench.raw.echo"
ARGS = {"echo": "x" * 64, "n": 1}


class EchoActor(Actor):
    """A protected command (no `public=True`): only a caller holding this node's delegation may call it."""

    name = "bench"

    @behavior("/agora/bench/echo")
    async def echo(self, ctx: CallContext) -> dict[str, object]:
        return dict(ctx.args)


def server_main(url: str, seed: bytes, ready: Any, stop: Any) -> None:
    async def run() -> None:
        kp = Keypair.from_seed(seed)
        nc = await nats.connect(url)

        async def echo(msg: Any) -> None:
            await msg.respond(msg.data)

        await nc.subscribe(RAW_SUBJECT, cb=echo)
        transport = NatsTransport(kp.did, [url])
        await transport.start()
        runtime = Runtime(kp, transport)
        runtime.register(EchoActor())
        await runtime.start()
        ready.set()
        await asyncio.to_thread(stop.wait)
        await transport.close()
        await nc.close()

    asyncio.run(run())


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


async def measure(name: str, call: Any, serial: int, parallel: int, inflight: int, warmup: int = 200) -> dict[str, Any]:
    for _ in range(warmup):
        await call()
    lat = []
    t0 = time.perf_counter()
    for _ in range(serial):
        s = time.perf_counter()
        await call()
        lat.append((time.perf_counter() - s) * 1000)
    serial_s = time.perf_counter() - t0
    sem = asyncio.Semaphore(inflight)

    async def one() -> None:
        async with sem:
            await call()

    t1 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(parallel)))
    par_s = time.perf_counter() - t1
    return {
        "name": name,
        "p50_ms": statistics.median(lat),
        "p99_ms": pct(lat, 99),
        "serial_rps": serial / serial_s,
        "inflight_rps": parallel / par_s,
    }


async def client(url: str, server_did: str, server_key: Keypair, args: argparse.Namespace) -> list[dict[str, Any]]:
    payload = encode(ARGS)
    nc = await nats.connect(url)

    async def raw() -> None:
        await nc.request(RAW_SUBJECT, payload, timeout=5)

    kp = Keypair.generate()
    transport = NatsTransport(kp.did, [url])
    await transport.start()
    runtime = Runtime(kp, transport)
    # a real chain: the server delegates /agora/bench to the client, so every call checks a proof
    dlg = delegate(server_key, aud=kp.did, sub=server_did, cmd="/agora/bench", exp=int(time.time()) + 3600)

    async def agora_call() -> None:
        reply = await runtime.call(server_did, "/agora/bench/echo", ARGS, proofs=[dlg], timeout=5)
        if reply != ARGS:
            raise RuntimeError(f"the echo came back different: {reply!r}")

    n = (args.serial, args.parallel, args.inflight, args.warmup)
    results = [
        await measure("raw nats-py request/reply", raw, *n),
        await measure("agora signed RPC (UCAN + receipt)", agora_call, *n),
    ]
    await transport.close()
    await nc.close()
    return results


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serial", type=int, default=2000)
    ap.add_argument("--parallel", type=int, default=8000)
    ap.add_argument("--inflight", type=int, default=16)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="a handful of calls: checks the benchmark runs")
    args = ap.parse_args()
    if args.smoke:
        args.serial, args.parallel, args.inflight, args.warmup = 5, 10, 4, 2
    home = Path(tempfile.mkdtemp(prefix="agora-bench-"))
    hub = HubProcess(HubConfig(home=home))
    asyncio.run(hub.start())
    server_key = Keypair.generate()
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=server_main, args=(hub.url, server_key.seed, ready, stop), daemon=True)
    proc.start()
    try:
        if not ready.wait(30):
            print("server did not start", file=sys.stderr)
            return 1
        raw, agora = asyncio.run(client(hub.url, server_key.did, server_key, args))
    finally:
        stop.set()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
        asyncio.run(hub.stop())
    if args.json:
        print(json.dumps({"raw": raw, "agora": agora}, indent=2))
        return 0
    print(f"payload {len(encode(ARGS))} bytes; serial n={args.serial}; {args.inflight} in flight n={args.parallel}")
    inflight = f"{args.inflight}-inflight/s"
    print(f"{'':38} {'p50 ms':>8} {'p99 ms':>8} {'serial/s':>10} {inflight:>14}")
    for r in (raw, agora):
        print(f"{r['name']:38} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['serial_rps']:10.0f} {r['inflight_rps']:14.0f}")
    print(
        f"ratio agora/raw: p50 x{agora['p50_ms'] / raw['p50_ms']:.2f}, p99 x{agora['p99_ms'] / raw['p99_ms']:.2f}, "
        f"throughput {agora['inflight_rps'] / raw['inflight_rps']:.2f} of raw"
    )
    print("targets: p50 <= 1.2 ms, >= 3000 RPC/s with 16 in flight")
    return 0


if __name__ == "__main__":
    sys.exit(main())
