"""Start and stop a local devnet: one hub and N nodes as separate processes on loopback.

Every process is `python -m agora.daemon` with `--api-port 0` (and `--hub-port 0` for the hub), so
ports are free ones chosen at bind time and read back from each process's ready line: nothing is
hard-coded, several devnets can run side by side. `devnet.json` in the devnet directory records each
node's DID, API URL, hub URL, pid and home, for scripts and for `down`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agora.client import AgoraClient
from agora.errors import AgoraError

DEFAULT_DIR = Path(os.environ.get("AGORA_DEVNET_DIR", ".agora-devnet"))
STATE_FILE = "devnet.json"


@dataclass
class Proc:
    name: str
    home: Path
    popen: subprocess.Popen[bytes]
    out: Path


def _spawn(name: str, root: Path, args: list[str], env: dict[str, str]) -> Proc:
    home = root / name
    home.mkdir(parents=True, exist_ok=True)
    out = home / "daemon.out"
    out.write_text("")
    with open(out, "ab") as stdout, open(home / "daemon.log", "ab") as stderr:
        popen = subprocess.Popen(
            [sys.executable, "-m", "agora.daemon", "--home", str(home), "--api-port", "0", *args],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=env,
            start_new_session=True,  # survives the CLI that started it; `down` stops it
        )
    return Proc(name, home, popen, out)


def _wait_ready(proc: Proc, deadline: float) -> dict[str, Any]:
    while time.monotonic() < deadline:
        for line in proc.out.read_text().splitlines():
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("event") == "ready":
                return dict(msg)
            if msg.get("event") == "error":
                raise AgoraError.from_dict(msg)
        if proc.popen.poll() is not None:
            log_tail = (proc.home / "daemon.log").read_text()[-2000:]
            raise AgoraError(
                "node_not_running", f"{proc.name} exited with {proc.popen.returncode} before it was ready:\n{log_tail}"
            )
        time.sleep(0.02)
    raise AgoraError("timeout", f"{proc.name} was not ready in time; see {proc.home / 'daemon.log'}")


def _alive(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"agora.daemon" in cmdline  # never signal a recycled pid that is not ours


def load_state(root: Path = DEFAULT_DIR) -> dict[str, Any]:
    path = root / STATE_FILE
    if not path.exists():
        raise AgoraError("devnet_not_running", f"no {STATE_FILE} in {root}")
    return dict(json.loads(path.read_text()))


def up(
    nodes: int = 3, root: Path = DEFAULT_DIR, *, announce_interval: float = 1.0, timeout: float = 30.0
) -> dict[str, Any]:
    if nodes < 1 or nodes > 32:
        raise AgoraError("invalid_argument", "a devnet has between 1 and 32 nodes")
    root = root.resolve()
    if (root / STATE_FILE).exists():
        state = load_state(root)
        if any(_alive(m["pid"]) for m in [state["hub"], *state["nodes"]]):
            raise AgoraError("devnet_already_running", f"a devnet is running from {root}")
        (root / STATE_FILE).unlink()
    root.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("AGORA_API", "AGORA_HOME")}
    common = ["--announce-interval", str(announce_interval)]
    started: list[Proc] = []
    deadline = time.monotonic() + timeout
    try:
        hub = _spawn("hub", root, ["--hub", "--hub-port", "0", *common], env)
        started.append(hub)
        hub_ready = _wait_ready(hub, deadline)
        hub_url = hub_ready["hub_url"]
        for i in range(nodes):
            started.append(_spawn(f"node-{i + 1}", root, ["--hub-url", hub_url, *common], env))
        members = [
            {**_wait_ready(p, deadline), "name": p.name, "pid": p.popen.pid, "home": str(p.home)} for p in started
        ]
        state = {
            "dir": str(root),
            "hub_url": hub_url,
            "hub": {**members[0], "url": hub_url},
            "nodes": [{**m, "hub": hub_url} for m in members[1:]],
            "started_at": time.time(),
        }
        _wait_mesh(state, deadline)
        tmp = root / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(root / STATE_FILE)
        return state
    except BaseException:
        for p in reversed(started):
            _stop_pid(p.popen.pid)
            p.popen.wait(timeout=5)
        raise


def _wait_mesh(state: dict[str, Any], deadline: float) -> None:
    """Every member sees every other one: the devnet is usable the moment `up` returns."""
    members = [state["hub"], *state["nodes"]]
    want = {m["did"] for m in members}
    for m in members:
        with AgoraClient(m["api"], timeout=5) as c:
            while True:
                seen = {p["did"] for p in c.peers(status="alive")}
                if want - {m["did"]} <= seen:
                    break
                if time.monotonic() > deadline:
                    raise AgoraError("timeout", f"{m['name']} sees {len(seen)} of {len(want) - 1} peers")
                time.sleep(0.05)


def _stop_pid(pid: int, grace: float = 10.0) -> bool:
    if not _alive(pid):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    end = time.monotonic() + grace
    while time.monotonic() < end:
        if not _alive(pid):
            return True
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


def status(root: Path = DEFAULT_DIR) -> dict[str, Any]:
    state = load_state(root)
    rows = []
    for m in [state["hub"], *state["nodes"]]:
        row = {"name": m["name"], "did": m["did"], "api": m["api"], "pid": m["pid"], "running": _alive(m["pid"])}
        if row["running"]:
            try:
                with AgoraClient(m["api"], timeout=3) as c:
                    row["health"] = c.health()["status"]
                    row["peers"] = len(c.peers(status="alive"))
            except AgoraError as err:
                row["health"] = err.code
        rows.append(row)
    return {"dir": state["dir"], "hub_url": state["hub_url"], "members": rows}


def down(root: Path = DEFAULT_DIR) -> list[str]:
    state = load_state(root)
    stopped = []
    for m in [*reversed(state["nodes"]), state["hub"]]:
        if _stop_pid(m["pid"]):
            stopped.append(m["name"])
    (Path(state["dir"]) / STATE_FILE).unlink(missing_ok=True)
    return stopped


__all__ = ["DEFAULT_DIR", "STATE_FILE", "down", "load_state", "status", "up"]
