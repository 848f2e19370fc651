"""`agora node up` / `agora hub up` hand the daemon every setting of the schema, not only their own options."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from agora.cli import node as cli_node
from agora.cli.main import app
from agora.daemon.main import build_config, parse_args


@pytest.fixture
def exec_args(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []
    monkeypatch.setattr(cli_node, "_exec_daemon", calls.append)
    return calls


def test_node_up_passes_any_daemon_flag_through(exec_args: list[list[str]]) -> None:
    argv = ["node", "up", "--hub", "nats://127.0.0.1:4222", "--api-port", "0", "--compute-max-allocations", "3"]
    result = CliRunner().invoke(app, [*argv, "--require-api-token", "--benchmark", "off"])
    assert result.exit_code == 0, result.output
    [args] = exec_args
    config = build_config(parse_args(args))
    assert config.hubs == ["nats://127.0.0.1:4222"] and config.api_port == 0
    assert config.compute.max_allocations == 3 and config.require_api_token and config.benchmark == "off"


def test_hub_up_passes_section_flags_through(exec_args: list[list[str]]) -> None:
    result = CliRunner().invoke(app, ["hub", "up", "--port", "0", "--tls-ca", "/ca.pem", "--runner-min-poll-s", "0.5"])
    assert result.exit_code == 0, result.output
    config = build_config(parse_args(exec_args[0]))
    assert config.hub is not None and config.hub.port == 0 and config.hub.tls_ca == "/ca.pem"
    assert config.runner.min_poll_s == 0.5


def test_an_option_left_out_leaves_its_environment_variable_in_charge(exec_args: list[list[str]]) -> None:
    """`AGORA_API_PORT=0 agora node up` used to bind 8765: the CLI passed its own default as a flag, and a flag
    wins over the environment. Now only given options are passed; `--hub` may come from AGORA_HUBS."""
    env = {"AGORA_API_PORT": "0", "AGORA_HUBS": "nats://127.0.0.1:4333"}
    assert CliRunner().invoke(app, ["node", "up"]).exit_code == 0
    config = build_config(parse_args(exec_args[-1]), env)
    assert config.api_port == 0 and config.hubs == ["nats://127.0.0.1:4333"]
    assert CliRunner().invoke(app, ["node", "up", "--hub", "nats://127.0.0.1:4222", "--api-port", "9"]).exit_code == 0
    config = build_config(parse_args(exec_args[-1]), env)
    assert config.api_port == 9 and config.hubs == ["nats://127.0.0.1:4222"]  # a given option still wins
    assert CliRunner().invoke(app, ["hub", "up"]).exit_code == 0
    config = build_config(parse_args(exec_args[-1]), {**env, "AGORA_HUB_PORT": "0"})
    assert config.hub is not None and config.hub.port == 0 and config.api_port == 0
    assert build_config(parse_args(exec_args[-1]), {}).api_port == 8765  # the defaults are the daemon's
