"""No caller, known or unknown, can deny service to the others (replay-cache shares, quotas, rate limits)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from agora.actor import Actor, AdmissionSettings, CallContext, Runtime, behavior
from agora.actor.limits import LimitLog, RateLimiter
from agora.clock import ManualClock
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.transport import MemoryNetwork, MemoryTransport
from agora.ucan import Delegation, delegate, invoke
from agora.wire import Receipt, Request

SMALL = AdmissionSettings(
    granted_entries=400,
    granted_per_issuer=300,
    public_entries=200,
    public_per_issuer=20,
    public_rate=5.0,
    public_burst=10.0,
    rate_issuers=1000,
)


class Service(Actor):
    def __init__(self) -> None:
        self.work = 0
        self.pings = 0

    @behavior("/agora/test/work")
    async def do_work(self, ctx: CallContext) -> Any:
        self.work += 1
        return {"n": self.work}

    @behavior("/agora/test/ping", public=True, mutating=False)
    async def ping(self, ctx: CallContext) -> Any:
        self.pings += 1
        return {"pong": True}


@dataclass
class Net:
    net: MemoryNetwork
    clock: ManualClock
    server: Runtime
    service: Service
    node: Keypair
    transports: list[MemoryTransport]

    async def runtime(self, key: Keypair | None = None) -> Runtime:
        key = key or Keypair.generate()
        t = MemoryTransport(self.net, key.did)
        await t.start()
        self.transports.append(t)
        return Runtime(key, t, clock=self.clock)

    def grant(self, to: Runtime) -> Delegation:
        exp = int(self.clock.now()) + 86400
        return delegate(self.node, aud=to.did, sub=self.node.did, cmd="/agora/test", exp=exp)


@pytest.fixture
async def world() -> AsyncIterator[Net]:
    net, clock, node = MemoryNetwork(), ManualClock(start=1_800_000_000), Keypair.generate()
    t = MemoryTransport(net, node.did)
    await t.start()
    server = Runtime(node, t, clock=clock, limits=SMALL)
    service = Service()
    server.register(service)
    await server.start()
    w = Net(net, clock, server, service, node, [t])
    yield w
    for tr in reversed(w.transports):
        await tr.close()


def _code(reply: bytes) -> str | None:
    receipt = Receipt.decode(reply)
    return receipt.error.code if receipt.error is not None else None


async def test_a_flood_of_fresh_keys_cannot_starve_a_granted_peer(world: Net) -> None:
    friend = await world.runtime()
    proof = world.grant(friend)
    codes: dict[str | None, int] = {}
    for round_ in range(15):  # 15 rounds of 200 fresh keys: 3,000 pings, 15 times the public share
        for _ in range(200):
            stranger = Keypair.generate()
            inv = invoke(
                stranger,
                sub=stranger.did,
                aud=world.server.did,
                cmd="/agora/test/ping",
                args={},
                exp=int(world.clock.now()) + 60,
                iat=int(world.clock.now()),
            )
            code = _code(await world.server.handle(Request(inv, ()).encode()))
            codes[code] = codes.get(code, 0) + 1
        # between rounds the granted peer keeps working, with no error at all
        for _ in range(3):
            reply = await friend.call(world.server.did, "/agora/test/work", {}, proofs=[proof])
            assert reply["n"] == world.service.work
        world.clock.advance(1 if round_ % 5 else 0)
    assert codes.get("ucan_replay_cache_full", 0) >= 2000, codes  # the flood hit the public share's bound
    assert codes.get(None, 0) == SMALL.public_entries  # and got exactly that share, no more
    assert world.service.work == 45
    assert len(world.server.replay) <= SMALL.public_entries + 45
    health = world.server.health()
    assert health["degraded"] and "replay_share_full" in health["degraded"][0] and "public" in health["degraded"][0]
    assert health["limits"]["replay_share_full"]["refused"] == codes["ucan_replay_cache_full"]
    # once the flood's entries expire (60 s + skew), strangers are served again
    world.clock.advance(60 + 60 + 1)
    stranger = await world.runtime()
    assert (await stranger.call(world.server.did, "/agora/test/ping", {}))["pong"] is True
    world.clock.advance(SMALL.report_window + 1)
    assert world.server.health()["degraded"] == []


async def test_one_issuer_is_rate_limited_alone(world: Net) -> None:
    noisy, quiet = await world.runtime(), await world.runtime()
    codes = [_code((await noisy.call_receipt(world.server.did, "/agora/test/ping", {})).raw) for _ in range(30)]
    assert codes[: int(SMALL.public_burst)] == [None] * int(SMALL.public_burst)
    assert set(codes[int(SMALL.public_burst) :]) == {"rate_limited"}
    assert (await quiet.call(world.server.did, "/agora/test/ping", {}))["pong"] is True
    health = world.server.health()
    assert health["limits"]["public_rate"]["refused"] == 30 - int(SMALL.public_burst)
    assert health["degraded"] == []  # only the offender was refused: the node serves everyone else
    world.clock.advance(1.0)  # the bucket refills at public_rate a second
    assert (await noisy.call(world.server.did, "/agora/test/ping", {}))["pong"] is True


async def test_a_rate_limited_caller_is_told_when_to_come_back(world: Net) -> None:
    noisy = await world.runtime()
    for _ in range(int(SMALL.public_burst)):
        await noisy.call(world.server.did, "/agora/test/ping", {})
    with pytest.raises(AgoraError) as refused:
        await noisy.call(world.server.did, "/agora/test/ping", {})
    assert refused.value.code == "rate_limited"
    wait = refused.value.details["retry_after_s"]
    assert wait == pytest.approx(1 / SMALL.public_rate, abs=0.01)  # one token's refill
    world.clock.advance(wait)
    assert (await noisy.call(world.server.did, "/agora/test/ping", {}))["pong"] is True


async def test_a_granted_peer_over_its_quota_is_refused_alone(world: Net) -> None:
    greedy, other = await world.runtime(), await world.runtime()
    g_proof, o_proof = world.grant(greedy), world.grant(other)
    codes = [
        _code((await greedy.call_receipt(world.server.did, "/agora/test/work", {}, proofs=[g_proof])).raw)
        for _ in range(SMALL.granted_per_issuer + 5)
    ]
    assert codes.count(None) == SMALL.granted_per_issuer and codes.count("rate_limited") == 5
    assert (await other.call(world.server.did, "/agora/test/work", {}, proofs=[o_proof]))["n"] == 301
    assert world.server.health()["degraded"] == []


async def test_a_granted_peer_cannot_escape_its_quota_by_delegating_to_fresh_keys(world: Net) -> None:
    """The quota belongs to the principal the node granted (the audience of the chain's root), not to
    whoever signs the invocation: a grantee that re-delegates to fresh keys of its own, one invocation
    each, still gets `granted_per_issuer` entries in all and cannot fill the share of the others."""
    greedy, other = await world.runtime(), await world.runtime()
    g_proof, o_proof = world.grant(greedy), world.grant(other)
    codes: list[str | None] = []
    for _ in range(SMALL.granted_entries + 10):  # enough fresh keys to fill the whole granted share
        puppet = await world.runtime()
        exp = int(world.clock.now()) + 3600
        hop = delegate(greedy.keypair, aud=puppet.did, sub=world.node.did, cmd="/agora/test", exp=exp)
        receipt = await puppet.call_receipt(world.server.did, "/agora/test/work", {}, proofs=[g_proof, hop])
        codes.append(_code(receipt.raw))
    assert codes.count(None) == SMALL.granted_per_issuer, {c: codes.count(c) for c in set(codes)}
    assert set(codes) == {None, "rate_limited"}
    assert world.server.replay.issuer_entries("granted", greedy.did) == SMALL.granted_per_issuer
    # the other granted peer is served, and no shared limit was hit
    assert (await other.call(world.server.did, "/agora/test/work", {}, proofs=[o_proof]))["n"] == 301
    assert world.server.health()["degraded"] == []


async def test_public_invocations_must_be_short_lived(world: Net) -> None:
    caller = await world.runtime()
    now = int(world.clock.now())
    inv = invoke(
        caller.keypair, sub=caller.did, aud=world.server.did, cmd="/agora/test/ping", args={}, exp=now + 300, iat=now
    )
    receipt = Receipt.decode(await world.server.handle(Request(inv, ()).encode()))
    assert receipt.error is not None and receipt.error.code == "ucan_lifetime_invalid"
    assert receipt.error.details["max_lifetime_s"] == SMALL.public_max_lifetime
    # a protected call may live up to the longest lifetime (agora sends 300 s)
    proof = world.grant(caller)
    assert (await caller.call(world.server.did, "/agora/test/work", {}, proofs=[proof]))["n"] == 1
    # and agora's own public calls fit
    request = caller.build_request(world.server.did, "/agora/test/ping", {})
    assert request.invocation.exp is not None and request.invocation.exp - now <= SMALL.public_max_lifetime


async def test_a_known_issuer_uses_the_granted_share_for_public_calls(world: Net) -> None:
    friend = await world.runtime()
    await friend.call(world.server.did, "/agora/test/work", {}, proofs=[world.grant(friend)])
    before = world.server.replay.share_size("public")
    await friend.call(world.server.did, "/agora/test/ping", {})
    assert world.server.replay.share_size("public") == before
    assert world.server.replay.issuer_entries("granted", friend.did) == 2


async def test_the_node_calling_itself_is_not_rate_limited(world: Net) -> None:
    for _ in range(int(SMALL.public_burst) * 3):
        assert (await world.server.call(world.server.did, "/agora/test/ping", {}))["pong"] is True
    assert "public_rate" not in world.server.health()["limits"]


def test_rate_limiter_buckets() -> None:
    limiter = RateLimiter(rate=2.0, burst=3.0, max_keys=2)
    assert [limiter.allow("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("a", 0.5)  # one token back after half a second
    assert not limiter.allow("a", 0.5)
    limiter.allow("b", 0.5)
    limiter.allow("c", 0.5)
    assert len(limiter) == 2  # bounded: the least recently seen key is forgotten


def test_rate_limiter_says_when_a_token_is_back() -> None:
    limiter = RateLimiter(rate=4.0, burst=2.0, max_keys=8)
    assert limiter.retry_after("a", 0.0) == 0.0  # a new key has a full bucket
    assert limiter.allow("a", 0.0) and limiter.allow("a", 0.0) and not limiter.allow("a", 0.0)
    assert limiter.retry_after("a", 0.0) == pytest.approx(0.25)
    assert limiter.retry_after("a", 0.1) == pytest.approx(0.15)
    assert limiter.allow("a", limiter.retry_after("a", 0.1) + 0.1)


def test_limit_log_reports_and_degrades_only_on_shared_limits() -> None:
    log = LimitLog(window=60)
    log.hit("public_rate", "did:key:zx over 5/s", 100.0)
    assert log.degraded(100.0) == []
    log.hit("replay_share_full", "the public share holds 200", 110.0)
    assert log.degraded(120.0) == ["replay_share_full: the public share holds 200"]
    assert log.report(120.0)["public_rate"] == {
        "refused": 1,
        "last_at": 100.0,
        "last": "did:key:zx over 5/s",
        "recent": True,
    }
    assert log.degraded(171.0) == []


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        AdmissionSettings(public_max_lifetime=700)
    with pytest.raises(ValueError):
        AdmissionSettings(public_rate=0)
