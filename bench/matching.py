"""Placement decisions per second with full diagnostics vs the same filter as a bare loop, in one run.

    .venv/bin/python bench/matching.py [--sizes 1000,10000] [--rounds 5]
    .venv/bin/python bench/matching.py --smoke      # a handful of iterations, for the test suite

agora: `match_table(job, table, policy, now)` over a `CandidateTable` built once (as the placer does once
per index change; its build time is printed): every candidate's pass/fail per reason code, counts per
reason, the soft scores, the strategy's top k and what-would-fit; each verdict's reason sentences and
score breakdown are built when the decision's `candidates` are first read. Two more lines show what a
`why` costs: `match_table` + `to_dict(limit=50)` (what the placer records each round: the first 50 candidates
with their sentences, all the counts), `match_table` + `to_dict()` (every sentence built), and the
reference `match` + `to_dict()`.
bare: the same hard checks (staleness, cpu, memory, engine, offer terms, quote within the limit) as a
plain loop that keeps only the k cheapest passing ads: no reasons, no scores, no diagnostics.

A decision is one placement over all N candidate ads. The ads are verified once up front (as the index
does when they arrive) and reused; each round alternates agora and bare so a change in machine load hits
both alike, and the ratio (bare time / agora time: above 1 means agora is faster) is the median of the
per-round ratios.
Target (issue 8): >= 5,000 decisions/s at 1,000 candidates; see docs/market.md for what is measured.
"""

from __future__ import annotations

import argparse
import heapq
import random
import statistics
import sys
import time
from collections.abc import Callable

from agora.market import JobNeed, MatchPolicy, match
from agora.market.fastmatch import match_table
from agora.market.table import CandidateTable
from agora.models.capability import Capability, GiB
from agora.models.offer import ResourceOffer
from agora.wire.market import CapacityAd, ExecutorState

NOW = 1_000_000


def make_ads(n: int, rnd: random.Random) -> list[CapacityAd]:
    """A market where about half the ads can take the job, the others fail on one or more dimensions."""
    ads = []
    for i in range(n):
        did = f"did:key:z6Mkbench{i:06d}"
        docker_ok = rnd.random() < 0.5
        offer = ResourceOffer.from_dict(
            {
                "kind": "resources",
                "offer_id": f"o-{i}",
                "provider": did,
                "resources": {"cpu_millis": 16000, "memory_bytes": 64 * GiB, "executors": ["wasm", "docker"]},
                "price": {
                    "base": {
                        "cpu_second": rnd.randint(1, 20),
                        "memory_gib_second": rnd.randint(0, 3),
                        "minimum": rnd.randint(0, 100),
                    }
                },
                "terms": {"max_duration_s": rnd.choice([600, 3600, 86400])},
                "valid_from": 0,
                "valid_until": NOW * 2,
            }
        )
        free = Capability(
            cpu_millis=rnd.randint(0, 16) * 1000,
            memory_bytes=rnd.randint(0, 64) * GiB,
            disk_bytes=500 * GiB,
            executors=frozenset({"wasm", "docker"} if docker_ok else {"wasm"}),
            labels={"region": rnd.choice(["eu", "us", "ap"])},
            arch="x86_64",
        )
        execs = {"wasm": ExecutorState(True), "docker": ExecutorState(docker_ok, None if docker_ok else "no engine")}
        iat = NOW - rnd.randint(0, 400)
        ads.append(CapacityAd(did, 1, iat, 300, offer, free, execs, rnd.uniform(100, 5000), "0.1.0"))
    return ads


