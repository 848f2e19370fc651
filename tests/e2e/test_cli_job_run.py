"""`agora job run` as a person uses it on a one-node devnet: Ctrl-C leaves the job running and says how to
get back to it (or cancels it with --cancel-on-exit), --timeout says the same, --json --follow streams
JSON lines, `--node node-1` names a devnet member, `job validate` needs no node."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import require_binary

AGORA = [sys.executable, "-m", "agora.cli"]
ENV = {**os.environ, "AGORA_BENCHMARK": "off"}
ENV.pop("AGORA_API", None)

SLEEPER = """
name: sleeper
tasks:
  - name: nap
    engine: process
    command: ["/bin/sh", "-c", "echo started; exec sleep 600"]
    resources: {cpu: 0.1, memory: 32Mi, disk: 8Mi}
    timeout: 15m
"""

QUICK = """
name: quick
tasks:
  - name: say
    engine: process
    command: ["/bin/sh", "-c", "echo hi"]
    resources: {cpu: 0.1, memory: 32Mi, disk: 8Mi}
    timeout: 1m
"""


def agora(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*AGORA, *args], capture_output=True, text=True, timeout=120, env=ENV, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"agora {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory holding a one-node devnet in ./.agora-devnet (so devnet names resolve) and two job files."""
    require_binary("bwrap", "bubblewrap")
    root = tmp_path_factory.mktemp("work")
    (root / "sleeper.yaml").write_text(SLEEPER)
    (root / "quick.yaml").write_text(QUICK)
    agora("devnet", "up", "--nodes", "1", "--json", cwd=root)
    try:
        yield root
    finally:
        agora("devnet", "down", cwd=root, check=False)


def _api(work: Path) -> str:
    return str(json.loads((work / ".agora-devnet" / "devnet.json").read_text())["nodes"][0]["api"])


def _wait_for_text(path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 90.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        content = path.read_text()
        if text in content:
            return content
        assert proc.poll() is None, f"agora exited with {proc.returncode}:\n{content}"
        time.sleep(0.05)
    raise AssertionError(f"{text!r} did not appear in {path}")


def _interrupt_a_running_job(work: Path, *extra: str) -> tuple[str, int, str]:
    """Start `agora job run --follow`, wait until the task printed its first line, send SIGINT."""
    out, err = work / f"out-{time.monotonic_ns()}", work / f"err-{time.monotonic_ns()}"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(
            [*AGORA, "job", "run", "sleeper.yaml", "--follow", "--api", _api(work), *extra],
            stdout=o,
            stderr=e,
            env=ENV,
            cwd=work,
            stdin=subprocess.DEVNULL,
        )
        try:
            text = _wait_for_text(out, "[nap] started", proc)
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    job_id = text.split()[1]
    return job_id, code, err.read_text()


def _state(work: Path, job_id: str) -> str:
    return str(json.loads(agora("job", "status", job_id, "--api", _api(work), "--json", cwd=work).stdout)["state"])


def test_ctrl_c_leaves_the_job_running_and_says_how_to_reach_it(work: Path) -> None:
    api = _api(work)
    job_id, code, err = _interrupt_a_running_job(work)
    try:
        assert code == 130
        assert f"interrupted: job {job_id} keeps running" in err
        assert f"agora job logs {job_id} --follow --api {api}" in err
        assert f"agora job cancel {job_id} --api {api}" in err
        assert _state(work, job_id) == "running"
    finally:
        agora("job", "cancel", job_id, "--api", api, cwd=work, check=False)


def test_ctrl_c_with_cancel_on_exit_cancels_the_job(work: Path) -> None:
    job_id, code, err = _interrupt_a_running_job(work, "--cancel-on-exit")
    assert code == 130
    assert f"interrupted: job {job_id} cancelled (--cancel-on-exit)" in err
    assert _state(work, job_id) == "cancelled"


def test_timeout_says_the_job_keeps_running(work: Path) -> None:
    api = _api(work)
    out = agora("job", "run", "sleeper.yaml", "--timeout", "1", "--api", api, cwd=work, check=False)
    job_id = out.stdout.split()[1]
    try:
        assert out.returncode == 1
        assert f"--timeout 1s: job {job_id} keeps running" in out.stderr
        assert f"agora job cancel {job_id} --api {api}" in out.stderr
        assert "did not answer" not in out.stderr  # not the peer-timeout hint
    finally:
        agora("job", "cancel", job_id, "--api", api, cwd=work, check=False)


def test_json_follow_streams_json_lines(work: Path) -> None:
    out = agora("job", "run", "quick.yaml", "--follow", "--json", "--api", _api(work), cwd=work)
    events: list[dict[str, Any]] = [json.loads(line) for line in out.stdout.splitlines()]
    assert events[0]["event"] == "submitted" and events[-1]["event"] == "end"
    assert events[-1]["job"]["state"] == "completed" and events[-1]["job"]["id"] == events[0]["job"]["id"]
    assert {"event": "log", "line": "hi", "stream": "stdout"}.items() <= next(
        e for e in events if e.get("line") == "hi"
    ).items()
    stamps = [e["t"] for e in events]  # every line says when (docs: {"event": ..., "t": ..., ...})
    assert all(isinstance(t, float) for t in stamps) and stamps == sorted(stamps)
    states = [e["state"] for e in events if e["event"] == "state"]  # one line per change of the job's state
    placing = ("submitted", "pending", "matching", "bidding", "awarded", "committed", "running", "completed")
    assert all(s in placing for s in states) and all(a != b for a, b in itertools.pairwise(states))


def test_node_option_takes_a_devnet_name(work: Path) -> None:
    node1 = json.loads((work / ".agora-devnet" / "devnet.json").read_text())["nodes"][0]
    doc = json.loads(agora("job", "run", "quick.yaml", "--node", "node-1", "--json", cwd=work).stdout)
    assert doc["state"] == "completed" and doc["node"] == node1["did"]
    wrong = agora("job", "run", "quick.yaml", "--node", "node-9", cwd=work, check=False)
    assert wrong.returncode == 1 and "did_invalid" in wrong.stderr and "node-1" in wrong.stderr


def test_a_second_devnet_up_is_refused_before_it_prints_anything(work: Path) -> None:
    again = agora("devnet", "up", cwd=work, check=False)
    assert again.returncode == 1 and again.stdout == ""
    assert "devnet_already_running" in again.stderr and "agora devnet down --dir" in again.stderr
