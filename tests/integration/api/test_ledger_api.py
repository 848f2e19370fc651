"""The ledger routes on a hub node: mint (the hub is the operator), balance, entries, transfer, verify, and
bad bodies refused with a code before anything is sent to the ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from agora.api import create_app
from agora.identity import Keypair
from agora.node import Node
from tests.integration.node.conftest import NodeFactory, make_node  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(make_node: NodeFactory) -> AsyncIterator[tuple[Node, httpx.AsyncClient]]:  # noqa: F811
    node = await make_node("hub", hub=True)
    transport = httpx.ASGITransport(app=create_app(node), client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        yield node, c


async def test_the_ledger_routes(api: tuple[Node, httpx.AsyncClient]) -> None:
    node, c = api
    friend = Keypair.generate().did
    info = (await c.get("/ledger")).json()
    assert info["serves"] and info["hubs"] == [node.did] and info["operators"] == [node.did] and info["head"] == 0

    for body, word in [
        ({"to": node.did, "amount": "5"}, "amount"),
        ({"to": node.did, "amount": 0}, "amount"),
        ({"to": node.did, "amount": 10**23}, "amount must be at most 4,611,686,018,427,387,904 minor units"),
        ({"to": node.did, "amount": 2**62 + 1}, "amount must be at most"),
        ({"amount": 5}, "to"),
        ({"to": node.did, "amount": 5, "actor": friend}, "actor"),
        ({"to": node.did, "amount": 5, "memo": 7}, "memo"),
    ]:
        resp = await c.post("/ledger/mint", json=body)
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_argument", body
        assert word in resp.json()["error"]["message"], body
    assert (await c.get("/ledger")).json()["head"] == 0  # nothing reached the journal

    minted = await c.post("/ledger/mint", json={"to": node.did, "amount": 300, "idem": "k", "memo": "seed"})
    assert minted.status_code == 201 and minted.json()["entry"]["seq"] == 1
    again = await c.post("/ledger/mint", json={"to": node.did, "amount": 300, "idem": "k", "memo": "seed"})
    assert again.json() == minted.json()
    sent = await c.post("/ledger/transfer", json={"to": friend, "amount": 120})
    assert sent.status_code == 201 and sent.json()["entry"]["actor"] == node.did
    poor = await c.post("/ledger/transfer", json={"to": friend, "amount": 1000})
    assert poor.status_code == 402 and poor.json()["error"]["code"] == "insufficient_funds"

    assert (await c.get("/ledger/balance")).json() == {"account": f"wallet:{node.did}", "balance": 180}
    assert (await c.get("/ledger/balance", params={"account": friend})).json()["balance"] == 120
    entries = (await c.get("/ledger/entries", params={"account": friend})).json()["entries"]
    assert [e["kind"] for e in entries] == ["transfer"]
    assert len((await c.get("/ledger/entries", params={"account": "all"})).json()["entries"]) == 2
    report = (await c.get("/ledger/verify")).json()
    assert report["ok"] and report["agrees"] and report["entries"] == 2 and report["sum"] == 0


async def test_stake_and_unstake_lock_this_nodes_own_money(api: tuple[Node, httpx.AsyncClient]) -> None:
    node, c = api
    await c.post("/ledger/mint", json={"to": node.did, "amount": 500, "idem": "seed"})
    bad = await c.post("/ledger/stake", json={"amount": 5, "did": Keypair.generate().did})
    assert bad.status_code == 400 and "did" in bad.json()["error"]["message"]
    staked = await c.post("/ledger/stake", json={"amount": 200, "idem": "s1"})
    assert staked.status_code == 201, staked.json()
    assert staked.json()["entry"]["kind"] == "stake_lock" and staked.json()["stake"] == 200
    too_much = await c.post("/ledger/unstake", json={"amount": 201})
    assert too_much.status_code == 402 and too_much.json()["error"]["code"] == "insufficient_funds"
    back = await c.post("/ledger/unstake", json={"amount": 50})
    assert back.json()["entry"]["kind"] == "stake_unlock" and back.json()["stake"] == 150
    stake = (await c.get("/ledger/balance", params={"account": f"stake:{node.did}"})).json()
    assert stake["balance"] == 150 and (await c.get("/ledger/balance")).json()["balance"] == 350
    # every entry this node's own calls wrote is in its event log too
    logged = [
        (e.kind, e.data["seq"]) for e in await node.store.events(subject=node.did) if e.kind.startswith("ledger.")
    ]
    assert logged == [("ledger.mint", 1), ("ledger.stake_lock", 2), ("ledger.stake_unlock", 3)]
    assert (await c.get("/ledger/verify")).json()["ok"]
