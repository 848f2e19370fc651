"""Market placement over a real hub (nats-server, SQLite, NATS transport), through the local API, with every
piece real: node b sells (its offer, its capacity ad in the hub's JetStream index, its bidder), node a's
runner places through the index it reads. A job with no --node waits while nobody sells, lands on b once b's
ad appears (the index's watch wakes the queue), `GET /jobs/{id}/why` explains it; a job too big for any
provider waits, then fails `deadline_exceeded` with its diagnostics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agora.node.compute import compute_of
from tests.integration.compute.conftest import Cluster, until
from tests.integration.compute.test_remote_jobs import ok, wait_job, wasm_job

DEADLINE = 30.0


async def test_a_job_with_no_node_is_placed_by_the_market_and_why_explains_it(
    cluster: Cluster, hello_wasm: Path
) -> None:
    a, b = cluster.a, cluster.b
    ca, cb = compute_of(a), compute_of(b)
    assert ca.runner.placer is not None and ca.market_index is not None  # the node wired its market
    async with cluster.api(a) as api:
        spec = wasm_job(hello_wasm) | {"deadline": 120}
        sub = await ok(await api.post("/jobs", json={"spec": spec}), 201)
        assert sub["warnings"] == []  # placed by the market: its fields mean something

        async def pending() -> bool:  # nobody sells yet: the job waits, with its reason
            doc = await ok(await api.get(f"/jobs/{sub['id']}"))
            return bool(doc["units"][0]["state"] == "pending")

        await until(pending, "the job to wait in the queue", DEADLINE)
        sold = await cb.sell_from_node()  # b starts selling: its ad reaches the index, the queue wakes up
        doc = await wait_job(api, sub["id"])
        assert doc["state"] == "completed", doc["error"]
        [unit] = doc["units"]
        assert unit["node"] == b.did
        states = [e["data"]["state"] for e in doc["events"] if e["kind"] == "job.task"]
        assert "pending" in states and states.index("pending") < states.index("committed")
        assert [s for s in states if s in ("matching", "bidding", "awarded", "committed")][-4:] == [
            "matching",
            "bidding",
            "awarded",
            "committed",
        ]
        why: dict[str, Any] = await ok(await api.get(f"/jobs/{sub['id']}/why"))
        last = why["units"]["hello"]["last"]
        assert last["outcome"] == "committed" and last["provider"] == b.did
        assert [bid["provider"] for bid in last["bids"]] == [b.did]
        outcomes = {c["provider"]: c["outcome"] for c in last["decision"]["candidates"]}
        assert [p for p, o in outcomes.items() if o == "placed"] == [b.did]  # only where it went reads as placed
        assert cb.capacity is not None and cb.capacity.free == cb.capacity.total  # the reservation came back
        assert sold["offer_id"] == (await ca.market_index.get(b.did)).offer.offer_id  # type: ignore[union-attr]

        big = wasm_job(hello_wasm) | {"deadline": 1}
        big["tasks"][0]["resources"]["cpu"] = 64
        sub = await ok(await api.post("/jobs", json={"spec": big}), 201)
        doc = await wait_job(api, sub["id"])
        assert doc["state"] == "failed" and doc["error"]["code"] == "deadline_exceeded"
        why = await ok(await api.get(f"/jobs/{sub['id']}/why"))
        assert why["units"]["hello"]["last"]["blocking"] == {"insufficient_cpu": 1}
        assert "insufficient_cpu" in why["summary"]
