"""How `agora job run` / `job logs` print the node's own log lines: each state once (a job's move that repeats
its task's is not said again), DIDs short, unix times as UTC; `--json` keeps the lines as the node wrote them."""

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
P = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
UNTIL = 1796327351  # 2026-12-03 19:49:11 UTC


def agora(task: str, text: str) -> dict[str, Any]:
    return {"task": task, "stream": "agora", "line": text, "t": 1.0, "attempt": 1}


LINES = [
    agora("hello", "hello: bidding (asking 1 provider(s) for a bid: " + P + ")"),
    agora("", "job job-1: bidding (asking 1 provider(s) for a bid: " + P + ")"),
    agora("hello", f"hello: committed ({P} committed at 32 until {UNTIL})"),
    agora("", f"job job-1: committed ({P} committed at 32 until {UNTIL})"),
    {"task": "hello", "stream": "stdout", "line": "hello from wat", "t": 1.0, "attempt": 1},
    agora("hello", "hello: completed (verified, 1 output(s))"),
    agora("", "job job-1: completed (1 task(s) completed)"),
]
PAGE = {"lines": LINES, "next": len(LINES), "dropped": 0, "done": True, "expired": False}


@pytest.fixture
def mock_node(monkeypatch: pytest.MonkeyPatch) -> None:
    class Mocked(AgoraClient):
        def __init__(self, base_url: str | None = None, **kw: Any) -> None:
            transport = httpx.MockTransport(lambda request: httpx.Response(200, json=PAGE))
            super().__init__("http://127.0.0.1:1", transport=transport)

    monkeypatch.setattr(job_cli, "AgoraClient", Mocked)


def test_each_state_is_said_once_with_short_dids_and_utc_times(mock_node: None) -> None:
    out = runner.invoke(app, ["job", "logs", "job-1"])
    assert out.exit_code == 0, out.output
    assert out.output.splitlines() == [
        f"[hello] » bidding (asking 1 provider(s) for a bid: {short(P)})",
        f"[hello] » committed ({short(P)} committed at 32 until 19:49:11 UTC)",
        "[hello] hello from wat",
        "[hello] » completed (verified, 1 output(s))",
    ]
    as_json = runner.invoke(app, ["job", "logs", "job-1", "--json"])
    assert as_json.exit_code == 0 and json.loads(as_json.output)["lines"] == LINES  # as the node wrote them


def test_a_job_move_of_its_own_is_still_said(capsys: pytest.CaptureFixture[str]) -> None:
    assert job_cli.readable(f"by {UNTIL}.5 at 1200") == "by 19:49:11 UTC at 1200"  # a price is not a time
    pr = job_cli._Printer()
    pr(agora("a", "a: completed (verified, 0 output(s))"))
    pr(agora("", "job job-1: running (1 of 2 task(s) completed)"))
    pr(agora("", "job job-1: failed (b: exit 1)"))
    assert capsys.readouterr().out.splitlines() == [
        "[a] » completed (verified, 0 output(s))",
        "[job] » running (1 of 2 task(s) completed)",
        "[job] » failed (b: exit 1)",
    ]
