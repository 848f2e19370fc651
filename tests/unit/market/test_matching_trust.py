"""Matching with the requester's trust: a provider cooling down is excluded with `provider_cooling_down`
(not relaxable by the requester), the prior (`default_trust`) stands for providers with no evidence in
`min_trust` and in the soft score."""

from __future__ import annotations

from agora.market import JobNeed, MatchPolicy, match
from agora.models.capability import Capability, GiB
from tests.unit.market.ads import NOW, ad, did

NEED = Capability(cpu_millis=1000, memory_bytes=1 * GiB)


def job(**kw: object) -> JobNeed:
    return JobNeed(need=NEED, engine="wasm", duration_s=100, requester=did("req"), **kw)  # type: ignore[arg-type]


def test_a_provider_cooling_down_is_rejected_until_its_time_then_passes() -> None:
    ads = [ad("flaky"), ad("steady")]
    pol = MatchPolicy(cooling_down={did("flaky"): NOW + 60})
    d = match(job(), ads, pol, now=NOW)
    assert d.chosen == (did("steady"),)
    [reason] = d.verdict(did("flaky")).reasons
    assert reason.code == "provider_cooling_down" and reason.need == NOW + 60
    assert reason.text.startswith("provider_cooling_down: until 1970-01-01T02:47:40Z (60 s)")
    assert d.counts == {"provider_cooling_down": 1}
    assert d.what_would_fit == ()  # nothing the requester can change
    later = match(job(), ads, pol, now=NOW + 60)
    assert set(later.chosen) == {did("flaky"), did("steady")}


def test_the_prior_stands_for_unknown_providers_in_min_trust_and_in_the_score() -> None:
    ads = [ad("newcomer"), ad("bad"), ad("good")]
    trust = {did("bad"): 0.3, did("good"): 0.8}
    without_prior = match(job(min_trust=0.4), ads, MatchPolicy(trust=trust), now=NOW)
    assert without_prior.chosen == (did("good"),)  # unknown trust never passes a min_trust
    pol = MatchPolicy(trust=trust, default_trust=0.5)
    d = match(job(min_trust=0.4), ads, pol, now=NOW)
    assert d.chosen == (did("good"), did("newcomer"))  # the newcomer gets work, after the good record
    assert d.verdict(did("newcomer")).breakdown["trust"].value == 0.5
    assert [r.text for r in d.verdict(did("bad")).reasons] == ["trust_below_min: need 0.4, has 0.3"]
    # with no min_trust every one passes, ordered by trust (all else equal)
    assert match(job(), ads, pol, now=NOW).chosen == (did("good"), did("newcomer"), did("bad"))
