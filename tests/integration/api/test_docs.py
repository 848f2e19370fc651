"""/docs is a self-contained page: no script, style or link to another site (a node may be offline)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from agora.api import create_app
from agora.node import Node
from tests.integration.node.conftest import NodeFactory, make_node  # noqa: F401 (fixture)


@pytest.fixture
async def hub_node(make_node: NodeFactory) -> AsyncIterator[Node]:  # noqa: F811
    yield await make_node("hub", hub=True)


async def test_docs_page_lists_the_endpoints_without_a_cdn(hub_node: Node) -> None:
    transport = httpx.ASGITransport(app=create_app(hub_node), client=("127.0.0.1", 40000))
    # Host 127.0.0.1: the guard refuses `Host: agora` over TCP (it is the unix socket's name only)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        page = await c.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "<code>/jobs</code>" in page.text and "href='/openapi.json'" in page.text
        assert re.findall(r"(?:src|href)=['\"]([^'\"]+)", page.text) == ["/openapi.json"]
        assert "<script" not in page.text
        assert (await c.get("/redoc")).status_code == 404
        assert "/docs" not in (await c.get("/openapi.json")).json()["paths"]
