"""The columnar fast path (`fastmatch.match_table` over a `table.CandidateTable`) against the reference `match`:
the same Decision on random markets.

The markets here exercise every dimension the table vectorizes (gpus, vram, gpu model, arch, labels,
location, executors, disk, offer validity, engine terms, max duration, access policies, trust, latency,
affinities, constraints on labels and quantities, per-engine and gpu prices, weights, every strategy, k)
and the ties that a top-k must break exactly (equal quotes, equal scores, equal utilization).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agora.errors import AgoraError
from agora.market import JobNeed, MatchPolicy, match
from agora.market.fastmatch import TableDecision, match_table
from agora.market.table import CandidateTable, TableCache
from agora.models.capability import Capability, GiB
from agora.models.job import Affinity, Constraint
from agora.models.offer import ResourceOffer
from agora.resources.comparator import Weights
from agora.wire.market import CapacityAd, ExecutorState
from tests.unit.market.ads import NOW, ad, did

ENGINES = ("wasm", "docker", "process")
MODELS = (None, "NVIDIA A100-SXM4-80GB", "NVIDIA A10", "AMD MI300X")
REQUESTERS = [did("req"), did("other")]


def _offer(draw: st.DrawFn, provider: str, total: dict[str, Any]) -> ResourceOffer:
    terms: dict[str, Any] = {}
    if draw(st.booleans()):
        terms["max_duration_s"] = draw(st.integers(1, 200))
    if draw(st.booleans()):
        terms["engines"] = sorted(draw(st.sets(st.sampled_from(ENGINES), min_size=1)))
    mode = draw(st.sampled_from(["open", "open", "allowlist", "min_trust"]))
    if mode == "allowlist":
        terms["access"] = {"mode": "allowlist", "allow": [draw(st.sampled_from(REQUESTERS))]}
    elif mode == "min_trust":
        terms["access"] = {"mode": "min_trust", "min_trust": draw(st.sampled_from([0.0, 0.5, 0.9]))}

    def schedule() -> dict[str, int]:
        return {
            "cpu_second": draw(st.integers(0, 4)),
            "memory_gib_second": draw(st.integers(0, 2)),
            "gpu_second": draw(st.integers(0, 50)),
            "minimum": draw(st.sampled_from([0, 0, 100, 500])),
        }

    priced = draw(st.sets(st.sampled_from(terms.get("engines", ENGINES)), max_size=2))
    engines = {e: schedule() for e in sorted(priced)}
    return ResourceOffer.from_dict(
        {
            "kind": "resources",
            "offer_id": f"o-{provider[-6:]}",
            "provider": provider,
            "resources": total,
            "price": {"base": schedule(), "engines": engines},
            "terms": terms,
            "valid_from": (start := NOW + draw(st.sampled_from([-100, 0, 5]))),
            "valid_until": start + draw(st.sampled_from([1, 95, 100, 100_000])),
        }
    )


@st.composite
def markets(draw: st.DrawFn) -> list[CapacityAd]:
    n = draw(st.integers(min_value=0, max_value=14))
    out = []
    for i in range(n):
        provider = did(f"t{i:02d}")
        names = draw(st.sets(st.sampled_from(ENGINES)))
        execs = {e: ExecutorState(draw(st.booleans()), "no engine answers") for e in names}
        gpus = draw(st.sampled_from([0, 0, 1, 2, 8]))
        labels = draw(st.dictionaries(st.sampled_from(["region", "tier", "disk"]), st.sampled_from(["eu", "ssd"])))
        free = Capability(
            cpu_millis=draw(st.integers(0, 4)) * 1000,
            memory_bytes=draw(st.integers(0, 8)) * GiB,
            disk_bytes=draw(st.sampled_from([0, 10, 100])) * GiB,
            gpu_count=gpus,
            gpu_model=draw(st.sampled_from(MODELS)) if gpus else None,
            gpu_vram_bytes=draw(st.sampled_from([0, 24, 80])) * GiB if gpus else 0,
            executors=frozenset(e for e, s in execs.items() if s.available),
            labels=labels,
            location=draw(st.sampled_from([None, "eu-west-1", "eu/paris", "us-east-1"])),
            arch=draw(st.sampled_from([None, "x86_64", "aarch64"])),
        )
        total = {
            "cpu_millis": draw(st.sampled_from([4000, 8000])),
            "memory_bytes": draw(st.sampled_from([0, 8, 16])) * GiB,
            "gpu_count": draw(st.sampled_from([0, 8])),
            "executors": list(ENGINES),
        }
        bench = draw(st.one_of(st.none(), st.sampled_from([0.0, 500.0, 1000.0]), st.floats(0, 5000)))
        out.append(
            CapacityAd(
                provider,
                1,
                NOW - draw(st.integers(0, 400)),
                draw(st.integers(1, 300)),
                _offer(draw, provider, total),
                free,
                execs,
                bench,
                draw(st.sampled_from(["0.1.0", "0.2.0"])),
            )
        )
    return out


_CONSTRAINTS = [
    Constraint("labels.region", "==", "eu"),
    Constraint("labels.region", "!=", "eu"),
    Constraint("region", "in", ("eu", "us")),
    Constraint("labels.tier", "not_in", ("ssd",)),
    Constraint("labels.disk", "exists"),
    Constraint("cpu", ">=", 2000),
    Constraint("memory", "<=", 4 * GiB),
    Constraint("benchmark", ">=", 900),
    Constraint("version", "==", "0.2.0"),
    Constraint("gpu.count", ">=", 1),
    Constraint("arch", "==", "x86_64"),
    Constraint("location", "!=", "us-east-1"),
    Constraint("provider", "not_in", (did("t00"),)),
]


@st.composite
def needs(draw: st.DrawFn) -> JobNeed:
    gpus = draw(st.sampled_from([0, 0, 1, 2]))
    need = Capability(
        cpu_millis=draw(st.integers(0, 4)) * 1000,
        memory_bytes=draw(st.integers(0, 8)) * GiB,
        disk_bytes=draw(st.sampled_from([0, 0, 50])) * GiB,
        gpu_count=gpus,
        gpu_model=draw(st.sampled_from([None, "A100", "A10", "MI300X"])) if gpus else None,
        gpu_vram_bytes=draw(st.sampled_from([0, 40])) * GiB if gpus else 0,
        arch=draw(st.sampled_from([None, None, "x86_64"])),
        labels=draw(st.sampled_from([{}, {}, {"region": "eu"}, {"tier": "ssd", "region": "us"}])),
        location=draw(st.sampled_from([None, None, "eu"])),
        executors=frozenset(draw(st.sets(st.sampled_from(ENGINES), max_size=1))),
    )
    affinities = tuple(
        Affinity(c.key, c.op, c.value, draw(st.integers(-100, 100)))
        for c in draw(st.lists(st.sampled_from(_CONSTRAINTS), max_size=2))
        if c.op != "exists"
    )
    return JobNeed(
        need=need,
        engine=draw(st.sampled_from(ENGINES)),
        duration_s=draw(st.integers(1, 200)),
        requester=draw(st.sampled_from(REQUESTERS)),
        constraints=tuple(draw(st.lists(st.sampled_from(_CONSTRAINTS), max_size=3))),
        affinities=affinities,
        max_price=draw(st.one_of(st.none(), st.integers(0, 3000))),
        budget=draw(st.one_of(st.none(), st.integers(0, 3000))),
        min_trust=draw(st.one_of(st.none(), st.sampled_from([0.0, 0.5]), st.floats(0, 1))),
        min_stake=draw(st.one_of(st.none(), st.sampled_from([1, 50, 100]))),
        strategy=draw(st.sampled_from(["balanced", "cheapest", "fastest", "binpack", "spread"])),
    )


_DIDS = [did(f"t{i:02d}") for i in range(14)]
# the trust work adds these MatchPolicy fields (the prior, and the providers excluded for a while); the table
# reads them when they exist, and this suite then draws them too
_TRUST_FIELDS: dict[str, Any] = {
    "default_trust": st.one_of(st.none(), st.sampled_from([0.0, 0.5])),
    "cooling_down": st.dictionaries(st.sampled_from(_DIDS), st.sampled_from([NOW - 1.0, NOW, NOW + 1.0, NOW + 99.5])),
}
policies = st.builds(
    MatchPolicy,
    **{k: v for k, v in _TRUST_FIELDS.items() if k in MatchPolicy.__dataclass_fields__},
    k=st.integers(1, 5),
    stale_after_s=st.integers(1, 400),
    trust=st.dictionaries(st.sampled_from(_DIDS), st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(0, 1))),
    latency_ms=st.dictionaries(st.sampled_from(_DIDS), st.one_of(st.sampled_from([0.0, 10.0]), st.floats(0, 500))),
    stakes=st.dictionaries(st.sampled_from(_DIDS), st.sampled_from([0, 49, 50, 100, 1000])),
    requester_trust=st.one_of(st.none(), st.sampled_from([0.2, 0.5, 0.95])),
    weights=st.one_of(
        st.none(),
        st.builds(Weights, *(st.sampled_from([0.0, 0.5, 1.0, 2.0]) for _ in range(4))),
    ),
    affinity_weight=st.sampled_from([0.0, 1.0, 2.5]),
)


def assert_same(fast: Any, ref: Any) -> None:
    assert isinstance(fast, TableDecision)
    assert fast.chosen == ref.chosen
    assert dict(fast.counts) == dict(ref.counts)
    assert list(fast.counts) == list(ref.counts)
    assert fast.what_would_fit == ref.what_would_fit
    assert fast.candidates == ref.candidates
    assert fast.to_dict() == ref.to_dict()
    assert fast == ref and ref == fast


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markets(), needs(), policies, st.integers(0, 16))
def test_the_table_decides_exactly_as_match(ads: list[CapacityAd], job: JobNeed, pol: MatchPolicy, limit: int) -> None:
    ref = match(job, ads, pol, now=NOW)
    table = CandidateTable(ads)
    # a why that keeps the first `limit` candidates builds only those, and they are match's first ones
    assert match_table(job, table, pol, now=NOW).head(limit) == ref.candidates[:limit]
    assert match_table(job, table, pol, now=NOW).passed == ref.passed
    assert match_table(job, table, pol, now=NOW).to_dict(limit=limit) == ref.to_dict(limit=limit)
    assert ref.to_dict(limit=limit) == {**ref.to_dict(), "candidates": ref.to_dict()["candidates"][:limit]}
    assert_same(match_table(job, table, pol, now=NOW), ref)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markets(), needs(), policies, st.sampled_from([-100.5, -0.25, 0.5, 4.75, 99.5]))
def test_a_clock_with_fractions_decides_alike(ads: list[CapacityAd], job: JobNeed, pol: MatchPolicy, dt: float) -> None:
    """Ad ages, expiry and offer windows compared with a float `now` (the system clock's) as Python does."""
    now = NOW + dt
    assert_same(match_table(job, CandidateTable(ads), pol, now=now), match(job, ads, pol, now=now))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markets(), needs(), policies)
