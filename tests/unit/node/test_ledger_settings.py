"""The ledger settings: the daemon flags and environment names, and what an allowlisted hub node is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from agora.daemon.main import build_config, parse_args
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.ledger.service import LedgerSettings
from agora.node import HubSettings, NodeConfig

OP, HUB1, HUB2 = (Keypair.generate().did for _ in range(3))


def test_defaults_a_hub_serves_and_a_node_finds_its_hubs() -> None:
    assert NodeConfig().ledger == LedgerSettings(serve=True, hubs=(), operators=(), timeout_s=10.0)


def test_flags_and_environment(tmp_path: Path) -> None:
    args = ["--home", str(tmp_path), "--hub", "--ledger-operators", OP, "--ledger-hubs", HUB1, "--ledger-hubs", HUB2]
    config = build_config(parse_args(args), {"AGORA_LEDGER_TIMEOUT_S": "3"})
    assert config.ledger == LedgerSettings(serve=True, hubs=(HUB1, HUB2), operators=(OP,), timeout_s=3.0)
    off = build_config(parse_args(["--home", str(tmp_path), "--hub"]), {"AGORA_LEDGER_SERVE": "0"})
    assert off.ledger.serve is False


def test_an_allowlisted_hub_node_administers_its_own_hub_to_write_the_journal(tmp_path: Path) -> None:
    member = Keypair.generate().did
    c = NodeConfig(home=tmp_path, hub=HubSettings(allow=[member]))
    hub = c.hub_process_config(HUB1)
    assert hub.admin_dids == (HUB1,) and hub.allowed_dids == (HUB1, member)
    hub.validate()
    c.ledger = LedgerSettings(serve=False)  # a hub that serves no ledger keeps no admin
    assert c.hub_process_config(HUB1).admin_dids == ()
    open_hub = NodeConfig(home=tmp_path, hub=HubSettings()).hub_process_config(HUB1)
    assert open_hub.allowed_dids is None and open_hub.admin_dids == ()


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["--ledger-hubs", "node-2"], "ledger.hubs"),
        (["--ledger-operators", "x y"], "ledger.operators"),
        (["--ledger-timeout-s", "0"], "timeout_s"),
    ],
)
def test_bad_values_are_refused_at_start(tmp_path: Path, args: list[str], word: str) -> None:
    with pytest.raises(AgoraError) as raised:
        build_config(parse_args(["--home", str(tmp_path), "--hub", *args]))
    assert raised.value.code == "config_invalid" and word in raised.value.message
