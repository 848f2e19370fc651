"""CLI printing: error details in text mode, devnet names for --node (the progress line: test_progress.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agora.cli.output import detail_lines, when
from agora.client import resolve_node
from agora.errors import AgoraError


def test_details_are_printed_as_short_lines() -> None:
    lines = detail_lines(
        {"errors": [{"path": "tasks[0].module", "expected": "a path or URL", "got": 7}], "log": "/h/hub.log"}
    )
    assert lines == ["  errors:", "    tasks[0].module: expected a path or URL, got 7", "  log: /h/hub.log"]
    many = detail_lines({"reasons": [{"n": i} for i in range(40)]})
    assert len(many) == 20 and many[-1] == "  … 22 more (--json shows all)"
    assert detail_lines(None) == []
    assert detail_lines({"stderr_tail": "", "exit_code": 3, "reasons": [], "extra": None}) == ["  exit_code: 3"]


def test_resolve_node_takes_a_did_or_a_devnet_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGORA_DEVNET_DIR", raising=False)
    (tmp_path / ".agora-devnet").mkdir()
    doc = {"hub": {"name": "hub", "did": "did:key:zHub"}, "nodes": [{"name": "node-1", "did": "did:key:zOne"}]}
    (tmp_path / ".agora-devnet" / "devnet.json").write_text(json.dumps(doc))
    assert resolve_node("node-1") == "did:key:zOne" and resolve_node("hub") == "did:key:zHub"
    assert resolve_node("did:key:zOther") == "did:key:zOther"
    with pytest.raises(AgoraError) as info:
        resolve_node("node-7")
    assert info.value.code == "did_invalid" and "hub, node-1" in info.value.message


def test_epoch_times_are_shown_as_dates_with_the_distance() -> None:
    now = 1_800_000_000.0  # 2027-01-15 08:00 UTC
    assert when(now + 30 * 86400 + 5, now=now) == "2027-02-14 08:00 UTC (in 30d)"
    assert when(now - 7200, now=now) == "2027-01-15 06:00 UTC (2h ago)"
    assert when(None) == "never"
