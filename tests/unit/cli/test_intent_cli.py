"""`agora intent show` against a mock node (httpx.MockTransport): times for people, not epoch seconds."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from agora.cli import intent as intent_cli
from agora.cli.main import app
from agora.client import AgoraClient

runner = CliRunner()
DOC: dict[str, Any] = {
    "intent_id": "intent-1",
    "status": "open",
    "intent": {
        "kind": "job",
        "job": {"name": "hello", "tasks": [{"name": "t"}]},
        "budget": 1000,
        "policy": {"max_price": 500},
        "valid_from": 1_800_000_000,
        "valid_until": 1_800_604_800,
    },
    "history": [
        {"at": 1_800_000_000.25, "status": "draft", "cause": "created (api)"},
        {"at": 1_800_000_061.5, "status": "open", "cause": "open (api)"},
    ],
    "contracts": [],
}


@pytest.fixture
def mock_node(monkeypatch: pytest.MonkeyPatch) -> None:
    class Mocked(AgoraClient):
        def __init__(self, base_url: str | None = None, **kw: Any) -> None:
            transport = httpx.MockTransport(lambda request: httpx.Response(200, json=DOC))
            super().__init__("http://127.0.0.1:1", transport=transport)

    monkeypatch.setattr(intent_cli, "AgoraClient", Mocked)


def test_intent_show_says_its_validity_and_history_in_utc(mock_node: None) -> None:
    out = runner.invoke(app, ["intent", "show", "intent-1"])
    assert out.exit_code == 0, out.output
    assert "valid:   2027-01-15 08:00 UTC (" in out.output and ".. 2027-01-22 08:00 UTC (" in out.output
    assert "  2027-01-15 08:00:00.250 UTC  draft      created (api)" in out.output
    assert "  2027-01-15 08:01:01.500 UTC  open       open (api)" in out.output
    assert "1800000000" not in out.output
