"""The CLI the way a person uses it: devnet up, status, peers, ping, init, mistakes, devnet down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

AGORA = [sys.executable, "-m", "agora.cli"]


def agora(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*AGORA, *args], capture_output=True, text=True, timeout=90, env={**os.environ, **(env or {})}
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"agora {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def j(*args: str, **kw: Any) -> Any:
    return json.loads(agora(*args, "--json", **kw).stdout)


def _pids(state: dict[str, Any]) -> list[int]:
    return [m["pid"] for m in [state["hub"], *state["nodes"]]]


def _running(pid: int) -> bool:
    try:
        return b"agora.daemon" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_devnet_lifecycle(tmp_path: Path) -> None:
    d = str(tmp_path / "devnet")
    state = j("devnet", "up", "--nodes", "2", "--dir", d)
    try:
        assert len(state["nodes"]) == 2
        saved = json.loads((tmp_path / "devnet" / "devnet.json").read_text())
        assert {n["did"] for n in saved["nodes"]} == {n["did"] for n in state["nodes"]}
        assert all(n["hub"] == state["hub_url"] and n["api"].startswith("http://127.0.0.1:") for n in saved["nodes"])

        st = j("devnet", "status", "--dir", d)
        assert all(m["running"] and m["health"] == "ok" and m["peers"] == 2 for m in st["members"])

        a, b = state["nodes"]
        peers = j("peers", "--api", a["api"])
        assert {p["did"] for p in peers} == {b["did"], state["hub"]["did"]}

        status = j("status", "--api", a["api"])
        assert status["did"] == a["did"] and status["health"]["status"] == "ok"

        ping = j("ping", b["did"], "--count", "3", "--api", a["api"])
        assert len(ping["rtt_ms"]) == 3
        text = agora("ping", b["did"], "-c", "2", "--api", a["api"]).stdout
        assert text.count("reply from") == 2

        # mistakes people make: a second devnet in the same dir, a bad DID, an unknown node
        again = agora("devnet", "up", "--dir", d, "--json", check=False)
        assert again.returncode == 1 and json.loads(again.stdout)["error"]["code"] == "devnet_already_running"
        bad = agora("ping", "not-a-did", "--api", a["api"], check=False)
        assert bad.returncode == 1 and "did_invalid" in bad.stderr and "hint:" in bad.stderr
        # a second node on the same home is refused and leaves the running node's run file alone
        twin = agora("node", "up", "--hub", state["hub_url"], "--home", a["home"], "--api-port", "0", check=False)
        assert twin.returncode == 1 and "home_in_use" in twin.stderr
        assert json.loads((Path(a["home"]) / "run.json").read_text())["did"] == a["did"]
        gone = agora(
            "ping",
            "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
            "--timeout",
            "1",
            "--api",
            a["api"],
            check=False,
        )
        assert gone.returncode == 1 and "peer_unreachable" in gone.stderr
    finally:
        down = j("devnet", "down", "--dir", d)
    assert sorted(down["stopped"]) == ["hub", "node-1", "node-2"]
    assert not any(_running(p) for p in _pids(state))
    assert not (tmp_path / "devnet" / "devnet.json").exists()
    missing = agora("devnet", "status", "--dir", d, check=False)
    assert missing.returncode == 1 and "devnet_not_running" in missing.stderr


def test_init_and_status_without_a_node(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    created = j("init", "--home", home)
    assert created["created"] is True and created["did"].startswith("did:key:z6Mk")
    assert oct((tmp_path / "home" / "identity.json").stat().st_mode & 0o777) == "0o600"
    again = j("init", "--home", home)
    assert again == {**again, "created": False, "did": created["did"]}
    out = agora("status", "--api", "http://127.0.0.1:9", check=False)
    assert out.returncode == 1 and "node_not_running" in out.stderr and "agora node up" in out.stderr


def test_node_up_with_a_wrong_hub_url_explains(tmp_path: Path) -> None:
    out = agora("node", "up", "--hub", "http://127.0.0.1:4222", "--home", str(tmp_path), "--api-port", "0", check=False)
    assert out.returncode == 1 and "config_invalid" in out.stderr and "nats://" in out.stderr


@pytest.mark.parametrize("cmd", [["--help"], ["devnet", "--help"], ["node", "--help"], ["hub", "--help"]])
def test_help(cmd: list[str]) -> None:
    assert "Usage" in agora(*cmd).stdout
