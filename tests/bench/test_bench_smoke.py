"""Every benchmark in `bench/` runs, in its `--smoke` mode (a handful of iterations), as part of the suite.

Nothing here times anything: a benchmark that no longer runs (an API it uses changed, a command it calls
became public and refuses proofs...) fails here instead of rotting until someone runs `make bench`.
Each must exit 0 and print the line that compares agora with its reference in the same run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHES = sorted(p.stem for p in (ROOT / "bench").glob("*.py"))
RATIO_LINE = {
    "rpc": "ratio agora/raw:",
    "crypto": "ratio:",
    "node": "ratio x",
    "executors": "ratio agora/raw",
    "remote_job": "p50 ratio remote/raw:",
    "matching": "ratio: agora",
    "market_job": "p50 ratio market/direct:",
    "ledger": "ratio agora/raw:",
    "job_phases": "median of each phase:",
    "ledger_hub": "p50 ratio hub/in-process:",
    "fl": "ratio agora/floor per round:",
    "sim": "ratio sampled/full:",
    "inference": "p50 ratio agora/direct:",
}

pytestmark = pytest.mark.integration


def test_every_benchmark_is_covered() -> None:
    assert BENCHES and set(BENCHES) == set(RATIO_LINE), "a new bench/*.py needs its smoke run here"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", BENCHES)
def test_benchmark_runs_in_smoke_mode(name: str) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{name}.py"), "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert RATIO_LINE[name] in proc.stdout, out[-4000:]
