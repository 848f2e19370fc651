"""A job's constraints through the local API over a real hub: refused before sending when the target's
capability is known to fail one, refused by the provider otherwise; inert fields warned about on submit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agora.node.compute import compute_of
from tests.integration.compute.conftest import Cluster, until
from tests.integration.compute.test_remote_jobs import _has_caps, ok, wait_job
from tests.unit.compute import wat


def _job(module: Path, **extra: Any) -> dict[str, Any]:
    task = {"name": "hello", "module": str(module), "resources": {"cpu": "500m", "memory": "64Mi", "disk": "16Mi"}}
    return {"name": "constrained", "tasks": [task], **extra}


async def test_constraints_are_enforced_and_inert_fields_warned(cluster: Cluster, tmp_path: Path) -> None:
    a, b = cluster.a, cluster.b
    module = tmp_path / "hello.wasm"
    module.write_bytes(wat.hello())
    await compute_of(b).grant(a.did)
    await until(lambda: _has_caps(a, b.did), "b's capacity ad to reach a")
    riscv = {"constraints": [{"key": "arch", "op": "in", "value": ["riscv64"]}]}
    async with cluster.api(a) as api:
        for target in (b.did, a.did):  # a peer by its announcement, this node by itself
            resp = await api.post("/jobs", json={"spec": _job(module, **riscv), "node": target})
            assert resp.status_code == 409, resp.text
            err = resp.json()["error"]
            assert err["code"] == "constraints_unmet" and "arch in [riscv64]" in err["message"]
            assert [r["dimension"] for r in err["details"]["reasons"]] == ["arch"]
        assert (await ok(await api.get("/jobs")))["jobs"] == []  # nothing was submitted

        # a label is not announced: the requester cannot judge it, the provider does
        spec = _job(
            module,
            constraints=[{"key": "labels.tier", "op": "==", "value": "gpu"}],
            placement={"max_price": 100},
        )
        sub = await ok(await api.post("/jobs", json={"spec": spec, "node": b.did}), 201)
        assert [w.split(":")[0] for w in sub["warnings"]] == ["placement.max_price"]
        doc = await wait_job(api, sub["id"])
        assert doc["state"] == "failed" and doc["error"]["code"] == "constraints_unmet"
        assert [r["dimension"] for r in doc["error"]["details"]["reasons"]] == ["labels.tier"]

        plain = await ok(await api.post("/jobs", json={"spec": _job(module), "node": b.did}), 201)
        assert plain["warnings"] == []
        assert (await wait_job(api, plain["id"]))["state"] == "completed"
