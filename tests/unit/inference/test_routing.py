"""Routing: strategies, request-level controls, fallback that never loops on a provider."""

from __future__ import annotations

import pytest

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.inference.routing import (
    Candidate,
    ProviderStats,
    RoutingPolicy,
    candidates_from_ads,
    fallback,
    plan,
    with_own_ad,
)
from agora.models.capability import Capability, GiB
from agora.wire.market import CapacityAd, ExecutorState
from agora.wire.model_offer import ModelOffer
from tests.unit.market.ads import offer


def cand(p: str, pin: int, pout: int, tps: float | None = None, ttft: float | None = None) -> Candidate:
    return Candidate(p, ModelOffer("m", "chat", 1000, pin, pout), ProviderStats(tokens_per_s=tps, ttft_s=ttft))


CANDS = [cand("a", 30, 30, tps=50), cand("b", 10, 10, tps=10), cand("c", 20, 20, tps=100), cand("d", 5, 5)]


def order(policy: RoutingPolicy, **kw: object) -> list[str]:
    return [c.provider for c in plan(CANDS, policy, 1000, 1000, **kw)]  # type: ignore[arg-type]


def test_strategies_order_candidates() -> None:
    assert order(RoutingPolicy("cheapest")) == ["d", "b", "c", "a"]
    assert order(RoutingPolicy("fastest")) == ["c", "a", "b", "d"]  # unmeasured last
    assert order(RoutingPolicy("balanced"))[0] == "c"  # 2nd cheapest + fastest
    assert order(RoutingPolicy("pinned", order=("b", "a"))) == ["b", "a"]


def test_controls_order_only_ignore_max_price_allow_fallbacks() -> None:
    assert order(RoutingPolicy("cheapest", order=("a",))) == ["a", "d", "b", "c"]
    assert order(RoutingPolicy("cheapest", only=("a", "c"))) == ["c", "a"]
    assert order(RoutingPolicy("cheapest", ignore=("d",))) == ["b", "c", "a"]
    assert order(RoutingPolicy("cheapest", max_price=40)) == ["d", "b", "c"]  # a: 60 > 40
    assert order(RoutingPolicy("cheapest", allow_fallbacks=False)) == ["d"]


def test_cooling_providers_only_when_nothing_else() -> None:
    assert order(RoutingPolicy("cheapest"), cooling=lambda p: p in ("d", "b")) == ["c", "a"]
    assert order(RoutingPolicy("cheapest", only=("d",)), cooling=lambda p: True) == ["d"]


def test_bad_policies() -> None:
    with pytest.raises(AgoraError):
        RoutingPolicy("random")
    with pytest.raises(AgoraError):
        RoutingPolicy("pinned")
    with pytest.raises(AgoraError):
        RoutingPolicy(max_price=-1)


async def test_fallback_tries_each_provider_once_on_retryable_failures() -> None:
    calls: list[str] = []
    failures: list[tuple[str, str]] = []
    codes = {"d": "inference_rate_limited", "b": "runner_failed", "c": "timeout"}

    async def call(c: Candidate) -> str:
        calls.append(c.provider)
        if c.provider in codes:
            raise AgoraError(codes[c.provider], "x")
        return c.provider

    async def on_failure(c: Candidate, e: AgoraError) -> None:
        failures.append((c.provider, e.code))

    got = await fallback(plan(CANDS, RoutingPolicy("cheapest"), 1000, 1000), call, on_failure=on_failure)
    assert got == "a" and calls == ["d", "b", "c", "a"]
    assert failures == [("d", "inference_rate_limited"), ("b", "runner_failed"), ("c", "timeout")]


async def test_fallback_all_fail_is_no_provider_and_request_faults_stop_at_once() -> None:
    calls: list[str] = []

    async def down(c: Candidate) -> str:
        calls.append(c.provider)
        raise AgoraError("model_not_found", "gone")

    with pytest.raises(AgoraError) as ei:
        await fallback(CANDS, down, model="m")
    assert ei.value.code == "no_provider" and len(ei.value.details["attempts"]) == 4 and calls == list("abcd")

    async def too_big(c: Candidate) -> str:
        raise AgoraError("context_exceeded", "too big")

    with pytest.raises(AgoraError) as ei:
        await fallback(CANDS, too_big)
    assert ei.value.code == "context_exceeded"
    with pytest.raises(AgoraError) as ei:
        await fallback([], too_big, model="m")
    assert ei.value.code == "model_not_found"


def test_candidates_from_ads_reads_model_offers_of_live_ads() -> None:
    kps = [Keypair.generate() for _ in range(3)]

    def ad(kp: Keypair, models: tuple[ModelOffer, ...], iat: int) -> CapacityAd:
        return CapacityAd.issue(
            kp,
            seq=1,
            iat=iat,
            ttl_s=100,
            offer=offer(kp.did),
            free=Capability(cpu_millis=1000, memory_bytes=GiB),
            executors={"wasm": ExecutorState(True)},
            benchmark_score=None,
            version="0",
            models=models,
        )

    m = ModelOffer("m", "chat", 100, 1, 1)
    ads = [ad(kps[0], (m,), 1000), ad(kps[1], (ModelOffer("other", "chat", 100, 1, 1),), 1000), ad(kps[2], (m,), 0)]
    got = candidates_from_ads(ads, "m", now=1050)
    assert [c.provider for c in got] == [kps[0].did]  # kps[2]'s ad expired at 100


def _ad(kp: Keypair, seq: int, models: tuple[ModelOffer, ...]) -> CapacityAd:
    return CapacityAd.issue(
        kp,
        seq=seq,
        iat=1000,
        ttl_s=100,
        offer=offer(kp.did),
        free=Capability(cpu_millis=1000, memory_bytes=GiB),
        executors={"wasm": ExecutorState(True)},
        benchmark_score=None,
        version="0",
        models=models,
    )


def test_a_node_sees_its_own_newest_ad_whatever_the_index_showed() -> None:
    me, other = Keypair.generate(), Keypair.generate()
    m = ModelOffer("m", "chat", 100, 1, 1)
    theirs = _ad(other, 4, (m,))
    own = _ad(me, 3, (m,))
    # the index read missed this node's key (or read it before the publish): the own ad fills in
    assert {a.provider: a.seq for a in with_own_ad([theirs], own)} == {other.did: 4, me.did: 3}
    assert [c.provider for c in candidates_from_ads(with_own_ad([theirs], own), "m", 1050)] == sorted(
        [me.did, other.did]
    )
    # an older ad of this node in the index (before `model add`) is replaced by the one just published
    old = _ad(me, 2, ())
    assert [a.seq for a in with_own_ad([old, theirs], own) if a.provider == me.did] == [3]
    # an index entry at least as new as what this node last published stays as it is
    newer = _ad(me, 5, ())
    assert [a for a in with_own_ad([newer, theirs], own) if a.provider == me.did] == [newer]
    # nothing published (no active offer): the index's view unchanged
    assert with_own_ad([old, theirs], None) == [old, theirs]
