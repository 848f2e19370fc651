"""`GET /market`, `AgoraClient.market()` and `agora market` through a real API server on real nodes: every
provider's ad with free capacity, prices, executors and age; a forged entry in the hub is ignored and counted."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest
from typer.testing import CliRunner

from agora.api import ApiServer
from agora.cli.main import app
from agora.client import AgoraClient
from agora.compute.bidder import sellable
from agora.identity import Keypair
from agora.market.index_nats import NatsMarketIndex, market_key
from agora.market.offers import DEFAULT_PRICES
from agora.node.compute import compute_of
from agora.transport.reachability import close_client
from agora.ucan import seal_envelope
from agora.wire.market import AD_TAG
from tests.integration.node.conftest import NodeFactory
from tests.unit.market.ads import signed_ad

pytestmark = pytest.mark.integration

DEADLINE = 20.0


async def test_the_market_as_this_node_sees_it(make_node: NodeFactory) -> None:
    hub = await make_node("hub", hub=True, sell=True)
    assert hub.hub is not None
    b = await make_node("b", hubs=[hub.hub.url], sell=True)
    index = compute_of(hub).market_index
    assert index is not None
    async with asyncio.timeout(DEADLINE):  # both nodes' first ads (each published at start, watched here)
        async with index.watch() as w:
            seen: set[str] = set()
            async for ad in w:
                seen.add(ad.provider)
                if seen >= {hub.did, b.did}:
                    break
    # a hostile writer of the (open) hub files a forgery under a third provider's key
    victim, mallory = Keypair.generate(), Keypair.generate()
    nc = await nats.connect(hub.hub.url, allow_reconnect=False)
    try:
        hostile = NatsMarketIndex(nc)
        await hostile.publish(signed_ad(victim).raw)
        await hostile._write(
            market_key(victim.did),
            seal_envelope(mallory, AD_TAG, signed_ad(victim, seq=2)._payload()),
        )
    finally:
        await close_client(nc)

    server = ApiServer(b, port=0)
    url = await server.start()
    try:

        def read() -> dict[str, object]:
            with AgoraClient(url) as c:
                return c.market()

        m = await asyncio.to_thread(read)
        cli_json = await asyncio.to_thread(CliRunner().invoke, app, ["market", "--api", url, "--json"])
        cli_text = await asyncio.to_thread(CliRunner().invoke, app, ["market", "--api", url])
    finally:
        await server.stop()

    providers = {p["provider"]: p for p in m["providers"]}  # type: ignore[attr-defined]
    assert set(providers) == {hub.did, b.did}  # the victim's only entry is a forgery: not shown
    assert m["ignored"] == {"forged": 1, "replayed": 0} and m["accepted"] >= 2  # type: ignore[operator]
    mine = providers[b.did]
    cap = compute_of(b).capacity
    assert cap is not None
    sold = compute_of(b).offers.active()[0]
    free = sellable(cap.free, cap.total, sold.resources)  # what a bid can hold: the operator's reserve is kept back
    assert mine["free"]["cpu_millis"] == free.cpu_millis < cap.free.cpu_millis and mine["stale"] is False
    assert 0 <= mine["age_s"] < DEADLINE and mine["ttl_s"] == b.config.ads.ttl_s
    assert mine["offer_id"] == sold.offer_id and mine["price"]["base"]["cpu_second"] == DEFAULT_PRICES.cpu_second
    assert set(mine["executors"]) == set(compute_of(b).registry.available())
    assert m["self"]["seq"] >= 1 and m["did"] == b.did  # type: ignore[index]

    assert cli_json.exit_code == 0, cli_json.output
    assert {p["provider"] for p in json.loads(cli_json.output)["providers"]} == {hub.did, b.did}
    assert cli_text.exit_code == 0, cli_text.output
    assert "2 provider(s) in bucket agora-market; ignored: 1 forged" in cli_text.output
    assert "PROVIDER" in cli_text.output and "AGE" in cli_text.output
