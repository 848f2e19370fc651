"""Property tests of `match` against an independent oracle written from the rules in docs/market.md.

- every candidate's verdict agrees with the oracle, and its reason codes are exactly the oracle's failing
  dimensions (a chosen node passes every hard constraint; nothing that passes is reported as rejected);
- the chosen are the first k passing candidates, and counts per reason tally the verdicts;
- the decision does not depend on the order of the ads.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agora.market import JobNeed, MatchPolicy, match
from agora.models.capability import Capability, GiB
from agora.models.job import Constraint
from agora.wire.market import CapacityAd, ExecutorState
from tests.unit.market.ads import NOW, ad, did

ENGINES = ("wasm", "docker")


@st.composite
def ads_strategy(draw: st.DrawFn) -> list[CapacityAd]:
    n = draw(st.integers(min_value=0, max_value=12))
    out = []
    for i in range(n):
        execs = {e: ExecutorState(draw(st.booleans()), "down") for e in draw(st.sets(st.sampled_from(ENGINES)))}
        region = draw(st.sampled_from([None, "eu", "us"]))
        terms: dict[str, Any] = {}
        if draw(st.booleans()):
            terms["max_duration_s"] = draw(st.integers(min_value=1, max_value=200))
        if draw(st.booleans()):
            terms["engines"] = [draw(st.sampled_from(ENGINES))]
        if draw(st.booleans()):
            terms["access"] = {"mode": "allowlist", "allow": [did(draw(st.sampled_from(["req", "other"])))]}
        out.append(
            ad(
                f"p{i:02d}",
                cpu=draw(st.integers(min_value=0, max_value=4)) * 1000,
                memory=draw(st.integers(min_value=0, max_value=8)) * GiB,
                executors=execs,
                labels={"region": region} if region else {},
                bench=draw(st.one_of(st.none(), st.floats(min_value=0, max_value=5000))),
                iat=NOW - draw(st.integers(min_value=0, max_value=400)),
                ttl=draw(st.integers(min_value=1, max_value=300)),
                price={
                    "base": {
                        "cpu_second": draw(st.integers(0, 5)),
                        "memory_gib_second": draw(st.integers(0, 2)),
                        "minimum": draw(st.integers(0, 500)),
                    },
                    "engines": {"docker": {"cpu_second": draw(st.integers(0, 9))}} if "engines" not in terms else {},
                },
                terms=terms,
                valid=(0, NOW + draw(st.integers(min_value=-5, max_value=5))),
            )
        )
    return out


@st.composite
def jobs(draw: st.DrawFn) -> JobNeed:
    constraints = ()
    if draw(st.booleans()):
        constraints = (Constraint("labels.region", draw(st.sampled_from(["==", "!=", "in"])), "eu"),)
        if constraints[0].op == "in":
            constraints = (Constraint("labels.region", "in", ("eu",)),)
    return JobNeed(
        need=Capability(cpu_millis=draw(st.integers(0, 4)) * 1000, memory_bytes=draw(st.integers(0, 8)) * GiB),
        engine=draw(st.sampled_from(ENGINES)),
        duration_s=draw(st.integers(min_value=1, max_value=200)),
        requester=did("req"),
        constraints=constraints,
        max_price=draw(st.one_of(st.none(), st.integers(0, 3000))),
        budget=draw(st.one_of(st.none(), st.integers(0, 3000))),
        min_trust=draw(st.one_of(st.none(), st.floats(0, 1))),
        strategy=draw(st.sampled_from(["balanced", "cheapest", "fastest", "binpack", "spread"])),
    )


def _quote(a: CapacityAd, job: JobNeed) -> int:
    s = a.offer.price.engines.get(job.engine, a.offer.price.base)
    rate = Fraction(job.need.cpu_millis * s.cpu_second, 1000) + Fraction(
        job.need.memory_bytes * s.memory_gib_second, GiB
    )
    return max(s.minimum, math.ceil(rate * job.duration_s))


def oracle(a: CapacityAd, job: JobNeed, pol: MatchPolicy, now: int) -> set[str]:
    """The failing dimensions of one ad, written independently of agora.market.matching."""
    failing = set()
    if now >= a.iat + a.ttl_s or now - a.iat > pol.stale_after_s:
        failing.add("stale_ad")
    if job.need.cpu_millis > a.free.cpu_millis:
        failing.add("insufficient_cpu")
    if job.need.memory_bytes > a.free.memory_bytes:
        failing.add("insufficient_memory")
    state = a.executors.get(job.engine)
    if state is None or not state.available:
        failing.add("executor_unavailable")
    t = a.offer.terms
    if (
        not a.offer.valid_from <= now < a.offer.valid_until
        or (t.engines and job.engine not in t.engines)
        or (t.max_duration_s is not None and job.duration_s > t.max_duration_s)
        or (t.access.mode == "allowlist" and job.requester not in t.access.allow)
    ):
        failing.add("policy_refused")
    trust = pol.trust.get(a.provider, pol.default_trust)
    if a.provider in pol.cooling_down and now < pol.cooling_down[a.provider]:
        failing.add("provider_cooling_down")
    if job.min_trust is not None and (trust is None or trust < job.min_trust):
        failing.add("trust_below_min")
    for c in job.constraints:
        region = a.free.labels.get("region")
        if region is None and c.op != "!=":
            failing.add("label_missing")
        elif region is not None and not {"==": region == "eu", "!=": region != "eu", "in": region in ("eu",)}[c.op]:
            failing.add("constraint_failed")
    limits = [x for x in (job.max_price, job.budget) if x is not None]
    if limits and _quote(a, job) > min(limits):
        failing.add("over_budget")
    return failing


policies = st.builds(
    MatchPolicy,
    k=st.integers(1, 4),
    stale_after_s=st.integers(1, 400),
    trust=st.dictionaries(st.sampled_from([did(f"p{i:02d}") for i in range(12)]), st.floats(0, 1)),
    default_trust=st.one_of(st.none(), st.floats(0, 1)),
    cooling_down=st.dictionaries(st.sampled_from([did(f"p{i:02d}") for i in range(12)]), st.integers(NOW - 5, NOW + 5)),
)


@settings(max_examples=150, deadline=None)
@given(ads_strategy(), jobs(), policies)
def test_verdicts_agree_with_the_oracle(ads: list[CapacityAd], job: JobNeed, pol: MatchPolicy) -> None:
    d = match(job, ads, pol, now=NOW)
    assert len(d.candidates) == len(ads)
    tally: dict[str, int] = {}
    for a in ads:
        v = d.verdict(a.provider)
        expected = oracle(a, job, pol, NOW)
        assert set(v.codes) == expected, (a.provider, v.codes, expected)
        assert v.ok == (not expected) == (not v.reasons)
        for code in set(v.codes):
            tally[code] = tally.get(code, 0) + 1
    passing = [v for v in d.candidates if v.ok]
    assert d.chosen == tuple(v.provider for v in passing[: pol.k])
    assert all(d.verdict(p).ok and not oracle_of(ads, p, job, pol) for p in d.chosen)
    assert [v.position for v in passing] == list(range(1, len(passing) + 1))
    assert dict(d.counts) == tally


def oracle_of(ads: list[CapacityAd], provider: str, job: JobNeed, pol: MatchPolicy) -> set[str]:
    return oracle(next(a for a in ads if a.provider == provider), job, pol, NOW)


@settings(max_examples=60, deadline=None)
@given(ads_strategy(), jobs(), policies, st.randoms(use_true_random=False))
def test_the_order_of_the_ads_does_not_matter(ads: list[CapacityAd], job: JobNeed, pol: MatchPolicy, rnd: Any) -> None:
    shuffled = list(ads)
    rnd.shuffle(shuffled)
    assert match(job, shuffled, pol, now=NOW).to_dict() == match(job, ads, pol, now=NOW).to_dict()


@settings(max_examples=60, deadline=None)
@given(ads_strategy(), jobs())
def test_following_a_suggestion_makes_that_provider_pass(ads: list[CapacityAd], job: JobNeed) -> None:
    pol = MatchPolicy(k=len(ads) or 1)
    d = match(job, ads, pol, now=NOW)
    for s in d.what_would_fit:
        changes = {c.param: c.value for c in s.changes}
        need = job.need.to_dict()
        need.update({k: changes[p] for p, k in (("cpu", "cpu_millis"), ("memory", "memory_bytes")) if p in changes})
        relaxed = JobNeed(
            need=Capability.from_dict(need),
            engine=job.engine,
            duration_s=job.duration_s,
            requester=job.requester,
            constraints=job.constraints,
            max_price=changes.get("budget", job.max_price),
            budget=changes.get("budget", job.budget),
            min_trust=changes.get("min_trust", job.min_trust),
        )
        assert match(relaxed, ads, pol, now=NOW).verdict(s.provider).ok, s.text
