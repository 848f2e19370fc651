"""`agora job why` and the queue line of `agora job status`, against a mock node (httpx.MockTransport)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from agora.cli import job as job_cli
from agora.cli.main import app
from agora.cli.output import short
from agora.client import AgoraClient

runner = CliRunner()
P1 = "did:key:z6MkSmallProviderAAAAAAAAAAAA1"
P2 = "did:key:z6MkOtherProviderBBBBBBBBBBBB2"

LAST: dict[str, Any] = {
    "at": 1.0,
    "outcome": "no_fit",
    "provider": None,
    "price": None,
    "only": None,
    "excluded": [P2],
    "decision": {
        "strategy": "balanced",
        "chosen": [],
        "considered": 1,
        "passed": 0,
        "counts": {"insufficient_cpu": 1},
        "what_would_fit": [{"provider": P1, "text": "lower cpu to 1 core", "changes": []}],
        "hint": "lower cpu to 1 core",
        "candidates": [
            {
                "provider": P1,
                "verdict": "rejected",
                "ok": False,
                "quote": 60,
                "score": 0.0,
                "position": None,
                "breakdown": {},
                "reasons": [{"code": "insufficient_cpu", "text": "insufficient_cpu: need 2 cores, free 1 core"}],
            }
        ],
    },
    "bids": [],
    "declines": [{"provider": P2, "codes": ["busy"], "reasons": [{"code": "busy", "text": "no room"}]}],
    "failures": [],
    "blocking": {"insufficient_cpu": 1},
}
WHY = {
    "id": "job-1",
    "state": "pending",
    "market": True,
    "queue": {"position": 2, "of": 3, "deadline": None, "blocking": {"insufficient_cpu": 1}},
    "error": None,
    "units": {"hello": {"state": "pending", "node": "", "excluded": [P2], "rounds": [LAST], "last": LAST}},
    "summary": "hello: pending (no_fit: 1 considered; insufficient_cpu x1)",
}
JOB = {
    "id": "job-1",
    "name": "x",
    "node": "",
    "state": "pending",
    "error": None,
    "market": True,
    "queue": WHY["queue"],
    "units": [{"key": "hello", "state": "pending", "node": "", "attempts": 1, "alloc_id": None, "outputs": []}],
}


@pytest.fixture
def mock_node(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        body = WHY if request.url.path.endswith("/why") else JOB
        return httpx.Response(200, json=body)

    class Mocked(AgoraClient):
        def __init__(self, base_url: str | None = None, **kw: Any) -> None:
            super().__init__("http://127.0.0.1:1", transport=httpx.MockTransport(handle))

    monkeypatch.setattr(job_cli, "AgoraClient", Mocked)
    return seen


def test_job_why_shows_every_candidate_its_reasons_the_declines_and_what_would_fit(mock_node: list[str]) -> None:
    out = runner.invoke(app, ["job", "why", "job-1"])
    assert out.exit_code == 0, out.output
    assert mock_node == ["/jobs/job-1/why"]
    assert "hello: pending; last round no_fit, 1 considered, 0 passed" in out.output
    assert "insufficient_cpu: need 2 cores, free 1 core" in out.output
    assert "lower cpu to 1 core" in out.output and "declined" in out.output and "busy: no room" in out.output
    assert "excluded (lost under this unit)" in out.output
    as_json = runner.invoke(app, ["job", "why", "job-1", "--json"])
    assert as_json.exit_code == 0 and json.loads(as_json.output) == WHY


def test_job_status_shows_the_queue_position_and_what_blocks_it(mock_node: list[str]) -> None:
    out = runner.invoke(app, ["job", "status", "job-1"])
    assert out.exit_code == 0, out.output
    assert "pending: position 2 of 3 in this node's queue; insufficient_cpu x1" in out.output
    assert "job job-1 (x) pending on the market" in out.output


@pytest.mark.parametrize(
    ("market", "node", "said"),
    [
        (True, "", "hello: failed (no market round: none recorded)"),
        (False, P2, f"hello: completed on {short(P2)} (no market round: --node with a grant)"),
    ],
)
def test_job_why_without_a_round_says_why_only_for_a_grant_job(
    monkeypatch: pytest.MonkeyPatch, market: bool, node: str, said: str
) -> None:
    """A market job that failed before its first round was told "--node with a grant", on no node."""
    unit = {"state": "failed" if market else "completed", "node": node, "excluded": [], "rounds": [], "last": None}
    why = {**WHY, "market": market, "units": {"hello": unit}}

    class Mocked(AgoraClient):
        def __init__(self, base_url: str | None = None, **kw: Any) -> None:
            transport = httpx.MockTransport(lambda request: httpx.Response(200, json=why))
            super().__init__("http://127.0.0.1:1", transport=transport)

    monkeypatch.setattr(job_cli, "AgoraClient", Mocked)
    out = runner.invoke(app, ["job", "why", "job-1"])
    assert out.exit_code == 0, out.output
    assert said in out.output.splitlines(), out.output
