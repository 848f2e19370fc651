"""Matching: every reason with its amounts, counts, what would fit, strategies, constraints, affinities."""

from __future__ import annotations

import pytest

from agora.errors import AgoraError
from agora.jobs import parse_job
from agora.market import JobNeed, MatchPolicy, match
from agora.models.capability import Capability, GiB
from agora.models.job import Affinity, Constraint
from agora.resources.comparator import Weights, rank
from agora.wire.market import ExecutorState
from tests.unit.market.ads import NOW, ad, did

NEED = Capability(cpu_millis=1000, memory_bytes=4 * GiB)


def job(**kw: object) -> JobNeed:
    base: dict[str, object] = {"need": NEED, "engine": "wasm", "duration_s": 100, "requester": did("req")}
    base.update(kw)
    return JobNeed(**base)  # type: ignore[arg-type]


def texts(decision_provider: str, decision: object) -> list[str]:
    return [r.text for r in decision.verdict(decision_provider).reasons]  # type: ignore[attr-defined]


def test_every_reason_is_named_with_its_amounts() -> None:
    ads = [
        ad("small", memory=2 * GiB),
        ad("nodocker", executors={"wasm": ExecutorState(True), "docker": ExecutorState(False, "no engine answers")}),
        ad("dear", price={"base": {"cpu_second": 12}}),
        ad("old", iat=NOW - 1000),
        ad("closed", terms={"access": {"mode": "allowlist", "allow": [did("someone")]}}),
        ad("ok"),
    ]
    d = match(job(engine="docker", budget=1000), ads, MatchPolicy(), now=NOW)
    assert d.chosen == ()
    assert texts(did("nodocker"), d) == ["executor_unavailable: docker (no engine answers)"]
    assert "insufficient_memory: need 4 GiB, free 2 GiB" in texts(did("small"), d)
    assert "executor_unavailable: docker (not offered)" in texts(did("small"), d)
    d = match(job(budget=1000), ads, MatchPolicy(), now=NOW)
    assert d.chosen == (did("nodocker"), did("ok"))  # equal scores: by DID
    assert texts(did("dear"), d) == ["over_budget: quote 1,200 > budget 1,000"]
    assert texts(did("old"), d) == ["stale_ad: issued 1000 s ago, expired 880 s ago"]
    assert texts(did("closed"), d) == ["policy_refused: requester not on the offer's allowlist"]
    assert d.counts == {"insufficient_memory": 1, "over_budget": 1, "policy_refused": 1, "stale_ad": 1}
    assert d.verdict(did("dear")).quote == 1200
    as_dict = d.to_dict()
    assert as_dict["considered"] == 6 and as_dict["passed"] == 2
    assert as_dict["candidates"][0]["verdict"] == "asked"  # asked to bid: matching places nothing


def test_trust_and_policy_terms() -> None:
    ads = [
        ad("short", terms={"max_duration_s": 50}),
        ad(
            "wasm-only",
            terms={"engines": ["wasm"]},
            executors={"wasm": ExecutorState(True), "docker": ExecutorState(True)},
        ),
        ad("picky", terms={"access": {"mode": "min_trust", "min_trust": 0.9}}),
        ad("expired-offer", valid=(0, NOW)),
    ]
    pol = MatchPolicy(trust={did("short"): 0.9, did("wasm-only"): 0.2}, requester_trust=0.5)
    d = match(job(min_trust=0.5, engine="docker"), ads, pol, now=NOW)
    assert "policy_refused: max duration 50 s < the job's 100 s" in texts(did("short"), d)
    assert texts(did("wasm-only"), d) == [
        "policy_refused: the offer does not accept engine docker",
        "trust_below_min: need 0.5, has 0.2",
    ]
    assert "policy_refused: the offer asks requester trust >= 0.9" in texts(did("picky"), d)
    assert "trust_below_min: need 0.5, has unknown" in texts(did("picky"), d)
    assert any(t.startswith("policy_refused: offer o-") for t in texts(did("expired-offer"), d))


