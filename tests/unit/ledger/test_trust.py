"""Pure trust scoring (`agora.ledger.trust`): the score's properties, decay toward the prior, the penalty's
cooldown that grows with repeat offences and is forgiven after a clean period."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.errors import AgoraError
from agora.ledger.trust import KINDS, Evidence, TrustSettings, decay, ewma, penalty, report

P = "did:key:z6MkProviderA"
Q = "did:key:z6MkProviderB"
NOW = 1_700_000_000.0
S = TrustSettings()
HOUR = 3600.0


def ev(kind: str, at: float, n: int = 0, provider: str = P) -> Evidence:
    return Evidence(provider, kind, at, {"job": f"job-{n}", "unit": f"u#{at}"})


records_st = st.lists(
    st.tuples(st.sampled_from(sorted(KINDS)), st.floats(min_value=0, max_value=90 * 86400)),
    max_size=40,
).map(lambda xs: [ev(k, NOW - age, i) for i, (k, age) in enumerate(xs)])


def test_a_provider_with_no_evidence_scores_the_prior_and_is_admitted() -> None:
    r = report(P, [], NOW, S)
    assert r.score == S.prior == 0.5
    assert not r.known and r.penalty.cooling_until is None
    assert r.to_dict(NOW)["counts"] == {}


def test_one_success_puts_a_provider_above_a_newcomer_and_one_failure_below() -> None:
    up = report(P, [ev("success", NOW)], NOW, S).score
    down = report(P, [ev("failure", NOW)], NOW, S).score
    assert down < S.prior < up
    assert up == pytest.approx(2 / 3) and down == pytest.approx(1 / 3)


def test_the_breakdown_counts_kinds_and_their_decayed_weights() -> None:
    recs = [
        ev("success", NOW - S.half_life_s, 1),
        ev("success", NOW, 2),
        ev("dispute", NOW, 3),
        ev("success", NOW, 0, Q),
    ]
    r = report(P, recs, NOW, S)
    assert r.counts == {"dispute": 1, "success": 2}
    assert r.weights["success"] == pytest.approx(1.5)  # one at full weight, one a half-life old
    assert r.weights["dispute"] == pytest.approx(2.0)
    assert r.good == pytest.approx(1.5) and r.bad == pytest.approx(2.0)
    assert r.score == pytest.approx((1 + 1.5) / (2 + 1.5 + 2.0))
    assert r.last_at == NOW


@settings(max_examples=200, deadline=None)
@given(records_st, st.floats(min_value=0, max_value=365 * 86400))
def test_the_score_stays_in_0_1(records: list[Evidence], later: float) -> None:
    for at in (NOW, NOW + later):
        assert 0.0 <= report(P, records, at, S).score <= 1.0


@settings(max_examples=200, deadline=None)
@given(records_st, st.floats(min_value=0, max_value=30 * 86400), st.integers(min_value=1, max_value=5))
def test_more_successes_never_lower_the_score(records: list[Evidence], age: float, n: int) -> None:
    before = report(P, records, NOW, S).score
    more = records + [ev("success", NOW - age, 1000 + i) for i in range(n)]
    assert report(P, more, NOW, S).score >= before - 1e-12


@settings(max_examples=200, deadline=None)
@given(records_st, st.sampled_from([k for k, (good, _) in KINDS.items() if not good]))
def test_a_bad_record_never_raises_the_score(records: list[Evidence], kind: str) -> None:
    before = report(P, records, NOW, S).score
    assert report(P, [*records, ev(kind, NOW, 5000)], NOW, S).score <= before + 1e-12


@settings(max_examples=200, deadline=None)
@given(records_st, st.floats(min_value=0, max_value=60 * 86400), st.floats(min_value=0, max_value=60 * 86400))
def test_decay_moves_the_score_toward_the_prior(records: list[Evidence], dt1: float, dt2: float) -> None:
    t1 = NOW + dt1
    t2 = t1 + dt2
    d1 = abs(report(P, records, t1, S).score - S.prior)
    d2 = abs(report(P, records, t2, S).score - S.prior)
    assert d2 <= d1 + 1e-12
    # and same side of the prior: decay never flips a good provider into a bad one
    s1, s2 = report(P, records, t1, S).score - S.prior, report(P, records, t2, S).score - S.prior
    assert s1 * s2 >= -1e-18


def test_after_many_half_lives_the_score_is_the_prior_again() -> None:
    recs = [ev("failure", NOW, i) for i in range(10)]
    assert report(P, recs, NOW, S).score < 0.2
    assert report(P, recs, NOW + 40 * S.half_life_s, S).score == pytest.approx(S.prior, abs=1e-6)
    assert decay(S.half_life_s, S.half_life_s) == pytest.approx(0.5)


def test_n_failures_within_the_window_cool_the_provider_down_then_it_is_readmitted() -> None:
    recs = [ev("failure", NOW, 1), ev("timeout", NOW + 10, 2)]
    assert penalty(recs, NOW + 20, S).cooling_until is None
    assert penalty(recs, NOW + 20, S).recent_failures == 2
    recs.append(ev("award_not_started", NOW + 20, 3))
    p = penalty(recs, NOW + 21, S)
    assert p.cooling_until == NOW + 20 + S.cooldown_s and p.offences == 1 and p.cooling(NOW + 21)
    assert penalty(recs, NOW + 20 + S.cooldown_s, S).cooling_until is None  # readmitted on schedule


def test_failures_spread_wider_than_the_window_do_not_cool_and_late_or_disputes_never_count() -> None:
    spread = [ev("failure", NOW + i * (S.penalty_window_s + 1), i) for i in range(5)]
    assert penalty(spread, NOW + 10_000, S).offences == 0
    soft = [ev("late", NOW + i, i) for i in range(10)] + [ev("dispute", NOW + 20 + i, 20 + i) for i in range(5)]
    assert penalty(soft, NOW + 30, S).cooling_until is None


def test_each_repeat_offence_cools_longer_up_to_the_cap_and_a_clean_period_forgives() -> None:
    s = TrustSettings(cooldown_s=100, cooldown_factor=2, cooldown_max_s=350, forgive_after_s=10_000)
    t, n, lengths = NOW, 0, []
    recs: list[Evidence] = []
    for _ in range(4):
        for _ in range(3):
            n += 1
            recs.append(ev("failure", t, n))
            t += 1
        p = penalty(recs, t, s)
        assert p.cooling_until is not None
        lengths.append(p.cooling_until - (t - 1))
        t = p.cooling_until + 1  # readmitted; fails again at once
    assert lengths == [100, 200, 350, 350]
    assert penalty(recs, t, s).offences == 4
    # clean for forgive_after_s after the last cooldown: the next offence is a first one again
    t += s.forgive_after_s
    assert penalty(recs, t, s).offences == 0
    for i in range(3):
        recs.append(ev("failure", t + i, 100 + i))
    p = penalty(recs, t + 3, s)
    assert p.offences == 1 and p.cooling_until == t + 2 + 100


def test_failures_of_work_already_running_while_cooling_are_not_a_new_offence() -> None:
    recs = [ev("failure", NOW + i, i) for i in range(3)]
    recs += [ev("failure", NOW + 5 + i, 10 + i) for i in range(3)]  # inside the cooldown
    p = penalty(recs, NOW + 10, S)
    assert p.offences == 1 and p.cooling_until == NOW + 2 + S.cooldown_s


@settings(max_examples=100, deadline=None)
@given(records_st, st.floats(min_value=0, max_value=10 * 86400))
def test_a_penalty_never_lasts_longer_than_the_cap(records: list[Evidence], dt: float) -> None:
    p = penalty(records, NOW + dt, S)
    if p.cooling_until is not None:
        assert NOW + dt < p.cooling_until <= NOW + dt + S.cooldown_max_s


def test_evidence_cites_what_it_comes_from_and_is_identified_by_it() -> None:
    a = Evidence(P, "success", NOW, {"receipt": "bafy1", "job": "j"})
    b = Evidence(P, "success", NOW + 5, {"job": "j", "receipt": "bafy1"})
    assert a.id == b.id  # the same receipt: the same record, whenever it is recorded
    assert Evidence.from_dict(a.to_dict()) == a
    assert a.id != Evidence(P, "success", NOW, {"receipt": "bafy2", "job": "j"}).id
    for bad in (
        lambda: Evidence(P, "success", NOW, {}),
        lambda: Evidence(P, "great", NOW, {"job": "j"}),
        lambda: Evidence(P, "success", NOW, {"gossip": "x"}),
        lambda: Evidence("someone", "success", NOW, {"job": "j"}),
    ):
        with pytest.raises(AgoraError):
            bad()


def test_settings_are_checked_and_the_latency_ewma_weights_new_samples() -> None:
    for bad in ({"prior": 0.0}, {"prior": 1.0}, {"half_life_s": 0}, {"penalty_failures": 0}, {"latency_alpha": 0}):
        with pytest.raises(AgoraError):
            TrustSettings(**bad)  # type: ignore[arg-type]
    assert ewma(None, 40.0, 0.3) == 40.0
    assert ewma(40.0, 140.0, 0.3) == pytest.approx(70.0)
