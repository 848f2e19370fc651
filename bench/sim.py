"""Simulated placements per second, wall time and peak memory of the simulator, and what the bounded
candidate sample costs in placement quality against a full scan, in one run.

    .venv/bin/python bench/sim.py            # 1,000 providers x 10,000 jobs and 10,000 x 100,000
    .venv/bin/python bench/sim.py --smoke    # 100 x 1,000 (the test suite runs this)
    .venv/bin/python bench/sim.py --markets  # only the shipped inference and federated scenarios

Each size runs in its own process (peak memory is that process's max RSS). A job is placed by the real
code (match on the sampled candidates, answer/choose_bid, a reservation, an escrow lock; then a release
or a refund): "placements/s" is placements over the wall time of the whole run, ledger and trust included.
Quality: the same world with `matching.sample` = 32 (the default) and 0 (every provider with enough free
cores goes to the matcher): mean price per core-hour paid, p90 first-placement latency, and candidates scored
per placement. The issue's target: 10,000 x 100,000 within 5 minutes on a 2-core machine.

Then the inference-routing and federated-learning scenarios as shipped (`examples/scenarios/inference.yaml`,
`federated.yaml`; `--smoke`: their first 30 minutes / 2 hours), each in its own process: inference requests
(each one: signed quote, run, signed metering record verified, escrow locked and released) and training
updates (each one: escrow checked, two signed receipts, checks, a release) per second of wall time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HOURS = 6


def scenario(providers: int, jobs: int, sample: int) -> dict[str, Any]:
    return {
        "name": f"bench-{providers}x{jobs}",
        "seed": 1,
        "duration": f"{HOURS}h",
        "sample_every": "1h",
        "providers": {"count": providers, "price": {"uniform": [1, 10]}},
        "requesters": {
            "count": max(10, providers // 20),
            "arrivals": {"process": "poisson", "rate_per_hour": jobs / HOURS},
        },
        "jobs": {"duration": {"exponential": 600, "min": 10, "max": 3600}, "deadline": "1h"},
        "matching": {"sample": sample, "retry_batch": 50},
    }


def one(providers: int, jobs: int, sample: int) -> dict[str, Any]:
    from agora.sim import parse, simulate

    t0 = time.perf_counter()
    doc = simulate(parse(scenario(providers, jobs, sample)))
    wall = time.perf_counter() - t0
    m = {k: v["value"] for k, v in doc["metrics"].items()}
    return {
        "providers": providers,
        "jobs": m["jobs_submitted"],
        "sample": sample,
        "placements": m["placements"],
        "wall_s": round(wall, 2),
        "placements_per_s": round(m["placements"] / wall, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "price_per_core_hour": m["price_per_core_hour_mean"],
        "latency_p90_s": m["first_placement_latency_s"]["p90"],
        "candidates_per_placement": m["candidates_per_placement"],
        "utilisation": m["utilisation_mean"],
        "jobs_lost": m["jobs_lost"],
    }


SCENARIOS = Path(__file__).resolve().parents[1] / "examples" / "scenarios"


def market(name: str, duration: str) -> dict[str, Any]:
    import yaml

    from agora.sim import parse, simulate

    doc = yaml.safe_load((SCENARIOS / f"{name}.yaml").read_text())
    if duration != "-":
        doc["duration"] = duration
    t0 = time.perf_counter()
    report = simulate(parse(doc))
    wall = time.perf_counter() - t0
    m = {k: v["value"] for k, v in report["metrics"].items()}
    if name == "inference":
        what, n = "requests", m["inference_requests"]
    else:
        what, n = "updates", m["fl_updates"]["asked"]
    return {
        "scenario": name,
        "simulated_h": report["duration_s"] / 3600,
        "what": what,
        "n": n,
        "wall_s": round(wall, 2),
        "per_s": round(n / wall, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "ledger_sum_max_abs": m["ledger_sum_max_abs"],
    }


def run_case(providers: int, jobs: int, sample: int) -> dict[str, Any]:
    return _sub("--case", f"{providers},{jobs},{sample}")


def _sub(flag: str, arg: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, flag, arg],
        capture_output=True,
        text=True,
        check=True,
        timeout=3600,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="100 x 1,000 only")
    ap.add_argument("--markets", action="store_true", help="only the inference and federated scenarios")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--market", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        p, j, s = (int(x) for x in args.case.split(","))
        print(json.dumps(one(p, j, s)))
        return
    if args.market:
        name, duration = args.market.split(",")
        print(json.dumps(market(name, duration)))
        return
    if args.markets:
        markets(args.smoke)
        return
    sizes = [(100, 1000)] if args.smoke else [(1000, 10_000), (10_000, 100_000)]
    print(f"{'providers':>9} {'jobs':>7} {'placed':>7} {'wall s':>8} {'placed/s':>9} {'peak MiB':>9} {'lost':>4}")
    for providers, jobs in sizes:
        r = run_case(providers, jobs, 32)
        print(
            f"{r['providers']:>9} {r['jobs']:>7} {r['placements']:>7} {r['wall_s']:>8} "
            f"{r['placements_per_s']:>9} {r['peak_rss_mib']:>9} {r['jobs_lost']:>4}"
        )
    qp, qj = (100, 1000) if args.smoke else (1000, 5000)
    sampled, full = run_case(qp, qj, 32), run_case(qp, qj, 0)
    print(f"quality at {qp} providers x {qj} jobs: sample 32 vs full scan")
    for k in ("price_per_core_hour", "latency_p90_s", "utilisation", "candidates_per_placement", "wall_s"):
        print(f"  {k:<26} {sampled[k]:>12} {full[k]:>12}")
    price = sampled["price_per_core_hour"] / full["price_per_core_hour"] if full["price_per_core_hour"] else 1.0
    speed = full["wall_s"] / sampled["wall_s"] if sampled["wall_s"] else 1.0
    markets(args.smoke)
    print(f"ratio sampled/full: price paid x{price:.3f}, full scan takes x{speed:.2f} the wall time")


def markets(smoke: bool) -> None:
    print(f"{'scenario':>10} {'sim h':>6} {'what':>8} {'n':>6} {'wall s':>7} {'n/s':>7} {'peak MiB':>9} {'ledger':>6}")
    for name, short in (("inference", "30m"), ("federated", "2h")):
        r = _sub("--market", f"{name},{short if smoke else '-'}")
        print(
            f"{r['scenario']:>10} {r['simulated_h']:>6g} {r['what']:>8} {r['n']:>6} {r['wall_s']:>7} "
            f"{r['per_s']:>7} {r['peak_rss_mib']:>9} {r['ledger_sum_max_abs']:>6}"
        )


if __name__ == "__main__":
    main()
