"""A trivial wasm job placed by the market vs the same job sent with `--node` on a grant, in the same run.

    .venv/bin/python bench/market_job.py [--runs 100] [--warmup 5] [--smoke]

A devnet of a hub and 3 selling nodes starts on loopback (onboarding benchmark off, so it does not
compete), and a 4th node that sells nothing joins as the requester. From its API, each market run submits
a one-task wasm job with no node (POST /jobs) and waits for its end (GET /jobs/{id}?wait=): the index read
and matching over the 3 ads, signed bid requests to the 3 providers and their bids, the award and the
provider's commit, the contract's escrow locked at the hub's ledger (an RPC to the hub: every node settles
there by default), the start on the bid's one-job delegation, the wasm run, the signed usage receipt and
its verification, the receipt countersigned and the escrow released at the hub (a second RPC), every state
persisted. Each direct run sends the same job with `--node node-1` on a
grant node-1 gave the requester (no index, no bids). The two kinds alternate run by run, so both see the
same machine load. Prints p50/p99 of both, their ratio, the bids seen per market placement (from
`job why`), the time from submitted to running by each job's own history (the placement, without the
task and the following), and the escrow's two hub RPCs by each market contract's timeline (lock: created ->
escrow_locked; release: delivered -> countersigned, which is recorded once the hub accepted the release).
Nothing about speed is asserted: it reports; a market contract that did not end `escrow_released` stops it
(the bench would no longer measure the path that pays).
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

import remote_job  # the same module, spec and percentile as the remote job benchmark (bench/ is on sys.path)
from agora.client import AgoraClient
from agora.devnet import add_node, down, up
from remote_job import WAT, pct


def spec(module: Path) -> dict[str, Any]:
    return remote_job.spec(module) | {"name": "bench-market"}


def _one(client: AgoraClient, body: dict[str, Any], node: str | None, i: int) -> tuple[float, float, str]:
    """One job end to end: (wall ms, ms from submitted to running by the job's own history, job id)."""
    t0 = time.perf_counter()
    job = client.submit_job(body, node=node)
    doc = client.job(job["id"], wait=20)
    dt = (time.perf_counter() - t0) * 1000
    if doc["state"] != "completed":
        kind = "market" if node is None else "direct"
        raise SystemExit(f"{kind} run {i}: job ended {doc['state']}: {doc.get('error')}")
    at = {h["state"]: h["at"] for h in doc["history"]}
    return dt, (at["running"] - at["submitted"]) * 1000, str(job["id"])


Samples = dict[str, list[float]]


def escrow_ms(client: AgoraClient, job_id: str) -> tuple[float, float]:
    """(lock ms, release ms) of a market job's contract, from its timeline; it must have paid."""
    contracts = client.contracts(job_id=job_id)
    if len(contracts) != 1 or contracts[0]["state"] != "escrow_released":
        states = [c["state"] for c in contracts]
        raise SystemExit(f"market job {job_id}: contract(s) {states}, not one escrow_released: settlement bypassed?")
    at = {e["event"]: e["at"] for e in client.contract(contracts[0]["contract_id"])["timeline"]}
    return (at["escrow_locked"] - at["created"]) * 1000, (at["countersigned"] - at["delivered"]) * 1000


def measure(runs: int, warmup: int, root: Path, module: Path) -> tuple[Samples, list[int]]:
    os.environ["AGORA_BENCHMARK"] = "off"  # the daemons inherit it
    state = up(3, root / "devnet")
    try:
        two = state["nodes"][0]  # the direct runs' provider, one of the market's three
        one = add_node(root / "devnet", sell=False)  # the requester: not a provider itself
        with AgoraClient(one["api"]) as c1, AgoraClient(two["api"]) as c2:
            deadline = time.monotonic() + 30
            while len(c1.market()["providers"]) < 3:  # every provider's ad in the index before the first run
                if time.monotonic() > deadline:
                    raise SystemExit("the index did not list the 3 providers within 30 s")
                time.sleep(0.05)
            grant = c2.grant(one["did"], ttl_s=3600)
            if not grant["delivered"]:
                c1.add_delegation(grant["token"])
            body = spec(module)
            out: Samples = {"market": [], "direct": [], "market_start": [], "direct_start": []}
            market_ids: list[str] = []
            for i in range(warmup + runs):
                m, m_start, job_id = _one(c1, body, None, i)
                d, d_start, _ = _one(c1, body, two["did"], i)
                if i >= warmup:
                    out["market"].append(m)
                    out["direct"].append(d)
                    out["market_start"].append(m_start)
                    out["direct_start"].append(d_start)
                    market_ids.append(job_id)
            bids = []
            for job_id in market_ids[:20]:  # bids per market placement, read outside the timing
                last = next(iter(c1.job_why(job_id)["units"].values()))["last"] or {}
                bids.append(len(last.get("bids", [])))
            out["escrow_lock"], out["escrow_release"] = [], []
            for job_id in market_ids:  # every market run paid through the hub's escrow (outside the timing)
                lock, release = escrow_ms(c1, job_id)
                out["escrow_lock"].append(lock)
                out["escrow_release"].append(release)
            return out, bids
    finally:
        down(root / "devnet")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--smoke", action="store_true", help="a few runs: checks the benchmark runs")
    ns = p.parse_args(argv)
    if ns.smoke:
        ns.runs, ns.warmup = 3, 1
    with tempfile.TemporaryDirectory(prefix="agora-bench-market-") as tmp:
        root = Path(tmp)
        module = root / "ok.wasm"
        module.write_bytes(wasmtime.wat2wasm(WAT))
        t0 = time.perf_counter()
        samples, bids = measure(ns.runs, ns.warmup, root, module)
        wall = time.perf_counter() - t0
    rows = [
        ("market (no --node)", samples["market"]),
        ("direct (--node, grant)", samples["direct"]),
        ("market: submit->running", samples["market_start"]),
        ("direct: submit->running", samples["direct_start"]),
        ("market: escrow lock", samples["escrow_lock"]),
        ("market: escrow release", samples["escrow_release"]),
    ]
    print(f"{'path':<24} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, xs in rows:
        print(f"{name:<24} {pct(xs, 0.5):>8.2f} {pct(xs, 0.99):>8.2f} {statistics.fmean(xs):>8.2f}")
    market, direct = samples["market"], samples["direct"]
    ratio = pct(market, 0.5) / max(pct(direct, 0.5), 1e-9)
    print(
        f"p50 ratio market/direct: {ratio:.2f}x (p99 {pct(market, 0.99) / max(pct(direct, 0.99), 1e-9):.2f}x); "
        f"placement adds {pct(samples['market_start'], 0.5) - pct(samples['direct_start'], 0.5):.2f} ms at p50 "
        "before the task runs"
    )
    seen = f"{min(bids)}-{max(bids)}" if bids else "?"
    print(f"bids per market placement: {seen} (of 3 providers); {ns.runs} runs of each, {wall:.1f}s in all")
    escrow = pct(samples["escrow_lock"], 0.5) + pct(samples["escrow_release"], 0.5)
    print(
        f"escrow at the hub (lock + release, every market run escrow_released): {escrow:.2f} ms at p50, "
        f"{escrow / max(pct(market, 0.5), 1e-9):.0%} of a market run"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
