"""The provider's market side on real nodes (SQLite store, NATS through a real nats-server): a node started
with `sell` publishes its default offer, `/offers` creates, lists, shows and withdraws offers with field-level
errors, and another node gets a signed bid and a commit over the network, then a decline once the offer is
withdrawn."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from agora.api import ApiServer, create_app
from agora.cli.main import app
from agora.models.capability import Capability, MiB
from agora.node import Node
from agora.node.compute import compute_of
from agora.wire.market import Award, Bid, BidRequest, Decline
from agora.wire.market_rpc import (
    AWARD_CMD,
    BID_REQUEST_CMD,
    award_args,
    bid_request_args,
    read_bid_reply,
    read_commit_reply,
)
from tests.integration.node.conftest import NodeFactory, make_node  # noqa: F401 (fixture)
from tests.unit.compute import wat


@pytest.fixture
async def seller(make_node: NodeFactory) -> AsyncIterator[Node]:  # noqa: F811
    yield await make_node("seller", hub=True, sell=True)


async def _api(node: Node) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(node), client=("127.0.0.1", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


OFFER: dict[str, Any] = {
    "offer_id": "small-1",
    "resources": {"cpu_millis": 1000, "memory_bytes": 256 * MiB},
    "price": {"base": {"cpu_second": 2, "memory_gib_second": 1, "minimum": 5}},
    "terms": {"max_duration_s": 600, "access": {"mode": "open"}},
}


async def test_a_selling_node_publishes_its_default_offer(seller: Node) -> None:
    async with await _api(seller) as c:
        offers = (await c.get("/offers")).json()["offers"]
    assert len(offers) == 1
    [doc] = offers
    assert doc["state"] == "active" and doc["source"] == "node"
    offer = doc["offer"]
    total = compute_of(seller).capacity
    assert total is not None
    assert offer["provider"] == seller.did
    assert 0 < offer["resources"]["cpu_millis"] < total.total.cpu_millis  # the machine minus a reserve
    assert offer["price"]["base"]["cpu_second"] > 0 and isinstance(offer["price"]["base"]["minimum"], int)


async def test_offers_are_created_listed_shown_and_withdrawn_with_field_errors(seller: Node) -> None:
    async with await _api(seller) as c:
        made = await c.post("/offers", json=OFFER)
        assert made.status_code == 201, made.json()
        assert made.json()["offer"]["provider"] == seller.did  # filled in
        again = await c.post("/offers", json=OFFER)
        assert again.status_code == 409 and again.json()["error"]["code"] == "already_exists"
        for price, field in (
            (-1, "price.base.cpu_second"),
            (1.5, "price.base.cpu_second"),
        ):
            bad = {**OFFER, "offer_id": "bad", "price": {"base": {"cpu_second": price}}}
            resp = await c.post("/offers", json=bad)
            assert resp.status_code == 400
            err = resp.json()["error"]
            assert err["code"] == "offer_invalid" and err["details"]["field"] == field
        wrong = await c.post("/offers", json={**OFFER, "offer_id": "x", "terms": {"access": {"mode": "friends"}}})
        assert wrong.json()["error"]["details"]["field"] == "terms.access.mode"
        foreign = await c.post(
            "/offers",
            json={**OFFER, "offer_id": "y", "provider": "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"},
        )
        assert foreign.json()["error"]["details"]["field"] == "provider"
        shown = (await c.get("/offers/small-1")).json()
        assert shown["offer"]["resources"]["cpu_millis"] == 1000
        missing = await c.get("/offers/nope")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "offer_not_found"
        gone = (await c.delete("/offers/small-1")).json()
        assert gone["state"] == "withdrawn"
        active = (await c.get("/offers", params={"state": "active"})).json()["offers"]
        assert [d["offer_id"] for d in active] != [] and "small-1" not in [d["offer_id"] for d in active]


async def test_a_node_bids_and_commits_over_nats_then_declines_a_withdrawn_offer(
    seller: Node,
    make_node: NodeFactory,  # noqa: F811
) -> None:
    assert seller.hub is not None
    buyer = await make_node("buyer", hubs=[seller.hub.url])
    assert buyer.runtime is not None
    offer_id = compute_of(seller).offers.active()[0].offer_id
    now = int(time.time())

    def request(rid: str) -> BidRequest:
        return BidRequest.issue(
            buyer.keypair,
            provider=seller.did,
            request_id=rid,
            job_id="job-1",
            task="t",
            offer_id=offer_id,
            need=Capability(cpu_millis=100, memory_bytes=64 * MiB, disk_bytes=64 * MiB),
            engine="wasm",
            duration_s=10,
            max_price=10_000,
            respond_by=now + 30,
            iat=now,
        )

    reply = await buyer.runtime.call(seller.did, BID_REQUEST_CMD, bid_request_args(request("r1")), timeout=10)
    bid = read_bid_reply(reply, provider=seller.did)
    assert isinstance(bid, Bid) and bid.delegation is not None
    award = Award.issue(buyer.keypair, bid, commit_by=now + 30, iat=now)
    commit = read_commit_reply(
        await buyer.runtime.call(seller.did, AWARD_CMD, award_args(award), timeout=10), provider=seller.did, award=award
    )
    assert commit.start_by > now
    bidder = compute_of(seller).bidder
    assert bidder is not None and [r["state"] for r in bidder.reservations()] == ["committed"]
    # the start rides on the bid's delegation (no grant) and takes the committed capacity
    token = bid.delegation_token()
    assert token is not None
    task = {
        "name": "t",
        "module": "hello.wasm",
        "resources": {"cpu": 0.1, "memory": "64Mi", "disk": "64Mi"},
        "timeout": 30,
    }
    start = {"job": "unit", "job_id": "job-1", "task": task, "module_bytes": wat.hello(), "reservation": "r1"}
    started = await buyer.runtime.call(seller.did, "/agora/alloc/start", start, proofs=[token], timeout=10)
    known = None
    for _ in range(100):
        args = {"alloc_id": started["alloc_id"], "known_state": known, "wait_s": 2}
        st = await buyer.runtime.call(seller.did, "/agora/alloc/status", args, proofs=[token], timeout=10)
        known = st["state"]
        if known in ("completed", "failed", "cancelled"):
            break
    assert known == "completed", st.get("error")
    assert bidder.reservations() == []
    await compute_of(seller).offers.withdraw(offer_id)
    reply = await buyer.runtime.call(seller.did, BID_REQUEST_CMD, bid_request_args(request("r2")), timeout=10)
    decline = read_bid_reply(reply, provider=seller.did)
    assert isinstance(decline, Decline) and decline.codes == ["policy"]


async def test_the_offer_commands_through_the_api(seller: Node, tmp_path: Path) -> None:
    offer_file = tmp_path / "offer.yaml"
    offer_file.write_text(yaml.safe_dump(OFFER))
    bad_file = tmp_path / "bad.json"
    bad_file.write_text(json.dumps({**OFFER, "price": {"base": {"gpu_second": -3}}}))
    server = ApiServer(seller, port=0)
    url = await server.start()

    def cli(*argv: str) -> Any:
        result = CliRunner().invoke(app, [*argv, "--api", url])
        return result.exit_code, result.output

    try:
        code, out = await asyncio.to_thread(cli, "offer", "create", str(offer_file), "--json")
        assert code == 0, out
        assert json.loads(out)["offer_id"] == "small-1"
        code, out = await asyncio.to_thread(cli, "offer", "create", str(bad_file), "--json")
        assert code == 1
        err = json.loads(out)["error"]
        assert err["code"] == "offer_invalid" and err["details"]["field"] == "price.base.gpu_second"
        code, out = await asyncio.to_thread(cli, "offer", "list", "--json")
        assert code == 0 and {d["offer_id"] for d in json.loads(out)} >= {"small-1"}
        code, out = await asyncio.to_thread(cli, "offer", "list")
        assert code == 0 and "small-1" in out and "active" in out
        code, out = await asyncio.to_thread(cli, "offer", "show", "small-1")
        assert code == 0 and "max duration: 600" in out
        code, out = await asyncio.to_thread(cli, "offer", "withdraw", "small-1", "--json")
        assert code == 0 and json.loads(out)["state"] == "withdrawn"
        code, out = await asyncio.to_thread(cli, "offer", "create", "--from-node", "--json")
        assert code == 0 and json.loads(out)["source"] == "node"
        code, out = await asyncio.to_thread(cli, "offer", "create", "--json")
        assert code == 1 and json.loads(out)["error"]["code"] == "invalid_argument"
    finally:
        await server.stop()
