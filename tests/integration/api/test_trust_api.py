"""GET /trust and GET /trust/{did} on a real node (its SQLite store; the memory transport): the node's
evidence about providers survives a restart of the node, a provider it never dealt with scores the prior."""

from __future__ import annotations

from pathlib import Path

import httpx

from agora.api import create_app
from agora.identity import Keypair
from agora.ledger import Evidence
from agora.node import Node, NodeConfig
from agora.node.compute import compute_of
from agora.transport import MemoryNetwork, MemoryTransport

P = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
STRANGER = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"


def _client(node: Node) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(node), client=("127.0.0.1", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


async def _node(home: Path, key: Keypair, net: MemoryNetwork) -> Node:
    config = NodeConfig(home=home, hubs=["nats://127.0.0.1:4222"], benchmark="off")  # never dialled
    node = Node(config, keypair=key, transport=MemoryTransport(net, key.did))
    await node.start()
    return node


async def test_trust_routes_and_the_evidence_survives_a_restart_of_the_node(tmp_path: Path) -> None:
    net, key = MemoryNetwork(), Keypair.generate()
    node = await _node(tmp_path / "home", key, net)
    book = compute_of(node).trust_book
    now = node.clock.now()
    await book.record(Evidence(P, "success", now - 60, {"receipt": "bafyreceipt1", "job": "job-1"}, "completed"))
    await book.record(Evidence(P, "timeout", now, {"job": "job-2", "unit": "hello#1"}, "task_timeout"))
    await book.observe_latency(P, 20.0)
    try:
        async with _client(node) as c:
            one = (await c.get(f"/trust/{P}")).json()
            assert one["counts"] == {"success": 1, "timeout": 1} and one["known"] is True
            assert [r["kind"] for r in one["records"]] == ["timeout", "success"]  # newest first
            assert one["records"][1]["cites"] == {"receipt": "bafyreceipt1", "job": "job-1"}
            assert one["latency_ms"] == 20.0 and one["records_kept"] == 2
            everyone = (await c.get("/trust")).json()
            assert [r["provider"] for r in everyone["providers"]] == [P]
            assert everyone["settings"]["prior"] == 0.5 and everyone["settings"]["half_life_s"] == 7 * 86400
            stranger = (await c.get(f"/trust/{STRANGER}")).json()
            assert stranger["score"] == 0.5 and stranger["known"] is False and stranger["records"] == []
            bad = await c.get("/trust/not-a-did")
            assert bad.status_code == 400 and bad.json()["error"]["code"] == "did_invalid"
            assert "/trust/{did}" in (await c.get("/openapi.json")).json()["paths"]
    finally:
        await node.stop()

    again = await _node(tmp_path / "home", key, net)  # the same home: the same SQLite file
    try:
        async with _client(again) as c:
            back = (await c.get(f"/trust/{P}")).json()
    finally:
        await again.stop()
    assert back["counts"] == one["counts"] and abs(back["score"] - one["score"]) < 1e-3
    assert back["latency_ms"] == 20.0 and [r["id"] for r in back["records"]] == [r["id"] for r in one["records"]]
