"""`api_host` is checked by the addresses it resolves to, not by its name (7.8)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from agora.errors import AgoraError
from agora.node import NodeConfig, loopback_address
from agora.node import config as node_config

HUBS = ["nats://127.0.0.1:4222"]


@pytest.mark.parametrize(("host", "address"), [("127.0.0.1", "127.0.0.1"), ("127.0.0.2", "127.0.0.2"), ("::1", "::1")])
def test_loopback_addresses_pass(tmp_path: Path, host: str, address: str) -> None:
    NodeConfig(home=tmp_path, hubs=HUBS, api_host=host).validate()
    assert loopback_address(host) == address


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.1", "::", "192.0.2.7"])
def test_other_addresses_are_refused(tmp_path: Path, host: str) -> None:
    with pytest.raises(AgoraError) as err:
        NodeConfig(home=tmp_path, hubs=HUBS, api_host=host).validate()
    assert err.value.code == "config_invalid" and "loopback" in err.value.message


def test_a_name_is_resolved_and_every_address_must_be_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    def resolver(host: str, *args: Any, **kw: Any) -> list[Any]:  # /etc/hosts pointing localhost at the LAN
        addresses = {"localhost": ["127.0.0.1", "192.168.1.5"]}[host]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0)) for a in addresses]

    monkeypatch.setattr(node_config.socket, "getaddrinfo", resolver)
    with pytest.raises(AgoraError) as err:
        loopback_address("localhost")
    assert err.value.code == "config_invalid" and "192.168.1.5" in err.value.message


def test_localhost_resolves_to_a_loopback_address() -> None:
    assert loopback_address("localhost") in ("127.0.0.1", "::1")
