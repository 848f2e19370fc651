"""`devnet_names`: the names `GET /peers` puts on DIDs come only from the user's own devnet.json beside the node's
home, never from a file others may write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agora.api.routes_node import devnet_names

HUB = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
pytestmark = pytest.mark.integration
NODE = "did:key:z6MkSmallProviderAAAAAAAAAAAA1"


def test_names_come_from_the_devnet_file_beside_the_home(tmp_path: Path) -> None:
    home = tmp_path / "node-1"
    assert devnet_names(home) == {}  # not a devnet member
    state = tmp_path / "devnet.json"
    state.write_text(json.dumps({"hub": {"name": "hub", "did": HUB}, "nodes": [{"name": "node-1", "did": NODE}, 7]}))
    state.chmod(0o644)
    assert devnet_names(home) == {HUB: "hub", NODE: "node-1"}
    state.chmod(0o646)  # others may rewrite it: its names are not believed
    assert devnet_names(home) == {}
    state.chmod(0o644)
    state.write_text("{not json")
    assert devnet_names(home) == {}
