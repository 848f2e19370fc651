"""A hub node killed with SIGKILL leaves no nats-server behind, and a hub reclaims an orphan of its own
(found by its pid file and checked by its command line: nats-server with this hub's config file) at start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from agora.transport import HubConfig, HubProcess


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_for(predicate: Any, what: str, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _servers_with(config: Path) -> list[int]:
    """nats-server processes started with this config file (by command line, as the hub checks it)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if str(config) in cmd and p.status() != psutil.STATUS_ZOMBIE:
            found.append(p.pid)
    return found


DAEMON = [sys.executable, "-m", "agora.daemon"]


class Daemon:
    def __init__(self, home: Path, hub_port: int) -> None:
        self.out = home.parent / f"daemon-{hub_port}-{time.monotonic_ns()}.out"
        with open(self.out, "wb") as out:
            self.popen = subprocess.Popen(
                [*DAEMON, "--home", str(home), "--hub", "--hub-port", str(hub_port), "--api-port", "0"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "AGORA_BENCHMARK": "off"},
            )

    def ready(self, timeout: float = 60.0) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in self.out.read_text().splitlines():
                msg = json.loads(line) if line.startswith("{") else {}
                if msg.get("event") == "ready":
                    return dict(msg)
                assert msg.get("event") != "error", msg
            assert self.popen.poll() is None, f"the hub node exited with {self.popen.returncode}"
            time.sleep(0.05)
        raise AssertionError("the hub node was not ready in time")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        self.popen.wait(timeout=10)


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    try:
        yield started
    finally:
        for d in started:
            d.stop()


def test_a_killed_hub_node_takes_its_nats_server_along_and_can_restart(tmp_path: Path, daemons: list[Daemon]) -> None:
    home = tmp_path / "home"
    first = Daemon(home, 0)
    daemons.append(first)
    port = int(first.ready()["hub_url"].rsplit(":", 1)[1])
    config = home / "hub" / "nats-server.conf"
    [server] = _servers_with(config)
    first.popen.kill()  # SIGKILL: no atexit, no finally
    first.popen.wait(timeout=10)
    _wait_for(lambda: _gone(server), "nats-server to die with its node")
    second = Daemon(home, port)
    daemons.append(second)
    assert second.ready()["hub_url"].endswith(f":{port}")


async def test_a_hub_reclaims_its_own_orphan_at_start(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    old = HubProcess(HubConfig(home=home))
    await old.start()
    orphan = old._proc  # the node that owned it "died": its HubProcess never stops it
    assert orphan is not None
    old._proc = None
    try:
        new = HubProcess(HubConfig(home=home, port=old.port))
        await new.start()
        try:
            assert orphan.wait(timeout=10) is not None  # stopped by the new hub
            assert new.running and new.port == old.port
        finally:
            await new.stop()
    finally:
        if orphan.poll() is None:
            orphan.kill()
        orphan.wait(timeout=10)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    other = subprocess.Popen(["sleep", "300"], stdin=subprocess.DEVNULL)
    try:
        yield other
    finally:
        other.kill()
        other.wait(timeout=10)


async def test_a_pid_file_naming_another_process_is_left_alone(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    home = tmp_path / "hub"
    home.mkdir()
    (home / "nats-server.pid").write_text(f"{sleeper.pid}\n")
    hub = HubProcess(HubConfig(home=home))
    await hub.start()
    try:
        assert hub.running and sleeper.poll() is None  # not signalled: it is not our nats-server
    finally:
        await hub.stop()