def test_one_table_serves_many_decisions(ads: list[CapacityAd], job: JobNeed, pol: MatchPolicy) -> None:
    """The columns memoized for one job (engine prices, constraints, executors) never leak into another's."""
    table = CandidateTable(ads)
    other = JobNeed(need=Capability(cpu_millis=1000), engine="wasm", duration_s=50, strategy="spread")
    for j in (job, other, job):
        assert_same(match_table(j, table, pol, now=NOW), match(j, ads, pol, now=NOW))


def _tied(n: int, **kw: Any) -> list[CapacityAd]:
    return [ad(f"tie{i:03d}", **kw) for i in reversed(range(n))]


@pytest.mark.parametrize("strategy", ["balanced", "cheapest", "fastest", "binpack", "spread"])
def test_ties_fall_to_the_did_past_the_partition(strategy: str) -> None:
    ads = [*_tied(40), ad("cheap", price={"base": {"cpu_second": 0}})]
    job = JobNeed(need=Capability(cpu_millis=1000), engine="wasm", duration_s=60, strategy=strategy)
    pol = MatchPolicy(k=5)
    fast = match_table(job, CandidateTable(ads), pol, now=NOW)
    assert_same(fast, match(job, ads, pol, now=NOW))
    assert len(fast.chosen) == 5


