"""The local API: endpoints, error mapping, and the loopback-only guard."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from agora.api import ApiServer, create_app
from agora.client import AgoraClient
from agora.errors import AgoraError
from agora.node import Node
from tests.integration.node.conftest import NodeFactory, make_node  # noqa: F401 (fixture)


@pytest.fixture
async def hub_node(make_node: NodeFactory) -> AsyncIterator[Node]:  # noqa: F811
    yield await make_node("hub", hub=True)


async def _asgi(node: Node, client_host: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(node), client=(client_host, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


async def test_endpoints(hub_node: Node) -> None:
    async with await _asgi(hub_node, "127.0.0.1") as c:
        assert (await c.get("/health")).json()["status"] == "ok"
        node = (await c.get("/node")).json()
        assert node["did"] == hub_node.did and node["is_hub"] is True
        assert (await c.get("/peers")).json() == {"peers": []}
        events = (await c.get("/events", params={"kind": "node.started"})).json()["events"]
        assert events and events[0]["subject"] == hub_node.did
        metrics = await c.get("/metrics")
        assert metrics.status_code == 200 and "agora_messages_in_total" in metrics.text
        spec = (await c.get("/openapi.json")).json()
        assert {"/health", "/node", "/peers", "/events", "/metrics", "/ping"} <= set(spec["paths"])


@pytest.mark.parametrize("host", ["10.1.2.3", "192.168.1.20", "203.0.113.9", "::ffff:10.0.0.1", "fe80::1"])
async def test_remote_callers_get_403(hub_node: Node, host: str) -> None:
    async with await _asgi(hub_node, host) as c:
        for path in ("/health", "/node", "/metrics", "/openapi.json"):
            resp = await c.get(path)
            assert resp.status_code == 403
            assert resp.json()["error"]["code"] == "forbidden_remote_caller"
    body, _ = hub_node.metrics.render()
    assert b'agora_rejects_total{code="forbidden_remote_caller"}' in body


async def test_ipv6_loopback_is_local(hub_node: Node) -> None:
    async with await _asgi(hub_node, "::1") as c:
        assert (await c.get("/health")).status_code == 200


async def test_errors_carry_code_and_hint(hub_node: Node) -> None:
    async with await _asgi(hub_node, "127.0.0.1") as c:
        bad = await c.post("/ping", json={"did": "did:key:nope"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "did_invalid"
        invalid = await c.post("/ping", json={"count": 1000})
        assert invalid.status_code == 400 and invalid.json()["error"]["code"] == "invalid_argument"
        paths = {e["path"] for e in invalid.json()["error"]["details"]["errors"]}
        assert "body.did" in paths and "body.count" in paths


async def test_real_server_tcp_and_unix_socket(hub_node: Node, tmp_path: Path) -> None:
    # the sync client runs in a thread: the server shares this test's event loop
    def use_tcp(url: str) -> str:
        with AgoraClient(url) as c:
            assert c.node()["did"] == hub_node.did
            with pytest.raises(AgoraError) as err:
                c.ping("did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp", timeout=0.5)
            return err.value.code

    tcp = ApiServer(hub_node, port=0)
    url = await tcp.start()
    try:
        assert await asyncio.to_thread(use_tcp, url) in ("peer_unreachable", "timeout")
    finally:
        await tcp.stop()

    def use_uds(url: str) -> str:
        with AgoraClient(url) as c:
            return str(c.health()["did"])

    sock = tmp_path / "api.sock"
    uds = ApiServer(hub_node, uds=sock)
    url = await uds.start()
    try:
        assert url.startswith("unix://")
        assert await asyncio.to_thread(use_uds, url) == hub_node.did
    finally:
        await uds.stop()
    assert not sock.exists()


def test_client_says_when_no_node_runs() -> None:
    with AgoraClient("http://127.0.0.1:9") as c, pytest.raises(AgoraError) as err:
        c.health()
    assert err.value.code == "node_not_running" and "agora" in err.value.hint


async def test_port_in_use_is_a_clear_error(hub_node: Node) -> None:
    first = ApiServer(hub_node, port=0)
    await first.start()
    try:
        with pytest.raises(AgoraError) as err:
            await ApiServer(hub_node, port=first.port).start()
        assert err.value.code == "config_invalid" and "--api-port" in err.value.hint
    finally:
        await first.stop()


async def test_unix_socket_is_private(hub_node: Node, tmp_path: Path) -> None:
    sock = tmp_path / "api.sock"
    server = ApiServer(hub_node, uds=sock)
    await server.start()
    try:
        assert sock.stat().st_mode & 0o777 == 0o600
    finally:
        await server.stop()


async def test_unix_socket_is_private_from_the_moment_it_listens(
    hub_node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only once `start` returns: a connection another local user made while the socket was wider would
    stay open (keep-alive) with the unix socket's full, tokenless access. So its mode is 0600 before it
    listens; the mode is read the moment the server starts listening, before `start` goes on."""
    sock = tmp_path / "api.sock"
    modes: list[int] = []
    original = uvicorn.Server.startup

    async def startup(self: uvicorn.Server, sockets: Any = None) -> None:
        await original(self, sockets=sockets)
        modes.append(sock.stat().st_mode & 0o777)  # listening now

    monkeypatch.setattr(uvicorn.Server, "startup", startup)
    server = ApiServer(hub_node, uds=sock)
    await server.start()
    try:
        assert modes == [0o600]
    finally:
        await server.stop()


async def test_health_is_503_when_the_hub_link_is_down(hub_node: Node) -> None:
    assert hub_node.transport is not None
    async with await _asgi(hub_node, "127.0.0.1") as c:
        assert (await c.get("/health")).status_code == 200
        await hub_node.transport.close()
        resp = await c.get("/health")
        assert resp.status_code == 503 and resp.json()["status"] == "degraded"


def test_client_finds_a_devnet_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agora.client import discover_api

    devnet = tmp_path / ".agora-devnet"
    devnet.mkdir()
    state = {
        "hub": {"name": "hub", "api": "http://127.0.0.1:1001"},
        "nodes": [
            {"name": "node-1", "api": "http://127.0.0.1:1002"},
            {"name": "node-2", "api": "http://127.0.0.1:1003"},
        ],
    }
    (devnet / "devnet.json").write_text(json.dumps(state))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGORA_API", raising=False)
    monkeypatch.setenv("AGORA_HOME", str(tmp_path / "no-node-here"))
    assert discover_api() == "http://127.0.0.1:1002"
    monkeypatch.setenv("AGORA_NODE", "node-2")
    assert discover_api() == "http://127.0.0.1:1003"
    monkeypatch.setenv("AGORA_API", "http://127.0.0.1:9999")
    assert discover_api() == "http://127.0.0.1:9999"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Host": "rebind.attacker.example"}, 403),  # DNS rebinding: a web page reaching 127.0.0.1 under its name
        ({"Host": "127.0.0.1:8765", "Origin": "https://attacker.example"}, 403),  # a web page's request
        ({"Host": "localhost:8765"}, 200),
        ({"Host": "127.0.0.1"}, 200),
        ({"Host": "[::1]:8765"}, 200),
        ({"Host": "127.0.0.1:8765", "Origin": "http://localhost:3000"}, 200),
    ],
)
async def test_only_requests_addressed_to_this_machine_are_served(
    hub_node: Node, headers: dict[str, str], status: int
) -> None:
    async with await _asgi(hub_node, "127.0.0.1") as c:
        resp = await c.get("/health", headers=headers)
        assert resp.status_code == status
        if status == 403:
            assert resp.json()["error"]["code"] == "forbidden_remote_caller"
