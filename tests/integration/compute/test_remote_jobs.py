"""Jobs on a chosen node over a real hub, through the local API: grant, run, logs, outputs, receipts."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import httpx

from agora.node import Node
from agora.node.compute import compute_of
from agora.wire import UsageReceipt
from tests.integration.compute.conftest import Cluster, until
from tests.support import require_binary


def read(path: str | Path) -> bytes:
    return Path(path).read_bytes()


def wasm_job(module: Path) -> dict[str, Any]:
    return {
        "name": "hello-remote",
        "tasks": [
            {
                "name": "hello",
                "engine": "wasm",
                "module": str(module),
                "args": ["one", "two"],
                "env": {"AGORA_WHO": "integration"},
                "resources": {"cpu": "500m", "memory": "64Mi", "disk": "16Mi"},
                "timeout": 30,
            }
        ],
    }


async def ok(resp: httpx.Response, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()


async def wait_job(api: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    for _ in range(10):
        doc = await ok(await api.get(f"/jobs/{job_id}", params={"wait": 10}))
        if doc["state"] in ("completed", "failed", "cancelled"):
            return dict(doc)
    raise AssertionError(f"job {job_id} did not end")


async def clean(node: Node) -> bool:
    c = compute_of(node)
    assert c.capacity is not None
    work = node.config.home / "work"
    return not c.capacity.allocations and c.capacity.free == c.capacity.total and not any(work.iterdir())


async def test_a_granted_node_runs_a_wasm_job_on_another(cluster: Cluster, hello_wasm: Path) -> None:
    a, b = cluster.a, cluster.b
    async with cluster.api(a) as api_a, cluster.api(b) as api_b:
        # without a grant, and b sells nothing on the market: refused at submit, with the hint that says how
        resp = await api_a.post("/jobs", json={"spec": wasm_job(hello_wasm), "node": b.did})
        assert resp.status_code == 403, resp.text
        refused = resp.json()["error"]
        assert refused["code"] == "ucan_unauthorized" and f"agora node grant {a.did}" in refused["hint"]
        assert (await ok(await api_a.get("/jobs")))["jobs"] == []  # nothing was queued

        g = await ok(await api_b.post("/grants", json={"did": a.did, "ttl_s": 3600}), 201)
        assert g["delivered"] is True and g["aud"] == a.did and g["iss"] == b.did
        held = await ok(await api_a.get("/delegations"))
        assert [d["cid"] for d in held["delegations"]] == [g["cid"]]

        sub = await ok(await api_a.post("/jobs", json={"spec": wasm_job(hello_wasm), "node": b.did}), 201)
        doc = await wait_job(api_a, sub["id"])
        assert doc["state"] == "completed", doc["error"]
        [unit] = doc["units"]
        assert [e["data"]["state"] for e in doc["events"] if e["kind"] == "job.state"] == [
            "submitted",
            "running",
            "completed",
        ]
        receipt = UsageReceipt.from_dict(unit["receipt"], expected_provider=b.did)
        assert receipt.ok and receipt.requester == a.did and receipt.engine == "wasm"
        outs = (await ok(await api_a.get(f"/jobs/{sub['id']}/outputs")))["outputs"]
        assert [o["path"] for o in outs] == ["hello.txt"]
        assert read(outs[0]["local_path"]) == b"hello, integration: 2 argument(s)\n"
        logs = await ok(await api_a.get(f"/jobs/{sub['id']}/logs"))
        lines = [x["line"] for x in logs["lines"] if x["stream"] == "stdout"]
        assert lines == ["hello from wasm, integration!", "arg 1: one", "arg 2: two"]

        allocs = (await ok(await api_b.get("/allocations")))["allocations"]
        assert [(x["alloc_id"], x["state"], x["requester"]) for x in allocs] == [(unit["alloc_id"], "completed", a.did)]
        jobs = (await ok(await api_a.get("/jobs")))["jobs"]
        assert {j["id"]: j["state"] for j in jobs} == {sub["id"]: "completed"}
    assert await clean(b)


async def test_a_process_job_runs_in_the_sandbox_of_another_node(cluster: Cluster) -> None:
    require_binary("bwrap", "bubblewrap")
    a, b = cluster.a, cluster.b
    await compute_of(b).grant(a.did)
    spec = {
        "name": "shell",
        "tasks": [
            {
                "name": "greet",
                "engine": "process",
                "command": ["/bin/sh", "-c", 'echo "$GREETING from the sandbox"; echo done > /work/outputs/out/x.txt'],
                "env": {"GREETING": "hi"},
                "outputs": [{"name": "out", "path": "/work/outputs/out"}],
                "resources": {"cpu": "500m", "memory": "128Mi", "disk": "16Mi"},
                "timeout": 30,
            }
        ],
    }
    runner = compute_of(a).runner
    sub = await runner.submit(spec, node=b.did)
    doc = await runner.wait(sub["id"], 60)
    assert doc["state"] == "completed", doc["error"]
    [out] = doc["units"][0]["outputs"]
    assert out["name"] == "out" and out["path"] == "out/x.txt" and read(out["local_path"]) == b"done\n"
    logs = await runner.logs(sub["id"])
    assert "hi from the sandbox" in [x["line"] for x in logs["lines"]]
    assert await clean(b)


async def test_resources_and_errors_through_the_api(cluster: Cluster) -> None:
    a, b = cluster.a, cluster.b
    async with cluster.api(a) as api:
        r = await ok(await api.get("/node/resources"))
        assert r["did"] == a.did and r["executors"]["wasm"]["available"] is True
        assert r["executors"]["firecracker"]["available"] is False and r["executors"]["firecracker"]["reason"]
        assert r["free"] == r["capability"] and r["machine"]["cpu"]["usable_cores"] >= 1
        # the capacity ad travels in announcements
        await until(lambda: _has_caps(a, b.did), "b's capacity ad to reach a")
        bad = await api.post("/jobs", json={"spec": "name: x\ntasks: [{name: t, engine: wasm}]\n"})
        assert bad.status_code == 400 and bad.json()["error"]["details"]["errors"][0]["path"] == "tasks[0].module"
        missing = await api.get("/jobs/job-0000")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "job_not_found"
        forged = await api.post("/delegations", json={"token": "not base64!"})
        assert forged.status_code == 400 and forged.json()["error"]["code"] == "ucan_malformed"
        spec = (await api.get("/openapi.json")).json()
        assert {"/jobs", "/jobs/{job_id}/logs", "/grants", "/delegations", "/allocations", "/node/resources"} <= set(
            spec["paths"]
        )


async def _has_caps(a: Node, did: str) -> bool:
    await asyncio.sleep(0)
    peer = a.peer_table.get(did)
    caps = peer.capabilities if peer is not None else {}
    return "wasm" in caps.get("executors", []) and caps.get("cpu_millis", 0) > 0


async def test_a_token_given_out_of_band_works(cluster: Cluster, hello_wasm: Path) -> None:
    a, b = cluster.a, cluster.b
    c = await cluster.make("c", hubs=[cluster.hub.hub.url])  # type: ignore[union-attr]
    d = await compute_of(b).book.issue(c.did)  # not offered: only the token is handed over
    async with cluster.api(c) as api:
        added = await ok(await api.post("/delegations", json={"token": base64.b64encode(d.raw).decode()}), 201)
        assert added["stored"] is True and added["iss"] == b.did
        sub = await ok(await api.post("/jobs", json={"spec": wasm_job(hello_wasm), "node": b.did}), 201)
        doc = await wait_job(api, sub["id"])
        assert doc["state"] == "completed", doc["error"]
    assert a.did != c.did
