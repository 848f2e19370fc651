"""Market placement over a real hub (nats-server, SQLite, NATS transport), through the local API: a job
with no --node lands on the provider that bid, `GET /jobs/{id}/why` explains it, and a job too big for
any provider waits, then fails `deadline_exceeded` with its diagnostics.

The provider side is the test stand-in (tests/unit/orchestrator/market_standin.py) registered on node
b's runtime, until compute/bidder.py lands; the index is a `MemoryMarketIndex` until the node wires the
NATS one (the requester's runner is given a `Placer` on it directly).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agora.market import MemoryMarketIndex
from agora.node.compute import compute_of
from agora.orchestrator.placement import PlacementSettings, Placer
from tests.integration.compute.conftest import Cluster
from tests.integration.compute.test_remote_jobs import ok, wait_job, wasm_job
from tests.unit.orchestrator.market_standin import StandInBidder, make_offer


async def test_a_job_with_no_node_is_placed_by_the_market_and_why_explains_it(
    cluster: Cluster, hello_wasm: Path
) -> None:
    a, b = cluster.a, cluster.b
    index = MemoryMarketIndex()
    settings = PlacementSettings(bid_timeout_s=2.0, award_timeout_s=3.0)
    compute_of(a).runner.placer = Placer(a.runtime, index, clock=a.clock, settings=settings)
    assert b.runtime is not None
    bidder = StandInBidder(b.keypair, make_offer(b.did, cpu_price=2))
    b.runtime.register(bidder)
    await bidder.publish(index)
    try:
        async with cluster.api(a) as api:
            sub = await ok(await api.post("/jobs", json={"spec": wasm_job(hello_wasm)}), 201)
            doc = await wait_job(api, sub["id"])
            assert doc["state"] == "completed", doc["error"]
            [unit] = doc["units"]
            assert unit["node"] == b.did and bidder.awarded
            assert [e["data"]["state"] for e in doc["events"] if e["kind"] == "job.task"][:4] == [
                "matching",
                "bidding",
                "awarded",
                "committed",
            ]
            why: dict[str, Any] = await ok(await api.get(f"/jobs/{sub['id']}/why"))
            last = why["units"]["hello"]["last"]
            assert last["outcome"] == "committed" and last["provider"] == b.did
            assert [bid["provider"] for bid in last["bids"]] == [b.did]

            big = wasm_job(hello_wasm) | {"deadline": 1}
            big["tasks"][0]["resources"]["cpu"] = 64
            sub = await ok(await api.post("/jobs", json={"spec": big}), 201)
            doc = await wait_job(api, sub["id"])
            assert doc["state"] == "failed" and doc["error"]["code"] == "deadline_exceeded"
            why = await ok(await api.get(f"/jobs/{sub['id']}/why"))
            assert why["units"]["hello"]["last"]["blocking"] == {"insufficient_cpu": 1}
            assert "insufficient_cpu" in why["summary"]
    finally:
        await index.close()
