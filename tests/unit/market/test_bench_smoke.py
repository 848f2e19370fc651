"""bench/matching.py --smoke runs (agora and the bare loop agree on the same market) and prints its ratio line."""

from __future__ import annotations

import importlib.util

import pytest

from tests.support import ROOT


def test_matching_bench_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_matching", ROOT / "bench" / "matching.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "ratio: agora" in out and "decisions/s" in out
