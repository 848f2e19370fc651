"""Matching with a job's `placement.min_stake`: a provider whose stake at the hub (`policy.stakes`) is below it,
or unknown, is rejected with `stake_below_min`; without a min_stake stake plays no part."""

from __future__ import annotations

from agora.market import JobNeed, MatchPolicy, match
from agora.models.capability import Capability, GiB
from tests.unit.market.ads import NOW, ad, did

NEED = Capability(cpu_millis=1000, memory_bytes=1 * GiB)


def job(**kw: object) -> JobNeed:
    return JobNeed(need=NEED, engine="wasm", duration_s=100, requester=did("req"), **kw)  # type: ignore[arg-type]


def test_providers_below_the_minimum_stake_or_unknown_are_rejected_with_the_amounts() -> None:
    ads = [ad("rich"), ad("poor"), ad("stranger")]
    pol = MatchPolicy(stakes={did("rich"): 5000, did("poor"): 200})
    d = match(job(min_stake=1000), ads, pol, now=NOW)
    assert d.chosen == (did("rich"),)
    assert [r.text for r in d.verdict(did("poor")).reasons] == ["stake_below_min: need 1,000, has 200"]
    [unknown] = d.verdict(did("stranger")).reasons
    assert (unknown.code, unknown.need, unknown.have) == ("stake_below_min", 1000, None)
    assert unknown.text == "stake_below_min: need 1,000, has unknown"
    assert d.counts == {"stake_below_min": 2}
    exact = match(job(min_stake=200), ads, pol, now=NOW)
    assert set(exact.chosen) == {did("rich"), did("poor")}
    assert set(match(job(), ads, MatchPolicy(), now=NOW).chosen) == {did(n) for n in ("rich", "poor", "stranger")}
