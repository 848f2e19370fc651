"""`Columns.table(ads)` must be `CandidateTable(ads)`, column for column, and decide the same in `match_table`."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from agora.market.fastmatch import match_table
from agora.market.matching import JobNeed, MatchPolicy, match
from agora.market.table import CandidateTable
from agora.models.capability import Capability, GiB, PriceSchedule, accounted
from agora.models.offer import OfferTerms, PriceTerms, ResourceOffer
from agora.sim.columns import Columns, SampledTable
from agora.sim.scenario import ENGINES
from agora.wire.market import CapacityAd, ExecutorState

NOW = 1_700_000_000


def _ad(rng: random.Random, i: int, seq: int, *, memory: int | None = None, price: int | None = None) -> CapacityAd:
    did = f"did:sim:p{i:07d}"
    cores = rng.choice([1, 2, 4, 8, 16])
    total = Capability(
        cpu_millis=cores * 1000,
        memory_bytes=rng.choice([4, 8, 64]) * GiB if memory is None else memory,
        executors=frozenset(ENGINES),
    )
    docker = PriceSchedule(cpu_second=rng.randint(0, 50), minimum=rng.randint(0, 9))
    engines = {"docker": docker} if i % 3 and i % 4 else {}
    cpu_price = rng.randint(0, 20) if price is None else price
    offer = ResourceOffer(
        offer_id=f"o-{i}",
        provider=did,
        resources=total,
        price=PriceTerms(
            base=PriceSchedule(cpu_second=cpu_price, memory_gib_second=rng.randint(0, 3)), engines=engines
        ),
        terms=OfferTerms(
            max_duration_s=rng.choice([None, 600, 7200]), engines=frozenset() if i % 4 else frozenset({"wasm"})
        ),
        valid_from=NOW - rng.choice([10, 1000]),
        valid_until=NOW + rng.choice([-5, 86400]),
    )
    used = rng.randint(0, cores) * 1000
    free = Capability(
        cpu_millis=total.cpu_millis - used, memory_bytes=total.memory_bytes // 2, executors=frozenset(ENGINES)
    )
    return CapacityAd(
        provider=did,
        seq=seq,
        iat=NOW - rng.randint(0, 600),
        ttl_s=rng.choice([300, 10**9]),
        offer=offer,
        free=free,
        executors={e: ExecutorState(True) for e in ENGINES},
        benchmark_score=rng.choice([None, 0.0, round(rng.uniform(0.5, 2), 3)]),
        version="sim",
    )


def _same_columns(got: CandidateTable, want: CandidateTable) -> None:
    assert isinstance(got, SampledTable)
    names = set(vars(want)) - {"_memo"}
    assert names <= set(vars(got)), f"SampledTable misses {sorted(names - set(vars(got)))}"
    for name in sorted(names):
        a, b = getattr(got, name), getattr(want, name)
        if isinstance(b, np.ndarray):
            assert a.dtype == b.dtype, name
            assert np.array_equal(a, b), name
        else:
            assert a == b, name
    for engine in (*ENGINES, "firecracker"):
        pa, pb = got.prices(engine), want.prices(engine)
        assert pa is not None and pb is not None
        for x, y in zip(pa[:4], pb[:4], strict=True):
            assert x.dtype == y.dtype and np.array_equal(x, y), engine
        assert pa[4] == pb[4], engine


def _job(rng: random.Random) -> JobNeed:
    engine = rng.choice(ENGINES)
    cap = Capability(cpu_millis=rng.choice([1, 2, 4]) * 1000, memory_bytes=rng.choice([1, 8]) * GiB)
    return JobNeed(
        need=accounted(Capability(cap.cpu_millis, cap.memory_bytes, executors=frozenset({engine})), engine),
        engine=engine,
        duration_s=rng.choice([60, 3600]),
        requester="did:sim:r0",
        max_price=rng.choice([None, 500, 10**6]),
        strategy=rng.choice(["balanced", "cheapest", "fastest", "binpack", "spread"]),
    )


def test_sliced_tables_equal_built_ones_and_decide_the_same() -> None:
    rng = random.Random(5)
    cols = Columns(ENGINES)
    current = {i: _ad(rng, i, 1) for i in range(60)}
    for step in range(150):
        for i in rng.sample(sorted(current), 5):  # re-issued ads (new capacity): their rows are written again
            current[i] = _ad(rng, i, current[i].seq + 1)
        ads = [current[i] for i in sorted(rng.sample(sorted(current), rng.randint(1, 40)))]
        got, want = cols.table(ads), CandidateTable(ads)
        _same_columns(got, want)
        job = _job(rng)
        policy = MatchPolicy(
            k=3,
            trust={a.provider: rng.random() for a in ads[::2]},
            latency_ms={a.provider: rng.uniform(1, 100) for a in ads},
            default_trust=0.5,
            cooling_down={ads[0].provider: NOW + 60.0} if step % 5 == 0 else {},
            stale_after_s=rng.choice([300, 10**9]),
        )
        decision = match_table(job, got, policy, now=NOW)
        assert decision == match(job, ads, policy, now=NOW)
        assert decision.chosen == match_table(job, want, policy, now=NOW).chosen


@pytest.mark.parametrize("odd", [{"memory": 2**60}])
def test_a_row_the_columns_cannot_hold_falls_back_to_the_ads(odd: dict[str, Any]) -> None:
    rng = random.Random(1)
    cols = Columns(ENGINES)
    fine = [_ad(rng, i, 1) for i in range(4)]
    _same_columns(cols.table(fine), CandidateTable(fine))
    ads = [*fine, _ad(rng, 9, 1, **odd)]
    got = cols.table(ads)
    assert type(got) is CandidateTable and not got.exact
    _same_columns(cols.table(fine), CandidateTable(fine))  # the odd row does not spoil the others


def test_a_price_past_the_exact_range_is_refused_as_the_base_table_refuses_it() -> None:
    rng = random.Random(2)
    cols = Columns(ENGINES)
    ads = [_ad(rng, 0, 1), _ad(rng, 1, 1, price=2**60)]
    got = cols.table(ads)
    assert isinstance(got, SampledTable)
    assert got.prices("wasm") is None and CandidateTable(ads).prices("wasm") is None
    job = _job(random.Random(3))
    assert match_table(job, got, MatchPolicy(), now=NOW) == match(job, ads, MatchPolicy(), now=NOW)