def test_what_would_fit_skips_equal_sentences_and_keeps_the_first_did() -> None:
    ads = [*_tied(30, cpu=1000), ad("lower", cpu=500), ad("budget", price={"base": {"cpu_second": 50}})]
    job = JobNeed(need=Capability(cpu_millis=2000), engine="wasm", duration_s=60, budget=1000)
    fast = match_table(job, CandidateTable(ads), MatchPolicy(), now=NOW)
    assert_same(fast, match(job, ads, MatchPolicy(), now=NOW))
    assert [s.provider for s in fast.what_would_fit] == [did("tie000"), did("lower"), did("budget")]


def test_candidates_are_built_once_when_read() -> None:
    ads = [ad("a"), ad("b", cpu=0), ad("c", memory=0)]
    job = JobNeed(need=Capability(cpu_millis=1000, memory_bytes=GiB), engine="wasm", duration_s=60)
    fast = match_table(job, CandidateTable(ads), MatchPolicy(), now=NOW)
    assert fast.chosen == (did("a"),) and fast.counts == {"insufficient_cpu": 1, "insufficient_memory": 1}
    first = fast.candidates
    assert fast.candidates is first
    assert fast.verdict(did("b")).codes == ["insufficient_cpu"]
    assert fast.verdict(did("b")).reasons[0].text == "insufficient_cpu: need 1 core, free 0 cores"


def test_values_past_exact_floats_fall_back_to_match() -> None:
    ads = [ad("huge", memory=2**60), ad("small")]
    job = JobNeed(need=Capability(cpu_millis=1000), engine="wasm", duration_s=60)
    table = CandidateTable(ads)
    assert not table.exact
    d = match_table(job, table, MatchPolicy(), now=NOW)
    assert d == match(job, ads, MatchPolicy(), now=NOW)


