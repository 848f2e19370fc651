"""The market bucket on real hubs: an allowlisted hub creates it (nodes cannot), each member may write only
its own key and read every key, and on a 3-hub cluster it is replicated (R3) and survives losing a hub."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import nats.errors
import pytest

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.market.index_nats import NatsMarketIndex, market_key
from agora.transport import ClusterConfig, NatsTransport, ReconnectPolicy, routes_for
from agora.transport.hub_config import DEFAULT_MARKET_BUCKET
from tests.integration.transport.conftest import HubFactory
from tests.support import free_port
from tests.unit.market.ads import signed_ad

pytestmark = pytest.mark.integration

DEADLINE = 30.0
FAST = ReconnectPolicy(min_wait=0.02, max_wait=0.2)
Member = Callable[..., Awaitable[tuple[NatsTransport, NatsMarketIndex]]]


@pytest.fixture
async def member() -> AsyncIterator[Member]:
    """`await member(urls, key)`: a node's transport and its market index over the same connection."""
    made: list[tuple[NatsTransport, NatsMarketIndex]] = []

    async def make(urls: list[str], key: Keypair, **index_options: Any) -> tuple[NatsTransport, NatsMarketIndex]:
        t = NatsTransport(key.did, urls, keypair=key, reconnect=FAST)
        await t.start()
        index_options.setdefault("create", False)  # an allowlisted hub makes the bucket; nodes never do
        index = NatsMarketIndex(t.nats_client, **index_options)
        made.append((t, index))
        return t, index

    yield make
    for t, index in made:
        await index.close()
        await t.close()


async def test_the_allowlisted_hub_makes_the_bucket_and_members_read_all_write_their_own(
    hub_factory: HubFactory, member: Member
) -> None:
    a, b = Keypair.generate(), Keypair.generate()
    hub = await hub_factory(allowed_dids=(a.did, b.did), market_ttl_s=90)
    ta, on_a = await member([hub.url], a, timeout=1.0)
    _tb, on_b = await member([hub.url], b, timeout=1.0)
    ad_a, ad_b = signed_ad(a, seq=1), signed_ad(b, seq=1)
    await on_a.publish(ad_a.raw)
    await on_b.publish(ad_b.raw)
    assert sorted(x.provider for x in await on_a.ads()) == sorted([a.did, b.did])

    status = await (await on_a._kv()).status()
    assert (status.bucket, status.history, status.ttl) == (DEFAULT_MARKET_BUCKET, 1, 90)
    assert status.stream_info.config.num_replicas == 1

    # a cannot overwrite b's key (not even with b's own older or a newer signed ad) nor delete it
    for attempt in (on_a._write(market_key(b.did), signed_ad(b, seq=7).raw), on_a.withdraw(b.did)):
        with pytest.raises(AgoraError) as raised:
            await attempt
        assert raised.value.code in ("hub_unreachable", "hub_permission_denied")
    assert ("publish", f"$kv.{DEFAULT_MARKET_BUCKET}.{market_key(b.did)}".lower()) in ta._denied
    got = await on_b.get(b.did)
    assert got is not None and got.raw == ad_b.raw
    # nor purge it, nor delete the stream's messages, nor create a bucket of its own
    js = ta.nats_client.jetstream(timeout=1.0)
    kv = await js.key_value(DEFAULT_MARKET_BUCKET)
    for refused in (kv.purge(market_key(b.did)), js.delete_key_value(DEFAULT_MARKET_BUCKET)):
        with pytest.raises(nats.errors.TimeoutError):  # the hub drops a refused publish: no answer comes
            await refused
    assert (await on_b.get(b.did)) is not None
    with pytest.raises(AgoraError) as raised:
        await NatsMarketIndex(ta.nats_client, "not-opened", create=True, timeout=1.0).ads()
    assert raised.value.code in ("hub_unreachable", "hub_permission_denied")

    # its own key it may replace and withdraw
    await on_a.publish(signed_ad(a, seq=2).raw)
    await on_a.withdraw(a.did)
    assert [x.provider for x in await on_b.ads()] == [b.did]


async def test_a_three_hub_cluster_keeps_every_ad_when_one_hub_dies(hub_factory: HubFactory, member: Member) -> None:
    keys = [Keypair.generate() for _ in range(3)]
    allowed = tuple(k.did for k in keys)
    ports = [free_port() for _ in range(3)]
    routes = routes_for([f"nats://127.0.0.1:{p}" for p in ports])
    hubs = [
        await hub_factory(allowed_dids=allowed, cluster=ClusterConfig(name="mkt", port=p, routes=routes)) for p in ports
    ]
    for hub in hubs:
        await hub.market_ready(DEADLINE)
    urls = [h.url for h in hubs]
    # each provider on its own hub, each knowing all three
    members = [await member(urls[i:] + urls[:i], k, timeout=2.0) for i, k in enumerate(keys)]
    ads = [signed_ad(k, seq=1) for k in keys]
    for (_t, index), ad in zip(members, ads, strict=True):
        await index.publish(ad.raw)
    status = await (await members[0][1]._kv()).status()
    assert status.stream_info.config.num_replicas == 3

    hubs[0].kill_now()  # SIGKILL: no goodbye to the cluster
    reader = members[1][1]  # connected to the second hub
    async with asyncio.timeout(DEADLINE):
        while True:  # bounded: the stream may elect a new leader first
            try:
                seen = await reader.ads()
                break
            except AgoraError as exc:
                if exc.code != "hub_unreachable":
                    raise
    assert sorted((x.provider, x.raw) for x in seen) == sorted((ad.provider, ad.raw) for ad in ads)
