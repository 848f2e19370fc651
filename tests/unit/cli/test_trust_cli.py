"""`agora trust show|list` and the trust columns of `agora job why`, against a mock node (httpx.MockTransport)."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from agora.cli import job as job_cli
from agora.cli import trust as trust_cli
from agora.cli.main import app
from agora.client import AgoraClient
from tests.unit.cli.test_job_why import LAST, WHY

runner = CliRunner()
P1 = "did:key:z6MkSmallProviderAAAAAAAAAAAA1"
REPORT: dict[str, Any] = {
    "provider": P1,
    "score": 0.25,
    "prior": 0.5,
    "known": True,
    "good": 0.0,
    "bad": 3.0,
    "counts": {"failure": 2, "timeout": 1},
    "weights": {"failure": 2.0, "timeout": 1.0},
    "cooling_down": True,
    "cooling_until": 1_800_000_000.0,
    "offences": 1,
    "recent_failures": 0,
    "last_at": 1_799_999_700.0,
    "latency_ms": 12.5,
    "records": [
        {
            "id": "ev-1",
            "provider": P1,
            "kind": "timeout",
            "good": False,
            "at": 1_799_999_700.0,
            "cites": {"job": "job-9", "unit": "hello#1", "alloc": "a-1"},
            "detail": "task_timeout: did not end",
        }
    ],
    "records_kept": 3,
}
ALL = {"now": 1_800_000_000.0, "settings": {"prior": 0.5}, "providers": [REPORT]}


@pytest.fixture
def mock_node(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    why = copy.deepcopy(WHY)
    why["units"]["hello"]["last"] = last = copy.deepcopy(LAST)
    last["trust"] = {P1: {"score": 0.25, "known": True, "counts": {}, "cooling_until": None, "latency_ms": 12.5}}

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url.path) + ("?" + request.url.query.decode() if request.url.query else ""))
        path = request.url.path
        body = why if path.endswith("/why") else (ALL if path == "/trust" else REPORT)
        return httpx.Response(200, json=body)

    class Mocked(AgoraClient):
        def __init__(self, base_url: str | None = None, **kw: Any) -> None:
            super().__init__("http://127.0.0.1:1", transport=httpx.MockTransport(handle))

    monkeypatch.setattr(trust_cli, "AgoraClient", Mocked)
    monkeypatch.setattr(job_cli, "AgoraClient", Mocked)
    return seen


def test_trust_show_prints_the_score_its_breakdown_the_penalty_and_the_evidence(mock_node: list[str]) -> None:
    out = runner.invoke(app, ["trust", "show", P1, "--records", "5"])
    assert out.exit_code == 0, out.output
    assert mock_node == [f"/trust/{P1}?records=5"]
    assert "score    0.250 (prior 0.5; good 0.000, bad 3.000)" in out.output
    assert "evidence failure 2, timeout 1" in out.output
    assert "cooling down until 2027-01-15 08:00:00Z (offence 1)" in out.output
    assert "12.5 ms" in out.output and "alloc=a-1, job=job-9, unit=hello#1" in out.output
    as_json = runner.invoke(app, ["trust", "show", P1, "--json"])
    assert as_json.exit_code == 0 and json.loads(as_json.output) == REPORT


def test_trust_list_prints_every_known_provider(mock_node: list[str]) -> None:
    out = runner.invoke(app, ["trust", "list"])
    assert out.exit_code == 0, out.output
    assert "0.250" in out.output and "failure 2, timeout 1" in out.output and "300s ago" in out.output
    assert "a provider not listed scores the prior 0.5" in out.output
    assert json.loads(runner.invoke(app, ["trust", "list", "--json"]).output) == ALL


def test_job_why_shows_each_candidate_s_trust_and_latency(mock_node: list[str]) -> None:
    out = runner.invoke(app, ["job", "why", "job-1"])
    assert out.exit_code == 0, out.output
    header = next(line for line in out.output.splitlines() if line.startswith("PROVIDER"))
    assert "TRUST" in header and "LATENCY" in header
    row = next(line for line in out.output.splitlines() if "rejected" in line)
    assert "0.25" in row and "12 ms" in row


def test_trust_show_takes_a_devnet_name_like_every_command_that_wants_a_did(
    mock_node: list[str], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".agora-devnet").mkdir()
    members = {"hub": {"name": "hub", "did": "did:key:z6MkHub"}, "nodes": [{"name": "node-1", "did": P1}]}
    (tmp_path / ".agora-devnet" / "devnet.json").write_text(json.dumps(members))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGORA_DEVNET_DIR", raising=False)
    out = runner.invoke(app, ["trust", "show", "node-1"])
    assert out.exit_code == 0, out.output
    assert mock_node == [f"/trust/{P1}?records=10"]
    out = runner.invoke(app, ["trust", "show", "node-9"])
    assert (
        out.exit_code == 1 and "did_invalid: 'node-9' is neither a DID nor a devnet member (hub, node-1)" in out.output
    )
