"""The one progress mechanism of the CLI's waits (`agora.cli.progress.Waiting`): a live Rich line on a
terminal, JSON lines with --json, nothing at all otherwise; `agora train start --wait` on a mock node shows
it both ways, and Ctrl-C detaches from the run with exit status 130."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import httpx
import pytest
from rich.console import Console
from typer.testing import CliRunner

from agora.cli import train as train_cli
from agora.cli.main import app
from agora.cli.progress import DETACH, Waiting, elapsed, emit_line
from agora.client import AgoraClient

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=160, color_system=None), out


def test_a_terminal_gets_a_live_line_with_state_round_and_elapsed_time() -> None:
    console, out = _terminal()
    now = [100.0]
    with Waiting("training run run-1", console=console, monotonic=lambda: now[0]) as w:
        assert w.live
        w.status("running", step=1, total=3)
        now[0] += 75
        w.status(step=2, detail="accuracy 0.912")
    drawn = ANSI.sub("", out.getvalue())
    assert "training run run-1 · running · round 1/3 · 0s (Ctrl-C detaches)" in drawn
    assert "training run run-1 · running · round 2/3 · accuracy 0.912 · 1m15s (Ctrl-C detaches)" in drawn
    assert out.getvalue().rstrip("\n").endswith("\x1b[2K")  # transient: the line is erased at the end


def test_a_fraction_and_a_hint_of_its_own() -> None:
    console, out = _terminal()
    with Waiting("simulating s", console=console, hint="Ctrl-C stops it", monotonic=lambda: 0.0) as w:
        w.status(fraction=0.25)
    assert "simulating s · 25% · 0s (Ctrl-C stops it)" in ANSI.sub("", out.getvalue())


def test_off_a_terminal_nothing_is_drawn_and_no_event_is_written() -> None:
    piped = Console(file=io.StringIO(), force_terminal=False)
    stream = io.StringIO()
    with Waiting("job j", console=piped, stream=stream) as w:
        assert not w.live
        w.status("running", step=1, total=2)
        w.event("state", state="running")
    assert piped.file.getvalue() == "" and stream.getvalue() == ""  # type: ignore[attr-defined]


class _Flushes(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.at_flush: list[str] = []

    def flush(self) -> None:
        self.at_flush.append(self.getvalue())


def test_json_lines_one_object_per_line_flushed_each_time_and_no_live_line() -> None:
    stream = _Flushes()
    console, out = _terminal()  # even on a terminal: --json draws nothing
    with Waiting("job j", json_lines=True, console=console, stream=stream, clock=lambda: 1700000000.25) as w:
        assert not w.live
        w.event("state", job_id="j", state="running")
        w.status("running")
        w.event("state", job_id="j", state="completed")
    lines = stream.getvalue().splitlines()
    assert [json.loads(x) for x in lines] == [
        {"event": "state", "t": 1700000000.25, "job_id": "j", "state": "running"},
        {"event": "state", "t": 1700000000.25, "job_id": "j", "state": "completed"},
    ]
    assert stream.at_flush == [lines[0] + "\n", lines[0] + "\n" + lines[1] + "\n"]  # each line flushed at once
    assert out.getvalue() == ""
    plain = io.StringIO()
    emit_line("end", {"run": {"state": "completed"}, "stream": "x"}, out=plain, clock=lambda: 5.0)
    assert json.loads(plain.getvalue()) == {"event": "end", "t": 5.0, "run": {"state": "completed"}, "stream": "x"}
    assert elapsed(3 * 3600 + 120) == "3h02m" and elapsed(59) == "59s"


ROUND = {"attempt": 1, "accepted": ["p"], "late": [], "rejected": [], "wall_s": 0.1}


@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A mock node whose run has finished rounds 1 and 2 at the first poll and round 3 at the second."""
    box: dict[str, Any] = {"polls": 0, "interrupt": False, "waits": [], "fail": False}

    def run(rounds: int) -> dict[str, Any]:
        done = [{**ROUND, "round": k, "metrics": {"eval_accuracy": 0.5 + k / 10}} for k in range(1, rounds + 1)]
        return {
            "run_id": "run-1",
            "state": "completed" if rounds == 3 else "running",
            "reason": None,
            "rounds_planned": 3,
            "rounds": done,
            "providers": [],
            "last_metrics": done[-1]["metrics"] if done else {},
        }

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/training/runs" and request.method == "POST":  # as the node answers a start
            return httpx.Response(201, json={"run_id": "run-1", "state": "running", "match": {"counts": {}}})
        if request.url.path == "/training/runs/run-1":
            if box["interrupt"]:
                raise KeyboardInterrupt
            if box["fail"]:
                return httpx.Response(404, json={"error": {"code": "not_found", "message": "no run-1", "hint": ""}})
            box["polls"] += 1
            box["waits"].append(float(request.url.params["wait_s"]))
            return httpx.Response(200, json=run(min(1 + box["polls"], 3)))
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no", "hint": ""}})

    class Mocked(AgoraClient):
        def __init__(self, base_url: str | None = None, **kw: Any) -> None:
            super().__init__("http://127.0.0.1:1", transport=httpx.MockTransport(handle))

    monkeypatch.setattr(train_cli, "AgoraClient", Mocked)
    return box


