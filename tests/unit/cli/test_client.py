"""AgoraClient: what it sends, checked at the HTTP boundary (an httpx.MockTransport in place of a node)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from agora.client import AgoraClient, discover_api, resolve_node
from agora.devnet import load_state
from agora.errors import AgoraError


def _recording(seen: list[dict[str, Any]]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"id": "job-1", "name": "x", "node": "did:key:z"})

    return httpx.MockTransport(handle)


def test_submit_job_looks_up_relative_paths_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    seen: list[dict[str, Any]] = []
    with AgoraClient("http://127.0.0.1:1", transport=_recording(seen)) as c:
        c.submit_job("name: x\ntasks: [{name: t, module: hello.wat}]\n")
        c.submit_job({"name": "x"}, base_dirs=["/srv/jobs", "/srv/modules"])
        c.submit_job({"name": "x"}, base_dirs=[])
    assert [body["base_dirs"] for body in seen] == [[str(tmp_path)], ["/srv/jobs", "/srv/modules"], []]


def test_a_named_devnet_node_wins_over_the_own_node_in_the_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "run.json").write_text(json.dumps({"api": "http://127.0.0.1:8765"}))
    (tmp_path / ".agora-devnet").mkdir()
    members = {
        "hub": {"name": "hub", "api": "http://127.0.0.1:1000"},
        "nodes": [
            {"name": "node-1", "api": "http://127.0.0.1:1001"},
            {"name": "node-2", "api": "http://127.0.0.1:1002"},
        ],
    }
    (tmp_path / ".agora-devnet" / "devnet.json").write_text(json.dumps(members))
    monkeypatch.chdir(tmp_path)
    for var in ("AGORA_API", "AGORA_NODE", "AGORA_DEVNET_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AGORA_HOME", str(home))
    assert discover_api() == "http://127.0.0.1:8765"  # nothing named: the own node
    monkeypatch.setenv("AGORA_NODE", "node-2")
    assert discover_api() == "http://127.0.0.1:1002"  # named: that devnet node, not the own one
    monkeypatch.setenv("AGORA_API", "http://127.0.0.1:7")
    assert discover_api() == "http://127.0.0.1:7"
    monkeypatch.delenv("AGORA_API")
    monkeypatch.setenv("AGORA_NODE", "node-9")
    with pytest.raises(AgoraError) as info:
        discover_api()
    assert info.value.code == "invalid_argument" and "node-9" in info.value.message
    assert "has no member of that name" in info.value.message
    monkeypatch.chdir(home)  # no devnet here at all: say that, not that a devnet lacks the name
    with pytest.raises(AgoraError) as info:
        discover_api()
    assert "there is no devnet here (no .agora-devnet/devnet.json)" in info.value.message


def test_a_devnet_file_others_can_write_is_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """./.agora-devnet/devnet.json is read from the current directory, which may be one others can write (/tmp):
    a file planted there would send the CLI's calls, job inputs included, to an API of the planter's choosing.
    A devnet file that is not the user's own, or that anyone may rewrite, is refused instead of followed."""
    home = tmp_path / "home"
    home.mkdir()  # no node of the user's own runs: discovery falls through to the devnet file
    (tmp_path / ".agora-devnet").mkdir()
    planted = tmp_path / ".agora-devnet" / "devnet.json"
    doc = {"hub": {"name": "hub", "did": "did:key:zHub", "api": "http://127.0.0.1:1000"}, "nodes": []}
    doc["nodes"] = [{"name": "node-1", "did": "did:key:zAttacker", "api": "http://127.0.0.1:6666"}]
    planted.write_text(json.dumps(doc))
    planted.chmod(0o666)
    monkeypatch.chdir(tmp_path)
    for var in ("AGORA_API", "AGORA_NODE", "AGORA_DEVNET_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AGORA_HOME", str(home))
    for call in (discover_api, lambda: resolve_node("node-1")):
        with pytest.raises(AgoraError) as info:
            call()
        assert info.value.code == "config_invalid" and "devnet.json" in info.value.message
    monkeypatch.setenv("AGORA_NODE", "node-1")
    with pytest.raises(AgoraError) as info:
        discover_api()
    assert info.value.code == "config_invalid"
    with pytest.raises(AgoraError) as info:
        load_state(tmp_path / ".agora-devnet")
    assert info.value.code == "config_invalid"
    planted.chmod(0o644)  # the user's own file, writable only by the user: followed
    assert discover_api() == "http://127.0.0.1:6666" and resolve_node("node-1") == "did:key:zAttacker"


def test_a_degraded_node_s_health_is_a_reading_not_an_error() -> None:
    """/health answers 503 while the node is degraded: `health()` returns that body (its reasons say why), and
    `agora status` / `agora devnet status` show `degraded` instead of failing with `internal`."""
    degraded = {"status": "degraded", "reasons": ["transport disconnected"], "transport": "disconnected"}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/health":
            return httpx.Response(503, json=degraded)
        return httpx.Response(503, json={"error": {"code": "unavailable", "message": "busy", "hint": ""}})

    with AgoraClient("http://127.0.0.1:1", transport=httpx.MockTransport(handle)) as c:
        assert c.health() == degraded
        with pytest.raises(AgoraError) as info:
            c.node()  # a 503 elsewhere is still an error
    assert info.value.code == "unavailable"


def test_an_error_body_from_health_is_still_an_error() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        error = {"code": "api_token_invalid", "message": "token", "hint": ""}
        return httpx.Response(503 if request.url.path == "/health" else 401, json={"error": error})

    client = AgoraClient("http://127.0.0.1:1", transport=httpx.MockTransport(handle))
    with client, pytest.raises(AgoraError) as info:
        client.health()
    assert info.value.code == "api_token_invalid"
