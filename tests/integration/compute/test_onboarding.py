"""Onboarding on a real node: the benchmark runs in the background after start, is stored, published
in announcements, loaded (not re-run) on the next start, and re-run on demand."""

from __future__ import annotations

import httpx

from agora.api import create_app
from agora.node import Node
from agora.node.compute import compute_of
from tests.integration.compute.conftest import until
from tests.integration.node.conftest import NodeFactory


def api(node: Node) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(node), client=("127.0.0.1", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=60)


async def test_the_benchmark_runs_after_start_and_is_kept(
    make_node: NodeFactory,
) -> None:
    hub = await make_node("hub", hub=True)
    assert hub.hub is not None
    node = await make_node("a", hubs=[hub.hub.url], benchmark="quick")
    c = compute_of(node)
    assert node.ready_s is not None and c.benchmark is None  # start did not wait for it

    async def done() -> bool:
        return c.benchmark is not None

    await until(done, "the onboarding benchmark", timeout=60)
    assert c.benchmark is not None and c.benchmark.score > 0 and c.benchmark.hub_rtt_ms is not None
    assert node.capability_summary()["benchmark_score"] == c.benchmark.score
    assert [e.kind for e in await node.store.events(kind="node.benchmark")] == ["node.benchmark"]

    async def published() -> bool:
        peer = hub.peer_table.get(node.did)
        return peer is not None and peer.capabilities.get("benchmark_score") == c.benchmark.score  # type: ignore[union-attr]

    await until(published, "the score in the node's announcement")

    async with api(node) as client:
        first = c.benchmark.timestamp
        resp = await client.post("/node/bench")
        assert resp.status_code == 200, resp.text
        assert resp.json()["timestamp"] > first and resp.json()["version"] == c.benchmark.version
        res = (await client.get("/node/resources")).json()
        assert res["benchmark"]["timestamp"] == resp.json()["timestamp"] and res["benchmark_running"] is False
    saved = c.benchmark
    await node.stop()
    node.started_at = None

    again = await make_node("a", hubs=[hub.hub.url], benchmark="quick")  # same home: the stored result is loaded
    c2 = compute_of(again)
    assert c2.benchmark is not None and c2.benchmark.timestamp == saved.timestamp
    assert c2.resources()["benchmark_running"] is False
