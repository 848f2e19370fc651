"""Real nodes that sell publish their capacity ads in their hub's market index (an allowlisted hub here),
republish when free capacity changes, keep their seq across a restart and withdraw their ad on a clean stop or
when they stop selling; a node that sells nothing publishes no ad."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agora.compute.advertiser import AdvertiserSettings
from agora.compute.bidder import sellable
from agora.market.index import MarketIndex
from agora.models.capability import Capability
from agora.node import HubSettings, Node, NodeConfig
from agora.node.compute import compute_of
from agora.wire.market import CapacityAd

pytestmark = pytest.mark.integration

DEADLINE = 20.0


def config(home: Path, **kw: object) -> NodeConfig:
    settings = {"api_port": 0, "benchmark": "off", "sell": True, "ads": AdvertiserSettings(debounce_s=0.05), **kw}
    return NodeConfig(home=home, **settings)  # type: ignore[arg-type]


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[list[Node]]:
    started: list[Node] = []
    yield started
    for node in reversed(started):
        if node.started_at is not None:
            await node.stop()


async def ad_of(index: MarketIndex, did: str, *, seq_over: int = 0) -> CapacityAd:
    """`did`'s ad with a seq above `seq_over`, waited for (bounded) through the index's watch."""
    got = await index.get(did)
    if got is not None and got.seq > seq_over:
        return got
    async with asyncio.timeout(DEADLINE), index.watch() as w:
        async for ad in w:
            if ad.provider == did and ad.seq > seq_over:
                return ad
    raise AssertionError("the watch ended")


def index_of(node: Node) -> MarketIndex:
    index = compute_of(node).market_index
    assert index is not None
    return index


async def test_nodes_advertise_update_restart_and_withdraw(tmp_path: Path, nodes: list[Node]) -> None:
    b = Node(config(tmp_path / "b", hubs=["nats://127.0.0.1:1"]))  # its DID first: the hub allows it
    hub = Node(config(tmp_path / "hub", hub=HubSettings(port=0, allow=[b.did])))
    await hub.start()
    nodes.append(hub)
    assert hub.hub is not None
    b.config.hubs = [hub.hub.url]
    await b.start()
    nodes.append(b)

    index = index_of(hub)
    ad_hub, ad_b = await ad_of(index, hub.did), await ad_of(index, b.did)
    capacity = compute_of(b).capacity
    assert capacity is not None
    sold = sellable(capacity.free, capacity.total, compute_of(b).offers.active()[0].resources)
    assert ad_b.free.cpu_millis == sold.cpu_millis and ad_b.offer.provider == b.did  # free to sell, not the reserve
    assert ad_hub.offer.provider == hub.did and set(ad_b.executors) == set(compute_of(b).registry.available())

    capacity.reserve("a1", Capability(cpu_millis=100))
    changed = await ad_of(index, b.did, seq_over=ad_b.seq)
    assert changed.free.cpu_millis == ad_b.free.cpu_millis - 100

    await b.stop()  # a clean stop withdraws the ad
    nodes.remove(b)
    assert await index.get(b.did) is None  # stop returned once the withdrawal was written

    b2 = Node(config(tmp_path / "b", hubs=[hub.hub.url]))
    await b2.start()
    nodes.append(b2)
    again = await ad_of(index, b2.did)
    assert b2.did == b.did and again.seq > changed.seq  # the seq survived the restart
    assert index.stats["replayed"] == 0 and index.stats["forged"] == 0


async def test_a_node_advertises_only_while_it_sells(tmp_path: Path, nodes: list[Node]) -> None:
    hub = Node(config(tmp_path / "hub", hub=HubSettings(port=0)))
    await hub.start()
    nodes.append(hub)
    assert hub.hub is not None
    buyer = Node(config(tmp_path / "buyer", hubs=[hub.hub.url], sell=False))
    await buyer.start()
    nodes.append(buyer)
    index = index_of(hub)
    first = await ad_of(index, hub.did)  # the hub sells: its ad is there
    assert first.offer.offer_id == compute_of(hub).offers.active()[0].offer_id
    advertiser = compute_of(buyer).advertiser
    assert advertiser is not None
    assert await advertiser.publish_now() is None and await index.get(buyer.did) is None  # sells nothing
    offers = compute_of(hub).offers
    await offers.withdraw(first.offer.offer_id)  # the last offer goes: so does the ad
    hub_ads = compute_of(hub).advertiser
    assert hub_ads is not None
    assert await hub_ads.publish_now() is None  # what the debounced republish does, done now
    assert await index.get(hub.did) is None
    created = await compute_of(hub).sell_from_node()  # selling again brings it back, under the new offer
    again = await ad_of(index, hub.did, seq_over=first.seq)
    assert again.offer.offer_id == created["offer_id"]
