"""A real hub (nats-server) and real nodes (SQLite, NATS, every executor this machine has), driven
through each node's local API in-process (httpx over ASGI: same app, no sockets)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from agora.api import create_app
from agora.node import Node
from tests.integration.executors.wasm_build import EXAMPLES, compile_c
from tests.integration.node.conftest import NodeFactory, fund, make_node

__all__ = ["Cluster", "cluster", "hello_wasm", "make_node"]


@dataclass
class Cluster:
    hub: Node
    a: Node
    b: Node
    make: NodeFactory

    def api(self, node: Node) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=create_app(node), client=("127.0.0.1", 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=60)


async def until(cond: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture(scope="session")
def hello_wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/wasm/hello.c compiled with zig (the ziglang package), once per session."""
    return compile_c(EXAMPLES / "hello.c", tmp_path_factory.mktemp("wasm") / "hello.wasm")


@pytest.fixture
async def cluster(make_node: NodeFactory) -> AsyncIterator[Cluster]:
    hub = await make_node("hub", hub=True)
    assert hub.hub is not None
    a = await make_node("a", hubs=[hub.hub.url])
    b = await make_node("b", hubs=[hub.hub.url])
    for n in (hub, a, b):
        await until(lambda n=n: _sees(n, 2), f"{n.did} to see its peers")
    for n in (a, b):  # either may buy on the market: funded as the devnet funds its members
        await fund(hub, n.did)
    yield Cluster(hub, a, b, make_node)


async def _sees(node: Node, count: int) -> bool:
    return len(node.peer_table.alive()) >= count
