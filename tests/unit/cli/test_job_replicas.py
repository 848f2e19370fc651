"""`agora job status` and `agora job why` show each replica of a redundant unit, and `why` the bids asked
(`k`), against a mock node (httpx.MockTransport)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from agora.cli import job as job_cli
from agora.cli.main import app
from agora.client import AgoraClient
from tests.unit.cli.test_job_why import LAST

runner = CliRunner()
HONEST = "did:key:z6MkHonestProviderAAAAAAAAAAA1"
LIAR = "did:key:z6MkLyingProviderBBBBBBBBBBBB2"


def replica(slot: int, provider: str, state: str, digest: str | None, verdict: str | None) -> dict[str, Any]:
    return {"slot": slot, "provider": provider, "state": state, "digest": digest, "verdict": verdict, "receipt": None}


REPLICAS = [
    replica(1, HONEST, "completed", "aaaa1111", "agreed"),
    replica(2, LIAR, "completed", "bbbb2222", "disagreed"),
    replica(3, HONEST[:-1] + "3", "cancelled", None, None),
]
CHOSEN = [HONEST, LIAR, HONEST[:-1] + "3", HONEST[:-1] + "4"]
ROUND = LAST | {"outcome": "committed", "k": 4, "want": 3, "blocking": {}, "excluded": [], "declines": []}
ROUND["decision"] = LAST["decision"] | {"chosen": CHOSEN}
WHY = {
    "id": "job-2",
    "state": "completed",
    "market": True,
    "queue": None,
    "error": None,
    "units": {
        "hello": {
            "state": "completed",
            "node": HONEST,
            "excluded": [],
            "rounds": [ROUND],
            "last": ROUND,
            "replicas": REPLICAS,
        }
    },
    "summary": "hello: completed",
}
JOB = {
    "id": "job-2",
    "name": "verified",
    "node": "",
    "state": "completed",
    "error": None,
    "market": True,
    "queue": None,
    "units": [
        {
            "key": "hello",
            "state": "completed",
            "node": HONEST,
            "attempts": 1,
            "alloc_id": "a-1",
            "outputs": [],
            "replicas": REPLICAS,
        }
    ],
}


@pytest.fixture
def mock_node(monkeypatch: pytest.MonkeyPatch) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=WHY if request.url.path.endswith("/why") else JOB)

    class Mocked(AgoraClient):
        def __init__(self, base_url: str | None = None, **kw: Any) -> None:
            super().__init__("http://127.0.0.1:1", transport=httpx.MockTransport(handle))

    monkeypatch.setattr(job_cli, "AgoraClient", Mocked)


def test_job_status_lists_each_replica_with_its_outputs_and_verdict(mock_node: None) -> None:
    out = runner.invoke(app, ["job", "status", "job-2"])
    assert out.exit_code == 0, out.output
    assert "replicas:" in out.output
    assert "hello~r2" in out.output and "bbbb2222" in out.output and "disagreed" in out.output
    assert "hello~r3" in out.output and "cancelled" in out.output


def test_job_why_shows_the_bids_asked_and_each_replica(mock_node: None) -> None:
    out = runner.invoke(app, ["job", "why", "job-2"])
    assert out.exit_code == 0, out.output
    assert "4 asked for a bid (k 4)" in out.output
    assert "replica 2 on" in out.output and "outputs bbbb2222, disagreed" in out.output
    assert "replica 1 on" in out.output and "agreed" in out.output
