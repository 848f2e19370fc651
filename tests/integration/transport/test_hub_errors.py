"""A hub that cannot start says why in one line and where its log is, not a dump of the log."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agora.errors import AgoraError
from agora.transport import HubConfig, HubProcess


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


async def test_a_busy_port_is_named_with_the_log_path(tmp_path: Path, busy_port: int) -> None:
    hub = HubProcess(HubConfig(home=tmp_path / "hub", port=busy_port))
    with pytest.raises(AgoraError) as info:
        await hub.start()
    err = info.value
    assert err.code == "hub_start_failed"
    assert err.message == f"the hub cannot listen on 127.0.0.1:{busy_port}: address already in use"
    assert str(hub.log_path) in err.hint and err.details["log"] == str(hub.log_path)
    assert not hub.running


def test_agora_hub_up_on_a_busy_port(tmp_path: Path, busy_port: int) -> None:
    argv = [sys.executable, "-m", "agora.cli", "hub", "up", "--port", str(busy_port), "--api-port", "0"]
    out = subprocess.run(
        [*argv, "--home", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "AGORA_BENCHMARK": "off"},
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 1
    assert f"127.0.0.1:{busy_port}: address already in use" in out.stderr
    assert "hint: " in out.stderr and str(tmp_path / "hub" / "nats-server.log") in out.stderr
    assert "[INF]" not in out.stderr  # the log is not pasted into the message
