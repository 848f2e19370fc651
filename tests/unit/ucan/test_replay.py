"""The replay cache: remembers until exp + skew, bounded, and fails closed when full."""

from __future__ import annotations

import pytest

from agora.codec import CID
from agora.errors import AgoraError
from agora.ucan import ReplayCache, token_cid

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
