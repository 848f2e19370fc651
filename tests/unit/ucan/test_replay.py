"""The replay cache: remembers until exp + skew, bounded, and fails closed when full."""

from __future__ import annotations

import pytest

from agora.codec import CID
from agora.errors import AgoraError
from agora.ucan import MAX_LIFETIME, ReplayCache, ReplayShare, token_cid

NOW = 1_000_000


def cid(n: int) -> CID:
    return token_cid(n.to_bytes(4, "big"))


def _code(cache: ReplayCache, c: CID, exp: int | None, now: float, **kw: float) -> str:
    with pytest.raises(AgoraError) as err:
        cache.check_and_remember(c, exp, now, **kw)
    return err.value.code


def test_second_sighting_is_a_replay_until_exp_plus_skew() -> None:
    cache = ReplayCache(skew=60)
    cache.check_and_remember(cid(1), NOW + 10, NOW)
    assert cid(1) in cache
    assert _code(cache, cid(1), NOW + 10, NOW + 5) == "ucan_replayed"
    assert _code(cache, cid(1), NOW + 10, NOW + 70) == "ucan_replayed"  # exp + skew, inclusive
    cache.check_and_remember(cid(1), NOW + 10, NOW + 71)  # forgotten: the validator rejects it as expired anyway
    cache.check_and_remember(cid(2), NOW + 10, NOW)


def test_explicit_skew_overrides_the_default() -> None:
    cache = ReplayCache(skew=0)
    cache.check_and_remember(cid(1), NOW, NOW, skew=120)
    assert _code(cache, cid(1), NOW, NOW + 100) == "ucan_replayed"


def test_expired_entries_are_evicted() -> None:
    cache = ReplayCache(max_entries=10, skew=0)
    for i in range(10):
        cache.check_and_remember(cid(i), NOW + i, NOW)
    assert len(cache) == 10
    assert cache.purge(NOW + 4.5) == 5
    assert cid(3) not in cache and cid(7) in cache


def test_full_cache_refuses_instead_of_forgetting() -> None:
    cache = ReplayCache(max_entries=3, skew=0)
    for i in range(3):
        cache.check_and_remember(cid(i), NOW + 100, NOW)
    err = _code(cache, cid(9), NOW + 100, NOW)
    assert err == "ucan_replay_cache_full"
    assert all(cid(i) in cache for i in range(3))  # nothing live was dropped
    assert _code(cache, cid(0), NOW + 100, NOW + 1) == "ucan_replayed"
    cache.check_and_remember(cid(9), NOW + 300, NOW + 101)  # once entries expire there is room again
    assert len(cache) == 1


def test_lifetime_limits() -> None:
    cache = ReplayCache(max_lifetime=600)
    assert _code(cache, cid(1), None, NOW) == "ucan_lifetime_invalid"
    assert _code(cache, cid(1), NOW + 601, NOW) == "ucan_lifetime_invalid"
    cache.check_and_remember(cid(1), NOW + 600, NOW)
    assert AgoraError("ucan_lifetime_invalid", "x").http_status == 400


def test_bad_configuration() -> None:
    for kw in ({"max_entries": 0}, {"max_lifetime": 0}, {"skew": -1}):
        with pytest.raises(ValueError):
            ReplayCache(**kw)


SHARES = {"granted": ReplayShare(max_entries=10, per_issuer=4), "public": ReplayShare(max_entries=5, per_issuer=2)}


def test_a_full_share_refuses_only_its_own_class() -> None:
    cache = ReplayCache(max_entries=100, skew=0, shares=SHARES)
    for i in range(5):
        cache.check_and_remember(cid(i), NOW + 100, NOW, share="public", issuer=f"did:key:z{i}")
    with pytest.raises(AgoraError) as err:
        cache.check_and_remember(cid(99), NOW + 100, NOW, share="public", issuer="did:key:zfresh")
    assert err.value.code == "ucan_replay_cache_full" and err.value.details["share"] == "public"
    cache.check_and_remember(cid(100), NOW + 100, NOW, share="granted", issuer="did:key:zgranted")
    assert cache.share_size("public") == 5 and cache.share_size("granted") == 1
    cache.check_and_remember(cid(99), NOW + 300, NOW + 101, share="public", issuer="did:key:zfresh")  # drained
    assert cache.share_size("public") == 1


def test_an_issuer_over_its_quota_is_refused_alone() -> None:
    cache = ReplayCache(max_entries=100, skew=0, shares=SHARES)
    for i in range(4):
        cache.check_and_remember(cid(i), NOW + 10, NOW, share="granted", issuer="did:key:zgreedy")
    with pytest.raises(AgoraError) as err:
        cache.check_and_remember(cid(50), NOW + 10, NOW, share="granted", issuer="did:key:zgreedy")
    assert err.value.code == "rate_limited" and err.value.details["issuer"] == "did:key:zgreedy"
    assert cid(50) not in cache
    cache.check_and_remember(cid(51), NOW + 10, NOW, share="granted", issuer="did:key:zother")
    assert cache.issuer_entries("granted", "did:key:zgreedy") == 4
    assert cache.purge(NOW + 11) == 0
    assert cache.issuer_entries("granted", "did:key:zgreedy") == 0 and cache.share_size("granted") == 0
    cache.check_and_remember(cid(50), NOW + 20, NOW + 11, share="granted", issuer="did:key:zgreedy")


def test_a_replay_is_a_replay_whatever_share_it_claims() -> None:
    cache = ReplayCache(skew=0, shares=SHARES)
    cache.check_and_remember(cid(1), NOW + 10, NOW, share="granted", issuer="did:key:za")
    assert _code(cache, cid(1), NOW + 10, NOW) == "ucan_replayed"
    with pytest.raises(AgoraError) as err:
        cache.check_and_remember(cid(1), NOW + 10, NOW, share="public", issuer="did:key:zb")
    assert err.value.code == "ucan_replayed"


def test_forget_gives_the_entry_and_its_quota_back() -> None:
    cache = ReplayCache(skew=0, shares=SHARES)
    cache.check_and_remember(cid(1), NOW + 10, NOW, share="public", issuer="did:key:za")
    assert cache.forget(cid(1)) and not cache.forget(cid(1))
    assert cid(1) not in cache and cache.share_size("public") == 0
    assert cache.issuer_entries("public", "did:key:za") == 0
    cache.check_and_remember(cid(1), NOW + 10, NOW, share="public", issuer="did:key:za")
    assert cache.purge(NOW + 11) == 0  # the stale heap slot of the forgotten entry is harmless


def test_a_shorter_lifetime_for_one_class() -> None:
    cache = ReplayCache(max_lifetime=600, shares=SHARES)
    assert _code(cache, cid(1), NOW + 121, NOW, max_lifetime=120) == "ucan_lifetime_invalid"
    cache.check_and_remember(cid(1), NOW + 120, NOW, max_lifetime=120)
    assert _code(cache, cid(2), NOW + 601, NOW, max_lifetime=900) == "ucan_lifetime_invalid"  # never longer


def test_the_longest_lifetime_is_600_s_by_default() -> None:
    assert MAX_LIFETIME == 600
    cache = ReplayCache()
    assert _code(cache, cid(1), NOW + 601, NOW) == "ucan_lifetime_invalid"
    cache.check_and_remember(cid(1), NOW + 600, NOW)


def test_unknown_share_and_bad_shares() -> None:
    with pytest.raises(ValueError):
        ReplayCache(shares=SHARES).check_and_remember(cid(1), NOW + 1, NOW, share="nope")
    with pytest.raises(ValueError):
        ReplayShare(max_entries=0, per_issuer=1)
