"""`agora model add` on a real node (NATS hub, SQLite): it answers once the node's capacity ad offering the
model is in the hub's index, so `agora model list` right after shows it, and so does the hub for any
reader; `model remove` likewise; a node that sells nothing says so instead of claiming an offer. A buyer
that got a signed quote through the API is answered under that quote by its provider."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from typer.testing import CliRunner

from agora.api import ApiServer
from agora.cli.main import app
from agora.client import AgoraClient
from agora.node.compute import compute_of
from agora.node.inference import NOT_SELLING
from tests.integration.node.conftest import NodeFactory

pytestmark = pytest.mark.integration

FUNDS = 100_000


def models_of(ad: Any) -> list[str]:
    return [] if ad is None else [m.model for m in ad.models]


async def test_model_add_answers_once_the_market_holds_the_ad(make_node: NodeFactory) -> None:
    seller = await make_node("seller", hub=True, sell=True)
    assert seller.hub is not None
    buyer = await make_node("buyer", hubs=[seller.hub.url], settlement="local")
    idle = await make_node("idle", hubs=[seller.hub.url])  # no --sell: it offers nothing
    bank = compute_of(buyer).settlement
    assert bank is not None
    await bank.mint(buyer.did, FUNDS, actor=buyer.did, idem="fund")
    buyer_index = compute_of(buyer).market_index
    assert buyer_index is not None
    apis = [ApiServer(n, port=0) for n in (seller, buyer, idle)]
    surl, burl, iurl = [await a.start() for a in apis]
    try:

        def cli(url: str, *args: str) -> Any:
            return CliRunner().invoke(app, [*args, "--api", url])

        added = await asyncio.to_thread(cli, surl, "model", "add", "mock-chat", "--runner", "mock", "--price-in", "5")
        # the moment `model add` answers, the hub holds the seller's ad with the model (read by its key) ...
        held = await buyer_index.get(seller.did)
        # ... and `model list` on the seller shows it
        listed = await asyncio.to_thread(cli, surl, "model", "list", "--json")

        def quote_then_infer() -> tuple[dict[str, Any], dict[str, Any]]:
            with AgoraClient(burl) as c:
                q = c.quote("mock-chat", est_in=10, est_out=5)["quotes"][0]
                return q, c.infer("hello there", model="mock-chat", max_tokens=5, quote=q["cid"])

        quote, answer = await asyncio.to_thread(quote_then_infer)

        # the hub's view loses the seller's key (a snapshot that missed it, a tombstone): the seller's own
        # `model list` still shows what it offers, from the ad it last published
        await buyer_index.withdraw(seller.did)
        own_view = await asyncio.to_thread(cli, surl, "model", "list", "--json")

        removed = await asyncio.to_thread(cli, surl, "model", "remove", "mock-chat")
        after = await buyer_index.get(seller.did)
        not_selling = await asyncio.to_thread(cli, iurl, "model", "add", "mock-chat", "--runner", "mock", "--json")
    finally:
        for a in apis:
            await a.stop()

    assert added.exit_code == 0, added.output
    assert "in the market now (capacity ad seq" in added.stdout, added.stdout
    assert models_of(held) == ["mock-chat"]
    assert listed.exit_code == 0, listed.output
    offered = {m["model"]: m for m in json.loads(listed.stdout)["models"]}
    assert [p["provider"] for p in offered["mock-chat"]["providers"]] == [seller.did]

    assert quote["provider"] == seller.did
    assert answer["provider"] == seller.did and answer["quote"]["cid"] == quote["cid"]
    assert answer["metering"]["verified"] and answer["paid"] == answer["metering"]["price"] > 0

    assert own_view.exit_code == 0, own_view.output
    assert [m["model"] for m in json.loads(own_view.stdout)["models"]] == ["mock-chat"]

    assert removed.exit_code == 0 and "in the market now" in removed.stdout, removed.output
    assert held is not None and after is not None and after.seq > held.seq and models_of(after) == []

    assert not_selling.exit_code == 0, not_selling.output
    assert json.loads(not_selling.stdout)["ad"] == {"published": False, "reason": NOT_SELLING}
