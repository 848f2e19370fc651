"""`agora devnet down` signals only the processes the devnet started: a pid in devnet.json that now
names another process (recycled after a reboot, or by another program) is left alone."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agora.devnet import STATE_FILE, down, status, up
from agora.devnet.launcher import _start_time
from agora.errors import AgoraError


def _state(root: Path, member: dict[str, object]) -> None:
    doc = {"dir": str(root), "hub_url": "nats://127.0.0.1:1", "hub": member, "nodes": []}
    (root / STATE_FILE).write_text(json.dumps(doc))


@pytest.fixture
def child(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The command line in the parameter, with ROOT standing for the test's devnet directory."""
    argv = [a.replace("ROOT", str(tmp_path)) for a in request.param]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.parametrize("child", [["sleep", "300"]], indirect=True)
def test_a_pid_now_held_by_another_program_is_not_signalled(tmp_path: Path, child: subprocess.Popen[bytes]) -> None:
    home = tmp_path / "hub"
    _state(
        tmp_path, {"name": "hub", "did": "did:key:x", "api": "http://127.0.0.1:1", "pid": child.pid, "home": str(home)}
    )
    assert status(tmp_path)["members"][0]["running"] is False
    assert down(tmp_path) == []
    assert child.poll() is None  # still running: never signalled


def _fake_daemon(home: str) -> list[str]:
    """A process whose command line looks like a devnet member's (agora.daemon, the same home)."""
    return [sys.executable, "-c", "import time; time.sleep(300)", "agora.daemon", "--home", home]


@pytest.mark.parametrize("child", [_fake_daemon("ROOT/hub")], indirect=True)
def test_an_agora_daemon_started_at_another_time_is_not_signalled(
    tmp_path: Path, child: subprocess.Popen[bytes]
) -> None:
    started = _start_time(child.pid)
    assert started is not None
    member = {
        "name": "hub",
        "did": "did:key:x",
        "api": "http://127.0.0.1:1",
        "pid": child.pid,
        "home": str(tmp_path / "hub"),
        "start_time": started - 1,  # the devnet's own process started earlier: this pid was recycled
    }
    _state(tmp_path, member)
    assert down(tmp_path) == []
    assert child.poll() is None
    # the same process recorded with its true start time is the devnet's, and `down` stops it
    _state(tmp_path, {**member, "start_time": started})
    assert status(tmp_path)["members"][0]["running"] is True
    assert down(tmp_path) == ["hub"]
    assert child.wait(timeout=15) != 0
    assert not (tmp_path / STATE_FILE).exists()


@pytest.mark.parametrize("child", [_fake_daemon("/tmp/agora-test-devnet-home/main")], indirect=True)
def test_a_planted_devnet_file_cannot_stop_a_daemon_outside_its_directory(
    tmp_path: Path, child: subprocess.Popen[bytes]
) -> None:
    """devnet.json lives where `devnet up` ran (./.agora-devnet by default), possibly a directory others
    can write. A file planted there that names a daemon of this user's that is no member of this devnet
    (its home is not in the devnet's directory), with its true pid and start time (anyone can read
    those in /proc), is not signalled; and its `dir` cannot make `down` delete another devnet's file."""
    elsewhere = tmp_path / "other-devnet"
    elsewhere.mkdir()
    (elsewhere / STATE_FILE).write_text("{}")
    root = tmp_path / "shared"
    root.mkdir()
    member = {
        "name": "hub",
        "did": "did:key:x",
        "api": "http://127.0.0.1:1",
        "pid": child.pid,
        "home": "/tmp/agora-test-devnet-home/main",
        "start_time": _start_time(child.pid),
    }
    doc = {"dir": str(elsewhere), "hub_url": "nats://127.0.0.1:1", "hub": member, "nodes": []}
    (root / STATE_FILE).write_text(json.dumps(doc))
    assert status(root)["members"][0]["running"] is False
    assert down(root) == []
    assert child.poll() is None  # never signalled
    assert (elsewhere / STATE_FILE).exists()  # the other devnet's file is untouched
    assert not (root / STATE_FILE).exists()  # this directory's own file is what `down` removes


def test_up_refuses_a_directory_others_can_write(tmp_path: Path) -> None:
    """A ./.agora-devnet that someone else created first (in /tmp, world-writable) could hold their links or
    files where `up` writes the members' homes and devnet.json: `up` refuses it before writing anything."""
    root = tmp_path / ".agora-devnet"
    root.mkdir()
    root.chmod(0o777)
    with pytest.raises(AgoraError) as err:
        up(1, root)
    assert err.value.code == "config_invalid" and str(root) in err.value.message
    assert list(root.iterdir()) == []  # nothing written, nothing started