def test_what_would_fit() -> None:
    ads = [
        ad("dear", price={"base": {"cpu_second": 12}}),
        ad("small", memory=2 * GiB),
        ad("both", memory=3 * GiB, price={"base": {"cpu_second": 20}}),
        ad("nowasm", executors={}),
    ]
    d = match(job(budget=1000), ads, now=NOW)
    assert not d.placed
    assert [s.text for s in d.what_would_fit] == [
        "raise the budget to 1,200",
        "lower memory to 2 GiB",
        "lower memory to 3 GiB and raise the budget to 2,000",
    ]
    assert d.hint is not None and d.hint.startswith("raise the budget to 1,200 or lower memory to 2 GiB")
    assert d.what_would_fit[0].changes[0].value == 1200
    # following the first suggestion does place the job on that provider
    assert match(job(budget=1200), ads, now=NOW).chosen == (did("dear"),)


def test_strategies_order_and_binpack_spread() -> None:
    ads = [
        ad("cheap-slow", bench=500.0, price={"base": {"cpu_second": 1}}, cpu=8000),
        ad("dear-fast", bench=3000.0, price={"base": {"cpu_second": 5}}, cpu=2000),
        ad("mid", bench=1000.0, price={"base": {"cpu_second": 2}}, cpu=4000),
    ]
    order = {
        s: match(job(strategy=s), ads, MatchPolicy(k=3), now=NOW).chosen
        for s in ("cheapest", "fastest", "binpack", "spread")
    }
    assert order["cheapest"] == (did("cheap-slow"), did("mid"), did("dear-fast"))
    assert order["fastest"] == (did("dear-fast"), did("mid"), did("cheap-slow"))
    assert order["binpack"] == (did("dear-fast"), did("mid"), did("cheap-slow"))  # fullest first
    assert order["spread"] == (did("cheap-slow"), did("mid"), did("dear-fast"))
    with pytest.raises(AgoraError):
        job(strategy="random")


def test_balanced_score_is_the_comparators_formula() -> None:
    ads = [
        ad("a", bench=500.0, price={"base": {"cpu_second": 1}}),
        ad("b", bench=2000.0, price={"base": {"cpu_second": 3}}),
        ad("c", bench=None),
    ]
    trust = {did("a"): 0.5, did("b"): 0.9}
    latency = {did("a"): 10.0, did("c"): 3.0}
    d = match(job(), ads, MatchPolicy(trust=trust, latency_ms=latency, k=3), now=NOW)
    machines = {
        a.provider: Capability.from_dict(
            {
                **a.free.to_dict(),
                "benchmark_score": a.benchmark_score,
                "price": a.offer.price.base.to_dict(),
                **({"trust": trust[a.provider]} if a.provider in trust else {}),
                **({"latency_ms": latency[a.provider]} if a.provider in latency else {}),
            }
        )
        for a in ads
    }
    ranked = rank(NEED, machines, Weights(), cost_seconds=100)
    assert list(d.chosen) == [r.machine_id for r in ranked]
    for r in ranked:
        v = d.verdict(r.machine_id)
        assert v.score == pytest.approx(r.score) and v.quote == r.cost
        assert {k: p.to_dict() for k, p in v.breakdown.items()} == {k: p.to_dict() for k, p in r.breakdown.items()}


def test_constraints_and_affinities() -> None:
    ads = [
        ad("eu-gold", labels={"region": "eu", "tier": "gold"}, location="eu-west"),
        ad("eu", labels={"region": "eu"}),
        ad("us", labels={"region": "us"}),
        ad("bare"),
    ]
    cons = (Constraint("labels.region", "in", ("eu", "ch")),)
    d = match(job(constraints=cons), ads, MatchPolicy(k=5), now=NOW)
    assert set(d.chosen) == {did("eu-gold"), did("eu")}
    assert texts(did("us"), d) == ["constraint_failed: need labels.region in [eu, ch], has us"]
    assert texts(did("bare"), d) == ["label_missing: need labels.region in [eu, ch], node has no region"]
    assert d.counts == {"constraint_failed": 1, "label_missing": 1}
    numeric = (Constraint("cpu", ">=", 4000), Constraint("tier", "!=", "silver"), Constraint("arch", "==", "x86_64"))
    assert len(match(job(constraints=numeric), ads, MatchPolicy(k=5), now=NOW).chosen) == 4
    aff = (Affinity("labels.tier", "==", "gold", 50), Affinity("labels.region", "==", "us", -50))
    d = match(job(affinities=aff), ads, MatchPolicy(k=5), now=NOW)
    assert d.chosen[0] == did("eu-gold") and d.chosen[-1] == did("us")
    assert d.verdict(did("eu-gold")).breakdown["affinity"].score == 0.5
    assert d.verdict(did("us")).breakdown["affinity"].score == -0.5


