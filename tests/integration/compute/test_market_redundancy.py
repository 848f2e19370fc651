"""Redundant execution over a real hub (nats-server, SQLite, NATS transport, JetStream index), through the
local API: node a asks for `verification: {replicas: 3, agree: 2}`; b, c and d sell; d is dishonest (its
wasm executor rewrites the output after the task ran, so its signed receipt carries other hashes). The unit
is accepted on the two that agree, d is recorded as disagreeing with its receipt's CID, and `why` shows
each replica."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agora.node.compute import compute_of
from tests.integration.compute.conftest import Cluster, until
from tests.integration.compute.test_remote_jobs import ok, wait_job, wasm_job
from tests.unit.orchestrator.dishonest import tamper

DEADLINE = 30.0


async def test_a_dishonest_provider_is_outvoted_over_nats(cluster: Cluster, hello_wasm: Path) -> None:
    hub, a, b = cluster.hub, cluster.a, cluster.b
    assert hub.hub is not None
    c = await cluster.make("c", hubs=[hub.hub.url])
    d = await cluster.make("d", hubs=[hub.hub.url])
    sellers = {n.did: n for n in (b, c, d)}
    for n in sellers.values():
        await compute_of(n).sell_from_node()
    index = compute_of(a).market_index
    assert index is not None

    async def all_sell() -> bool:
        return {ad.provider for ad in await index.ads()} >= set(sellers)

    await until(all_sell, "the three ads in a's view of the index", DEADLINE)
    tamper(compute_of(d).registry.get("wasm"), forge=b"made up\n")
    release = asyncio.Event()
    tamper(compute_of(c).registry.get("wasm"), hold=release)  # c's result comes in after d's was compared
    async with cluster.api(a) as api:
        spec = wasm_job(hello_wasm) | {"deadline": 120, "verification": {"replicas": 3, "agree": 2}}
        sub = await ok(await api.post("/jobs", json={"spec": spec}), 201)
        assert sub["warnings"] == []

        async def liar_compared() -> bool:
            doc = await ok(await api.get(f"/jobs/{sub['id']}"))
            return any(r["provider"] == d.did and r["state"] == "completed" for r in doc["units"][0]["replicas"])

        await until(liar_compared, "d's replica to end and be compared", DEADLINE)
        release.set()
        doc = await wait_job(api, sub["id"])
        assert doc["state"] == "completed", doc["error"]
        [unit] = doc["units"]
        verdicts = {r["provider"]: r["verdict"] for r in unit["replicas"]}
        assert verdicts == {b.did: "agreed", c.did: "agreed", d.did: "disagreed"}
        assert unit["node"] in (b.did, c.did)
        [event] = [e for e in doc["events"] if e["kind"] == "job.provider_disagreed"]
        [lie] = [r for r in unit["replicas"] if r["provider"] == d.did]
        assert event["data"]["provider"] == d.did and event["data"]["receipt"] == lie["receipt"]
        why: dict[str, Any] = await ok(await api.get(f"/jobs/{sub['id']}/why"))
        assert len(why["units"]["hello"]["replicas"]) == 3 and "disagreed" in why["summary"]
    for n in sellers.values():
        cap = compute_of(n).capacity
        assert cap is not None

        async def freed(cap: Any = cap) -> bool:
            return bool(cap.free == cap.total)

        await until(freed, "every seller's capacity back", DEADLINE)
