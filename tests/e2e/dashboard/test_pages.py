"""The dashboard's pages on a real node, without a browser: served on the API's app behind the same guard
(a remote caller or a foreign origin is refused, the token is asked when the API asks it), readable
without JavaScript, the API's refusals shown on the page, the feature pages of an absent API labelled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from agora.api import create_app
from agora.dashboard import NAV, mount_dashboard
from agora.node import Node
from tests.integration.node.conftest import NodeFactory

pytestmark = pytest.mark.integration


@pytest.fixture
async def node(make_node: NodeFactory) -> Node:
    return await make_node("hub", hub=True)


def _client(node: Node, *, peer: str = "127.0.0.1", token: str | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(node, api_token=token), client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


@pytest.fixture
async def ui(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(node) as c:
        yield c


async def test_the_overview_reads_the_node_through_its_api(ui: httpx.AsyncClient, node: Node) -> None:
    root = await ui.get("/")
    assert root.status_code == 307 and root.headers["location"] == "/ui/"
    page = await ui.get("/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert node.did in page.text and 'class="error"' not in page.text
    for path, name in NAV:
        assert f'href="/ui/{path}"' in page.text and name in page.text
    script = await ui.get("/ui/static/htmx.min.js")
    assert script.status_code == 200 and 'version:"2.' in script.text  # htmx 2.x, served locally
    assert "://" not in page.text.split("<body>")[0].replace("http://www.w3.org", "")  # nothing from elsewhere


async def test_the_guard_covers_the_pages(node: Node) -> None:
    async with _client(node, peer="203.0.113.5") as remote:
        refused = await remote.get("/ui/")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden_remote_caller"
    async with _client(node) as local:
        forged = await local.post(
            "/ui/offers/new", content=b"cpu=1&memory_mib=64", headers={"origin": "https://attacker.example"}
        )
        assert forged.status_code == 403
        assert (await local.get("/offers")).json()["offers"] == []  # the forged form made nothing
    async with _client(node, token="s3cret") as tokened:
        assert (await tokened.get("/ui/")).status_code == 401
        page = await tokened.get("/ui/", headers={"authorization": "Bearer s3cret"})
        assert page.status_code == 200 and node.did in page.text  # the dashboard's own calls carry the token


async def test_a_bad_field_is_shown_next_to_it(ui: httpx.AsyncClient) -> None:
    page = await ui.post(
        "/ui/intents/new", content=b"job_name=j&module=%2Ftmp%2Fm.wasm&cpu=0.5&memory=64Mi&budget=lots"
    )
    assert page.status_code == 200 and 'role="alert"' in page.text
    assert 'data-field="budget"' in page.text and 'aria-invalid="true"' in page.text
    assert 'value="lots"' in page.text  # what was typed is kept
    assert (await ui.get("/intents")).json()["intents"] == []


async def test_a_refused_settlement_is_shown_with_its_code(ui: httpx.AsyncClient) -> None:
    moved = await ui.post("/ui/contracts/contract-nope/release", content=b"")
    assert moved.status_code == 303 and "code=contract_not_found" in moved.headers["location"]
    page = await ui.get(moved.headers["location"])
    assert page.status_code == 200 and "Refused: <code>contract_not_found</code>" in page.text


async def test_a_feature_without_its_api_is_labelled() -> None:
    app = FastAPI()  # an app that serves the dashboard but neither /training nor /inference
    mount_dashboard(app)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as bare:
        for slug in ("training", "inference"):
            page = await bare.get(f"/ui/{slug}")
            assert page.status_code == 200 and "not available on this node" in page.text


async def test_the_feature_pages_read_their_apis(ui: httpx.AsyncClient) -> None:
    training = await ui.get("/ui/training")
    assert training.status_code == 200 and 'class="error"' not in training.text
    assert "No training run on this node yet." in training.text and 'id="pending-summary"' in training.text
    assert '<textarea id="f-spec"' in training.text and "trainer: softmax" in training.text  # a spec to start from
    inference = await ui.get("/ui/inference")
    assert inference.status_code == 200 and 'class="error"' not in inference.text
    assert 'id="inference-summary"' in inference.text and "No model offered in the live ads." in inference.text


async def test_a_bad_training_spec_is_shown_next_to_it(ui: httpx.AsyncClient) -> None:
    spec = "rounds: 0\ndata_tags: [digits]\n"
    page = await ui.post("/ui/training", data={"spec": spec, "providers": "local", "budget": ""})
    assert page.status_code == 200 and 'role="alert"' in page.text and "training_spec_invalid" in page.text
    assert 'data-field="spec"' in page.text and 'aria-invalid="true"' in page.text
    assert "rounds: 0" in page.text  # what was typed is kept
    unreadable = await ui.post("/ui/training", data={"spec": "rounds: [2", "providers": "local"})
    assert 'data-field="spec"' in unreadable.text and "not YAML or JSON" in unreadable.text
    budget = await ui.post("/ui/training", data={"spec": "rounds: 2", "providers": "local", "budget": "lots"})
    assert 'data-field="budget"' in budget.text
    assert (await ui.get("/training/status")).json()["runs"] == []  # nothing started


async def test_a_bad_quote_is_shown_next_to_its_field(ui: httpx.AsyncClient) -> None:
    page = await ui.post("/ui/inference", data={"model": "m", "est_in": "lots", "est_out": "5", "strategy": "balanced"})
    assert page.status_code == 200 and 'data-field="est_in"' in page.text and 'value="lots"' in page.text


async def test_the_market_page_without_a_provider(ui: httpx.AsyncClient) -> None:
    page = await ui.get("/ui/market")
    assert page.status_code == 200 and "No provider in the index." in page.text
    assert 'id="marketplace-summary"' in page.text


async def test_the_ledger_page_shows_balance_and_entries(ui: httpx.AsyncClient, node: Node) -> None:
    minted = await ui.post("/ledger/mint", json={"to": node.did, "amount": 1234, "memo": "seed funds"})
    assert minted.status_code == 201, minted.text
    page = await ui.get("/ui/ledger")
    assert page.status_code == 200 and 'class="error"' not in page.text
    assert '<strong id="balance">1234</strong>' in page.text
    assert "seed funds" in page.text and ": 1234" in page.text  # the entry, its posting to this wallet


async def test_the_inference_page_shows_models_and_quotes(make_node: NodeFactory) -> None:
    seller = await make_node("seller", hub=True, sell=True)
    transport = httpx.ASGITransport(app=create_app(seller), client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as ui:
        added = await ui.post("/inference/models", json={"model": "mock-chat", "runner": "mock", "price_in": 10})
        assert added.status_code == 200, added.text
        async with asyncio.timeout(30):  # bounded wait for its next capacity ad to carry the model
            for _ in range(1500):
                if (await ui.get("/inference/models")).json()["models"]:
                    break
                await asyncio.sleep(0.02)
        page = await ui.get("/ui/inference")
        assert page.status_code == 200 and 'class="error"' not in page.text
        assert "<code>mock-chat</code>" in page.text and "<td>mock</td>" in page.text  # offered, and served here
        quoted = await ui.post(
            "/ui/inference", data={"model": "mock-chat", "est_in": "1000", "est_out": "0", "strategy": "cheapest"}
        )
        assert quoted.status_code == 200 and 'id="quotes"' in quoted.text
        row = quoted.text.split('id="quotes"')[1].split("</tbody>")[0]
        assert seller.did[:16] in row and "<td>10</td>" in row  # 1,000 tokens in at 10 per 1k: at most 10
        unknown = await ui.post("/ui/inference", data={"model": "nope", "est_in": "1", "est_out": "1"})
        assert "model_not_found" in unknown.text and 'role="alert"' in unknown.text