def test_prices_that_could_overflow_int64_fall_back_to_match() -> None:
    price = {"base": {"cpu_second": 2**40, "minimum": 1}}
    ads = [ad("dear", price=price), ad("cheap")]
    job = JobNeed(need=Capability(cpu_millis=4000), engine="wasm", duration_s=199, budget=10**30)
    d = match_table(job, CandidateTable(ads), MatchPolicy(k=2), now=NOW)
    ref = match(job, ads, MatchPolicy(k=2), now=NOW)
    assert d == ref and d.chosen == (did("cheap"), did("dear"))


def test_two_ads_of_one_provider_are_refused() -> None:
    with pytest.raises(AgoraError) as e:
        CandidateTable([ad("a"), ad("a", seq=2)])
    assert e.value.code == "invalid_argument"


def test_the_cache_rebuilds_only_when_an_ad_object_changes() -> None:
    cache = TableCache()
    ads = [ad("a"), ad("b")]
    t1 = cache.table(ads)
    assert cache.table(list(ads)) is t1
    changed = [ads[0], ad("b", cpu=1000)]
    t2 = cache.table(changed)
    assert t2 is not t1 and t2.ads == tuple(changed)
    assert cache.table(changed[:1]) is not t2


def test_scores_equal_once_rounded_tie_even_when_their_floats_differ() -> None:
    """(1.0 + 0.1 + 0.1) / 4 and (1.0 + 0.2 + 0.0) / 4 are different floats but the same score once rounded:
    the cheaper wins, although the partition's raw column puts the dearer one first."""
    ads = [
        ad("dear", bench=1000.0, price={"base": {"cpu_second": 10}}),
        ad("fair", bench=1000.0, price={"base": {"cpu_second": 5}}),
        ad("cheap", bench=0.0, price={"base": {"cpu_second": 1}}),
    ]
    job = JobNeed(need=Capability(cpu_millis=1000), engine="wasm", duration_s=1)
    pol = MatchPolicy(k=1, trust={did("dear"): 0.1})
    fast = match_table(job, CandidateTable(ads), pol, now=NOW)
    assert_same(fast, match(job, ads, pol, now=NOW))
    assert fast.verdict(did("dear")).score != fast.verdict(did("fair")).score
    assert fast.chosen == (did("fair"),)


def test_one_block_of_equal_cost_keeps_every_distinct_sentence() -> None:
    """Lowering cpu 2 -> 1 core and memory 4 -> 2 GiB are both a change of one half: one block, two sentences."""
    ads = [ad("cpu-a", cpu=1000), ad("cpu-b", cpu=1000), ad("mem", memory=2 * GiB)]
    job = JobNeed(need=Capability(cpu_millis=2000, memory_bytes=4 * GiB), engine="wasm", duration_s=60)
    fast = match_table(job, CandidateTable(ads), MatchPolicy(), now=NOW)
    assert_same(fast, match(job, ads, MatchPolicy(), now=NOW))
    assert [s.provider for s in fast.what_would_fit] == [did("cpu-a"), did("mem")]


def test_a_policy_field_the_table_does_not_know_falls_back_to_match(monkeypatch: pytest.MonkeyPatch) -> None:
    """A field added to MatchPolicy later (say, providers cooling down) may change verdicts: until the table
    reads it, a non-default value sends the decision to the reference path."""
    from agora.market import fastmatch

    ads = [ad("a"), ad("b", cpu=0)]
    job = JobNeed(need=Capability(cpu_millis=1000), engine="wasm", duration_s=60)
    assert isinstance(match_table(job, CandidateTable(ads), MatchPolicy(k=2), now=NOW), TableDecision)
    monkeypatch.setattr(fastmatch, "_OTHER_POLICY", (("k", 3),))  # as if `k` were unknown, default 3
    d = match_table(job, CandidateTable(ads), MatchPolicy(k=2), now=NOW)
    assert not isinstance(d, TableDecision) and d == match(job, ads, MatchPolicy(k=2), now=NOW)
    assert isinstance(match_table(job, CandidateTable(ads), MatchPolicy(k=3), now=NOW), TableDecision)


def test_the_fast_path_reads_every_field_of_the_policy_and_the_job() -> None:
    """A field added to MatchPolicy or JobNeed that fastmatch does not read sends every decision that sets it
    to the reference path (correct, ~100x slower). Add its mask or column in fastmatch (and the field to
    _KNOWN_POLICY / _KNOWN_JOB), and draw it in this suite's strategies."""
    from agora.market import fastmatch

    assert fastmatch._OTHER_POLICY == () and fastmatch._OTHER_JOB == ()