def _spec(tmp_path: Any) -> str:
    path = tmp_path / "train.yaml"
    path.write_text("data_tags: [digits]\nrounds: 3\nschema: {features: [a, b], label: y}\n")
    return str(path)


def test_train_start_wait_json_streams_each_round_then_the_run(node: dict[str, Any], tmp_path: Any) -> None:
    out = CliRunner().invoke(app, ["train", "start", _spec(tmp_path), "--wait", "60", "--json"])
    assert out.exit_code == 0, out.output
    events = [json.loads(line) for line in out.stdout.splitlines()]  # every line is one JSON object
    assert [e["event"] for e in events] == ["started", "state", "round", "round", "round", "state", "end"]
    assert all(isinstance(e["t"], float) for e in events)
    rounds = [e for e in events if e["event"] == "round"]
    assert [(r["round"], r["rounds_planned"], r["accepted"]) for r in rounds] == [(1, 3, 1), (2, 3, 1), (3, 3, 1)]
    assert [e["state"] for e in events if e["event"] == "state"] == ["running", "completed"]
    assert events[-1]["run"]["state"] == "completed" and len(events[-1]["run"]["rounds"]) == 3
    assert node["polls"] == 2 and all(0 < w <= 2.0 for w in node["waits"])  # short polls: news every 2 s


def test_train_start_wait_text_off_a_terminal_prints_only_the_result(node: dict[str, Any], tmp_path: Any) -> None:
    out = CliRunner().invoke(app, ["train", "start", _spec(tmp_path), "--wait", "60"])
    assert out.exit_code == 0, out.output
    assert out.stderr == "" and out.stdout.startswith("run run-1: completed")


def test_ctrl_c_detaches_from_the_run_and_says_how_to_get_back(node: dict[str, Any], tmp_path: Any) -> None:
    node["interrupt"] = True
    out = CliRunner().invoke(app, ["train", "start", _spec(tmp_path), "--wait", "60", "--api", "http://x:1"])
    assert out.exit_code == DETACH == 130
    assert "interrupted: training run run-1 keeps running on the node" in out.stderr
    assert "agora train status run-1 --api http://x:1" in out.stderr and "agora train stop run-1" in out.stderr
    streamed = CliRunner().invoke(app, ["train", "start", _spec(tmp_path), "--wait", "60", "--json"])
    assert streamed.exit_code == 130
    last = json.loads(streamed.stdout.splitlines()[-1])
    assert last["event"] == "left" and last["run_id"] == "run-1" and last["reason"] == "interrupted"


def test_an_error_while_streaming_is_one_more_json_line(node: dict[str, Any], tmp_path: Any) -> None:
    node["fail"] = True
    out = CliRunner().invoke(app, ["train", "start", _spec(tmp_path), "--wait", "60", "--json"])
    assert out.exit_code == 1
    events = [json.loads(line) for line in out.stdout.splitlines()]  # still parseable line by line
    assert [e["event"] for e in events] == ["started", "state", "error"]
    assert events[-1]["error"]["code"] == "not_found" and events[-1]["run_id"] == "run-1"
