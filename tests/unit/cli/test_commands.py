"""Commands that need no node, run in-process through Typer's runner."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from agora.cli.main import app
from tests.support import ROOT

runner = CliRunner()


def test_job_validate_checks_a_spec_offline(tmp_path: Path) -> None:
    ok = runner.invoke(app, ["job", "validate", str(ROOT / "examples" / "jobs" / "hello-process.yaml")])
    assert ok.exit_code == 0, ok.output
    assert "valid: job 'hello-process', 2 task(s) (process)" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntasks:\n  - name: t\n    engine: warp\n")
    out = runner.invoke(app, ["job", "validate", str(bad)])
    assert out.exit_code == 1
    assert "error: job_spec_invalid" in out.output and "tasks[0].engine: expected" in out.output
