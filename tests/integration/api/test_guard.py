"""The local API's guard through the real server: Origin and Host rules, the optional TCP token (7.8)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agora.api import ApiServer
from agora.api import server as api_server
from agora.client import AgoraClient, local_api_token
from agora.errors import AgoraError
from agora.node import Node
from tests.integration.node.conftest import NodeFactory, make_node  # noqa: F401 (fixture)


def _health(url: str, token: str | None = None) -> dict[str, Any]:
    """The CLI's (blocking) client, run in a thread: the server shares this test's event loop."""
    with AgoraClient(url, token=token, timeout=10) as client:
        return client.health()


@pytest.fixture
async def hub_node(make_node: NodeFactory) -> AsyncIterator[Node]:  # noqa: F811
    yield await make_node("hub", hub=True)


@pytest.fixture
async def tcp_url(hub_node: Node) -> AsyncIterator[str]:
    server = ApiServer(hub_node, port=0)
    url = await server.start()
    yield url
    await server.stop()


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "null"}, 403),  # a sandboxed frame or a data: page
        ({"Origin": "file://"}, 403),
        ({"Host": "agora"}, 403),  # the unix-socket name, over TCP
        ({"Host": "agora:8765"}, 403),
        ({"Origin": "http://127.0.0.1:8765"}, 200),
        ({"Host": "localhost"}, 200),
    ],
)
async def test_tcp_requests_with_a_foreign_origin_or_host_are_refused(
    tcp_url: str, headers: dict[str, str], status: int
) -> None:
    async with httpx.AsyncClient(base_url=tcp_url) as c:
        resp = (
            await c.post("/node/bench", headers=headers) if status == 403 else await c.get("/health", headers=headers)
        )
    assert resp.status_code == status, resp.text
    if status == 403:
        assert resp.json()["error"]["code"] == "forbidden_remote_caller"


async def test_the_unix_socket_serves_the_clients_name(hub_node: Node, tmp_path: Path) -> None:
    server = ApiServer(hub_node, uds=tmp_path / "api.sock", require_token=True)  # the socket is 0600: no token
    url = await server.start()
    try:
        assert server.token is None
        assert (await asyncio.to_thread(_health, url))["status"] == "ok"  # Host: agora
    finally:
        await server.stop()


async def test_the_tcp_token_is_asked_for_and_read_by_the_client(
    hub_node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = ApiServer(hub_node, port=0, require_token=True)
    url = await server.start()
    token_file = hub_node.config.api_token_file
    try:
        assert server.token and token_file.read_text() == server.token
        assert token_file.stat().st_mode & 0o777 == 0o600
        async with httpx.AsyncClient(base_url=url) as c:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": server.token}):
                resp = await c.get("/health", headers=headers)
                assert resp.status_code == 401 and resp.json()["error"]["code"] == "api_token_invalid"
                assert "Authorization: Bearer" in resp.json()["error"]["hint"]  # how a curl user sends it
            ok = await c.get("/health", headers={"Authorization": f"Bearer {server.token}"})
            assert ok.status_code == 200
        # the CLI's client: the token of the node its home's run file names, and of no other API
        hub_node.write_run_file()
        monkeypatch.setenv("AGORA_HOME", str(hub_node.config.home))
        assert local_api_token(url) == server.token and local_api_token("http://127.0.0.1:9") is None
        assert (await asyncio.to_thread(_health, url))["status"] == "ok"
        with pytest.raises(AgoraError) as err:
            await asyncio.to_thread(_health, url, "wrong")
        assert err.value.code == "api_token_invalid"
    finally:
        await server.stop()
    assert not token_file.exists()


async def test_no_token_is_asked_by_default(hub_node: Node, tcp_url: str) -> None:
    assert not hub_node.config.api_token_file.exists()
    async with httpx.AsyncClient(base_url=tcp_url) as c:
        assert (await c.get("/health")).status_code == 200


async def test_a_loopback_address_other_than_127_0_0_1_is_served(hub_node: Node) -> None:
    server = ApiServer(hub_node, host="127.0.0.2", port=0)
    url = await server.start()
    try:
        async with httpx.AsyncClient(base_url=url) as c:
            assert (await c.get("/health")).status_code == 200
    finally:
        await server.stop()


async def test_the_bound_address_itself_is_checked(hub_node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api_server, "loopback_address", lambda host: "0.0.0.0")  # a resolver that lies
    with pytest.raises(AgoraError) as err:
        ApiServer(hub_node, host="localhost", port=0).bind()
    assert err.value.code == "config_invalid" and "0.0.0.0" in err.value.message


def test_the_run_file_names_the_api(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"api": "http://127.0.0.1:1"}))
    (tmp_path / "api.token").write_text("t0k3n\n")
    assert local_api_token("http://127.0.0.1:1", tmp_path) == "t0k3n"
    assert local_api_token("http://127.0.0.1:2", tmp_path) is None


def test_the_token_never_lands_in_a_file_someone_planted(tmp_path: Path) -> None:
    """The token is written under a temporary name first. A file planted at that name beforehand (in a home
    others can write), and held open by whoever planted it, must not receive the token: it is replaced, never
    reused, so the planter's descriptor reads nothing."""
    target = tmp_path / "api.token"
    planted = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    planted.write_text("")
    planted.chmod(0o666)
    with open(planted, "rb") as spy:
        api_server._write_private(target, "s3cret")
        assert target.read_text() == "s3cret" and stat.S_IMODE(target.stat().st_mode) == 0o600
        assert spy.read() == b""
    assert not planted.exists()
