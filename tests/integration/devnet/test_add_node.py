"""`add_node` adds a member only to a devnet whose hub the devnet started and still runs (the demo's
"a bigger node joins" and the market bench use it; the happy path runs in tests/e2e/test_demo.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agora.devnet import STATE_FILE, add_node
from agora.errors import AgoraError


def test_no_devnet_here(tmp_path: Path) -> None:
    with pytest.raises(AgoraError) as err:
        add_node(tmp_path)
    assert err.value.code == "devnet_not_running"
    assert list(tmp_path.iterdir()) == []  # nothing written, no member home made


def test_a_hub_that_is_not_running_gets_no_new_member(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    hub = {
        "name": "hub",
        "did": "did:key:x",
        "api": "http://127.0.0.1:1",
        "pid": 2**22 + 1,
        "home": str(tmp_path / "hub"),
    }
    doc = {"dir": str(tmp_path), "hub_url": "nats://127.0.0.1:1", "hub": hub, "nodes": []}
    (tmp_path / STATE_FILE).write_text(json.dumps(doc))
    (tmp_path / STATE_FILE).chmod(0o644)
    with pytest.raises(AgoraError) as err:
        add_node(tmp_path)
    assert err.value.code == "devnet_not_running"
    assert json.loads((tmp_path / STATE_FILE).read_text()) == doc  # devnet.json as it was
    assert not (tmp_path / "node-1").exists()  # no process started, no home made
