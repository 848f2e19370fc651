"""The training loop through a real node's API: data sets added (a missing file 404, a schema that does not
match 400, the path never shown), a training run matched (no tags: unmatched with counts), run to the end
with its rounds, contracts with their timelines, the pending summary and the metrics_summary section."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_digits

from agora.api import create_app
from agora.node import Node
from tests.integration.node.conftest import NodeFactory
from tests.support import require_binary

pytestmark = pytest.mark.integration

FEATURES = [f"x{i}" for i in range(64)]
LOCAL = {"providers": "local"}
SPEC = {
    "schema": {"features": FEATURES, "label": "y", "classes": [str(i) for i in range(10)]},
    "data_tags": ["digits"],
    "rounds": 2,
    "min_providers": 2,
    "max_providers": 3,
    "min_fit": 2,
    "round_deadline_s": 60,
    "hyper": {"learning_rate": 0.5},
    "max_update_norm": 1e4,
}


@pytest.fixture
async def api(make_node: NodeFactory) -> AsyncIterator[httpx.AsyncClient]:
    require_binary("bwrap", "bubblewrap")
    node: Node = await make_node("owner", hub=True, settlement="none")
    transport = httpx.ASGITransport(app=create_app(node), client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=120) as c:
        yield c


def parts(tmp_path: Path) -> list[Path]:
    x, y = load_digits(return_X_y=True)
    tmp_path.chmod(0o755)
    out = []
    for i, idx in enumerate(np.array_split(np.arange(900), 3)):
        path = tmp_path / f"part{i}.npz"
        np.savez(path, x=x[idx] / 16.0, y=y[idx])
        out.append(path)
    return out


async def test_the_training_loop_through_the_api(api: httpx.AsyncClient, tmp_path: Path) -> None:
    missing = await api.post("/datasets", json={"path": str(tmp_path / "nope.npz"), "tags": ["d"], "licence": "MIT"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "dataset_not_found"
    paths = parts(tmp_path)
    wrong = await api.post(
        "/datasets",
        json={"path": str(paths[0]), "tags": ["d"], "licence": "MIT", "schema": {"features": ["a"], "label": "y"}},
    )
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "dataset_schema_mismatch"
    for p in paths:
        made = await api.post("/datasets", json={"path": str(p), "tags": ["digits"], "licence": "BSD-3-Clause"})
        assert made.status_code == 201 and made.json()["rows"] == 300
    listed = (await api.get("/datasets")).json()["datasets"]
    assert len(listed) == 3 and str(tmp_path) not in str(listed)

    nothing = await api.post("/training/runs", json={**SPEC, "data_tags": ["x-ray"]}, params=LOCAL)
    assert nothing.status_code == 201 and nothing.json()["state"] == "unmatched"
    assert nothing.json()["match"]["counts"]["data_tags_missing"] == 3

    started = await api.post("/training/runs", json=SPEC, params=LOCAL)
    assert started.status_code == 201 and started.json()["state"] == "running"
    run_id = started.json()["run_id"]
    done = (await api.get(f"/training/runs/{run_id}", params={"wait_s": 110})).json()
    assert done["state"] == "completed" and len(done["rounds"]) == 2
    assert all(p["delivered"] == [1, 2] for p in done["providers"])
    assert done["rounds"][-1]["metrics"]["eval_accuracy"] > 0.7

    contract = (await api.get(f"/contracts/{done['providers'][0]['contract_id']}")).json()
    events = [e["event"] for e in contract["timeline"]]
    assert events.count("bound_to_round") == 2 and events.count("update_released") == 2
    assert contract["state"] == "delivered" and events[-1] == "delivered"  # no settlement: no money moved

    status = (await api.get("/training/status")).json()
    assert [r["run_id"] for r in status["runs"]] and status["pending"]["contracts"] == 0
    summary = (await api.get("/metrics_summary")).json()["training"]
    assert summary["updates"]["delivered"] == 6 and summary["datasets"] == 3

    bad = await api.post("/training/runs", json={**SPEC, "rounds": 0}, params=LOCAL)
    assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "training.rounds"
