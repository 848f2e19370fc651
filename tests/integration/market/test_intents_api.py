"""The intent and contract routes keep the catalog's codes and statuses on a real node: a bad field is 400
`intent_invalid` naming it, a reserved kind 400 `intent_kind_unsupported`, a move a person may not ask for
409 `intent_transition_invalid` with the allowed moves, an unknown intent or contract 404; the snapshot names
where the node's contracts settle (the hub, by default)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from agora.api import create_app
from agora.node import Node
from tests.integration.node.conftest import NodeFactory

pytestmark = pytest.mark.integration

JOB = {"name": "j", "tasks": [{"name": "t", "module": "m.wasm"}]}


@pytest.fixture
async def api(make_node: NodeFactory) -> AsyncIterator[httpx.AsyncClient]:
    node: Node = await make_node("hub", hub=True)
    transport = httpx.ASGITransport(app=create_app(node), client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        yield c


async def test_intent_routes_keep_their_codes(api: httpx.AsyncClient) -> None:
    bad = await api.post("/intents", json={"job": JOB, "budget": -1})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "intent_invalid"
    assert bad.json()["error"]["details"]["field"] == "budget"
    later = await api.post("/intents", json={"job": JOB, "kind": "inference"})
    assert later.status_code == 400 and later.json()["error"]["code"] == "intent_kind_unsupported"

    made = await api.post("/intents", json={"job": JOB, "budget": 50})
    assert made.status_code == 201 and made.json()["status"] == "draft"
    intent_id = made.json()["intent_id"]
    skip = await api.post(f"/intents/{intent_id}/transition", json={"status": "fulfilled"})
    assert skip.status_code == 409 and skip.json()["error"]["code"] == "intent_transition_invalid"
    assert skip.json()["error"]["details"]["allowed"] == ["open", "cancelled", "expired"]
    opened = await api.post(f"/intents/{intent_id}/transition", json={"status": "open"})
    assert opened.status_code == 200 and opened.json()["status"] == "open"
    listed = (await api.get("/intents", params={"status": "open"})).json()["intents"]
    assert [d["intent_id"] for d in listed] == [intent_id]
    preview = await api.post("/match", json={"intent_id": intent_id, "preview": True})
    assert preview.status_code == 200 and preview.json()["preview"] is True
    assert (await api.get(f"/intents/{intent_id}")).json()["status"] == "open"  # the preview changed nothing
    cancelled = await api.post(f"/intents/{intent_id}/transition", json={"status": "cancelled"})
    assert cancelled.json()["status"] == "cancelled"
    again = await api.post("/match", json={"intent_id": intent_id})
    assert again.status_code == 409 and again.json()["error"]["code"] == "intent_transition_invalid"

    missing = await api.get("/intents/intent-nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "intent_not_found"
    none = await api.get("/contracts/contract-nope")
    assert none.status_code == 404 and none.json()["error"]["code"] == "contract_not_found"
    release = await api.post("/contracts/contract-nope/release", json={})
    assert release.status_code == 404
    summary = (await api.get("/metrics_summary")).json()
    assert summary["settlement"] == "hub" and summary["intents"]["by_status"]["cancelled"] == 1
    assert summary["contracts"]["total"] == 0 and summary["matches"]["attempts"] == 0
