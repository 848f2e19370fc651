"""Commands that need no node, run in-process through Typer's runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import agora
from agora.cli.main import app
from tests.support import ROOT

runner = CliRunner()


def test_job_validate_checks_a_spec_offline(tmp_path: Path) -> None:
    ok = runner.invoke(app, ["job", "validate", str(ROOT / "examples" / "jobs" / "hello-process.yaml")])
    assert ok.exit_code == 0, ok.output
    assert "valid: job 'hello-process', 2 task(s) (process)" in ok.output
    warned = runner.invoke(app, ["job", "validate", str(ROOT / "examples" / "jobs" / "hello-wasm.yaml")])
    assert warned.exit_code == 0, warned.output
    assert "warning: payment.budget" not in warned.output  # the budget is in effect now: it settles the contract
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntasks:\n  - name: t\n    engine: warp\n")
    out = runner.invoke(app, ["job", "validate", str(bad)])
    assert out.exit_code == 1
    assert "error: job_spec_invalid" in out.output and "tasks[0].engine: expected" in out.output


def test_job_validate_warns_of_local_files_job_run_would_not_find(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs, elsewhere = tmp_path / "jobs", tmp_path / "elsewhere"
    jobs.mkdir()
    elsewhere.mkdir()
    spec = jobs / "job.yaml"
    spec.write_text(
        "name: x\ntasks:\n  - name: t\n    module: m.wat\n"
        "    inputs: [{name: data, source: {type: local, path: data.csv}}]\n"
    )
    monkeypatch.chdir(elsewhere)
    out = runner.invoke(app, ["job", "validate", str(spec)])
    assert out.exit_code == 0, out.output  # the spec itself is valid: the files may be there when it runs
    assert "warning: tasks[0].module: no file 'm.wat'" in out.output
    assert "warning: tasks[0].inputs[0].source.path: no file 'data.csv'" in out.output
    (jobs / "m.wat").write_text("(module)")  # found in the file's directory, as `agora job run` looks
    (elsewhere / "data.csv").write_text("a,b\n")  # found in the current directory
    out = runner.invoke(app, ["job", "validate", str(spec)])
    assert out.exit_code == 0 and "no file" not in out.output, out.output


def test_the_command_tree_loads_without_the_heavy_modules() -> None:
    """`agora --help` (and every command before it runs) pays only for typer and the command modules:
    HTTP, rich help rendering, the job parser, the devnet launcher and the crypto load when used."""
    code = (
        "import sys, agora.cli.main; "
        "print(' '.join(m for m in ('httpx', 'rich', 'yaml', 'nacl', 'agora.jobs', 'agora.devnet.launcher', "
        "'agora.identity') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == []
    shown = subprocess.run(
        [sys.executable, "-m", "agora", "--version"], capture_output=True, text=True, timeout=60, check=True
    )
    assert shown.stdout == f"agora {agora.__version__}\n"