def test_from_spec_and_ties_break_by_did() -> None:
    spec = parse_job(
        {
            "name": "j",
            "tasks": [
                {
                    "name": "t",
                    "engine": "wasm",
                    "module": "m.wasm",
                    "resources": {"cpu": 1, "memory": "1Gi"},
                    "timeout": 30,
                }
            ],
            "placement": {"max_price": 500, "strategy": "cheapest"},
            "payment": {"budget": 800},
        }
    )
    need = JobNeed.from_spec(spec)
    assert (need.duration_s, need.limit, need.strategy, need.need.executors) == (30, 500, "cheapest", {"wasm"})
    ads = [ad(n) for n in ("zz", "aa", "mm")]
    assert match(need, ads, MatchPolicy(k=3), now=NOW).chosen == (did("aa"), did("mm"), did("zz"))
    assert match(need, list(reversed(ads)), MatchPolicy(k=3), now=NOW).chosen == (did("aa"), did("mm"), did("zz"))
    d = match(job(max_price=10), ads, now=NOW)
    assert texts(did("aa"), d) == ["over_budget: quote 100 > max_price 10"]


def test_duplicate_provider_and_bad_policy() -> None:
    with pytest.raises(AgoraError):
        match(job(), [ad("a"), ad("a", seq=2)], now=NOW)
    with pytest.raises(AgoraError):
        MatchPolicy(k=0)


def test_a_wasm_quote_is_what_the_provider_will_bid() -> None:
    """A half-core wasm task takes a whole core on the provider (`accounted`): the matching's quote (what a
    preview shows, what the budget check uses) must be the bid's price, not the half core's."""
    from agora.market import answer
    from tests.unit.wire.test_market import request

    task = {"name": "t", "engine": "wasm", "module": "m.wasm", "resources": {"cpu": "500m"}, "timeout": 60}
    need = JobNeed.from_spec(parse_job({"name": "j", "tasks": [task]}))
    assert need.need.cpu_millis == 1000
    cheap = ad("aa")
    [verdict] = match(need, [cheap], now=NOW).candidates
    raw = Capability(cpu_millis=500, memory_bytes=need.need.memory_bytes, executors=frozenset({"wasm"}))
    bid = answer(
        cheap.offer,
        cheap.free,
        request(offer_id=cheap.offer.offer_id, need=raw, duration_s=60, max_price=None),
        requester_trust=None,
        draining=False,
        now=100,
    )
    assert not isinstance(bid, tuple) and verdict.quote == bid.price


@pytest.mark.parametrize("budget", [None, 1000])
def test_an_ad_priced_to_overflow_is_refused_and_its_quote_not_kept(budget: int | None) -> None:
    """A provider's ad whose price makes a quote larger than any amount (a dishonest provider's price of
    2**62 per core-second) is rejected, with or without a budget, and the decision stays storable: a requester's
    node keeps every candidate's quote in its job record, and one 2**70 there failed every market job."""
    from agora.market.fastmatch import match_table
    from agora.market.table import CandidateTable
    from agora.models.capability import MAX_MINOR_UNITS
    from agora.store.validation import encode_doc

    ads = [ad("greedy", price={"base": {"cpu_second": MAX_MINOR_UNITS}}), ad("fair")]
    for d in (
        match(job(budget=budget), ads, MatchPolicy(), now=NOW),
        match_table(job(budget=budget), CandidateTable(ads), MatchPolicy(), now=NOW),
    ):
        assert d.chosen == (did("fair"),)
        greedy = d.verdict(did("greedy"))
        assert not greedy.ok and greedy.codes == ["over_budget"] and greedy.quote is None
        assert texts(did("greedy"), d) == [f"over_budget: quote above {MAX_MINOR_UNITS:,}, more than any amount can be"]
        assert d.what_would_fit == ()  # no budget pays it
        encode_doc({"decision": d.to_dict()})  # the job record keeps it: every integer within 64 bits