def bare(job: JobNeed, ads: list[CapacityAd], k: int, stale_after: int, now: int) -> tuple[int, list[tuple[int, str]]]:
    """The same hard filter without diagnostics: how many pass, and the k cheapest (quote, DID)."""
    need, engine, dur = job.need, job.engine, job.duration_s
    limit = job.limit
    best: list[tuple[int, str]] = []
    for ad in ads:
        if now >= ad.iat + ad.ttl_s or now - ad.iat > stale_after:
            continue
        free = ad.free
        if need.cpu_millis > free.cpu_millis or need.memory_bytes > free.memory_bytes:
            continue
        if need.disk_bytes > free.disk_bytes or engine not in free.executors:
            continue
        offer = ad.offer
        terms = offer.terms
        if not offer.valid_from <= now < offer.valid_until or (terms.engines and engine not in terms.engines):
            continue
        if terms.max_duration_s is not None and dur > terms.max_duration_s:
            continue
        quote = offer.price.engines.get(engine, offer.price.base).cost(need, dur)
        if limit is not None and quote > limit:
            continue
        best.append((quote, ad.provider))
    return len(best), heapq.nsmallest(k, best)


def _per_decision(fn: Callable[[], object], reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def run(n: int, rounds: int, reps: int) -> tuple[float, float]:
    rnd = random.Random(n)
    ads = make_ads(n, rnd)
    job = JobNeed(
        need=Capability(cpu_millis=2000, memory_bytes=8 * GiB),
        engine="docker",
        duration_s=600,
        requester="did:key:z6Mkrequester",
        budget=30_000,
        strategy="cheapest",
    )
    policy = MatchPolicy(k=3, stale_after_s=300)
    t0 = time.perf_counter()
    table = CandidateTable(ads)
    build = time.perf_counter() - t0
    decision = match(job, ads, policy, now=NOW)
    fast = match_table(job, table, policy, now=NOW)
    passing, cheapest = bare(job, ads, 3, 300, NOW)
    quotes = [decision.verdict(p).quote for p in decision.chosen]
    assert passing == len(decision.passed) and quotes == [q for q, _ in cheapest], "bare and agora must agree"
    assert fast == decision, "the table and the reference must decide alike"
    slow_reps = max(1, reps // 50)
    times: dict[str, list[float]] = {"table": [], "why50": [], "why": [], "match": [], "bare": []}
    ratios = []
    for _ in range(rounds):
        times["table"].append(_per_decision(lambda: match_table(job, table, policy, now=NOW), reps))
        times["bare"].append(_per_decision(lambda: bare(job, ads, 3, 300, NOW), reps))
        times["why50"].append(
            _per_decision(lambda: match_table(job, table, policy, now=NOW).to_dict(limit=50), max(1, reps // 10))
        )
        times["why"].append(_per_decision(lambda: match_table(job, table, policy, now=NOW).to_dict(), slow_reps))
        times["match"].append(_per_decision(lambda: match(job, ads, policy, now=NOW).to_dict(), slow_reps))
        ratios.append(times["bare"][-1] / times["table"][-1])
    best = {k: min(v) for k, v in times.items()}
    print(f"candidates: {n}, passing: {len(decision.passed)}, reasons counted: {sum(decision.counts.values())}")
    print(f"  table build (once per index change): {build * 1e3:8.1f} ms")
    for key, label in (
        ("bare", "bare loop (no diagnostics)"),
        ("table", "agora match_table (diagnostics; sentences on read)"),
        ("why50", "agora match_table + the placer's why (50 candidates)"),
        ("why", "agora match_table + the whole why (to_dict)"),
        ("match", "agora match, reference path (+ to_dict)"),
    ):
        print(f"  {label:52s} {1 / best[key]:10.1f} decisions/s  {n / best[key]:12.0f} candidates/s")
    return 1 / best["table"], statistics.median(ratios)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--smoke", action="store_true", help="a handful of iterations (the test suite runs this)")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rounds = args.rounds
    if args.smoke:
        sizes, rounds = [200], 2
    for n in sizes:
        reps = 1 if args.smoke else max(50, 1_000_000 // n)
        decisions, ratio = run(n, rounds, reps)
        print(
            f"ratio: agora match_table {ratio:.2f}x the bare loop's decisions/s at {n} candidates "
            f"(median of {rounds} interleaved rounds); {decisions:.0f} decisions/s (target >= 5,000 at 1,000)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
