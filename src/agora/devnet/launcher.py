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
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agora.client import AgoraClient, read_devnet_file
from agora.errors import AgoraError

DEFAULT_DIR = Path(os.environ.get("AGORA_DEVNET_DIR", ".agora-devnet"))
STATE_FILE = "devnet.json"
DEVNET_FUNDS = 100_000  # minor units each member's wallet gets, issued by the hub operator at `up`


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


def _start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot): with the pid, it names one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:  # the command name (field 2) may hold spaces and parentheses: split after its last ')'
        return int(stat[stat.rindex(")") + 2 :].split()[19])
    except (ValueError, IndexError):
        return None


def _cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def _is_ours(member: dict[str, Any], root: Path) -> bool:
    """Whether the pid in devnet.json is still the daemon the devnet started: an agora daemon with that
    member's home, started at the recorded time. A pid recycled after a reboot or by another program,
    even another agora daemon, is never signalled. The home must be a directory of the devnet's own
    (`root/NAME`, where `up` puts it): devnet.json may sit in a directory others can write, and a file
    planted there naming another daemon of the user's (pid and start time are public in /proc) must
    not make `down` stop it."""
    pid = int(member["pid"])
    home = Path(str(member["home"]))
    if home.parent.resolve() != root.resolve():
        return False
    args = _cmdline(pid)
    if b"agora.daemon" not in args or os.fsencode(str(member["home"])) not in args:
        return False
    recorded = member.get("start_time")
    return recorded is not None and _start_time(pid) == recorded


def load_state(root: Path = DEFAULT_DIR) -> dict[str, Any]:
    path = root / STATE_FILE
    if not path.exists():
        raise AgoraError("devnet_not_running", f"no {STATE_FILE} in {root}")
    return read_devnet_file(path)  # config_invalid unless the user's own and not writable by others


def check_not_running(root: Path = DEFAULT_DIR) -> None:
    """Refuse early (before anything is printed or started) when `root` holds a running devnet."""
    if not (root / STATE_FILE).exists():
        return
    state = load_state(root)
    if any(_is_ours(m, root) for m in [state["hub"], *state["nodes"]]):
        raise AgoraError(
            "devnet_already_running",
            f"a devnet is running from {root.resolve()}",
            hint=f"Use it (`agora devnet status --dir {root}`), stop it (`agora devnet down --dir {root}`), "
            "or pass another --dir.",
        )


def _check_own_dir(root: Path) -> None:
    """The devnet directory holds the members' homes (keys, configs) and devnet.json: one that another user
    owns or anyone may write (a ./.agora-devnet someone created in /tmp first) could hold their files or links
    where `up` writes, so it is refused (`config_invalid`) before anything is written or started."""
    st = root.stat()
    if st.st_uid != os.geteuid() or st.st_mode & stat.S_IWOTH:
        raise AgoraError(
            "config_invalid",
            f"the devnet directory {root} belongs to uid {st.st_uid} with mode {stat.S_IMODE(st.st_mode):o}: "
            "a devnet runs only from a directory of your own that others cannot write",
            hint="Pass --dir with a directory of your own (or set AGORA_DEVNET_DIR).",
        )


def up(
    nodes: int = 3,
    root: Path = DEFAULT_DIR,
    *,
    announce_interval: float = 1.0,
    timeout: float = 30.0,
    funds: int = DEVNET_FUNDS,
    on_step: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """`on_step(what)` hears each step as it starts (the CLI's progress line)."""
    step = on_step if on_step is not None else (lambda what: None)
    if nodes < 1 or nodes > 32:
        raise AgoraError("invalid_argument", "a devnet has between 1 and 32 nodes")
    root = root.resolve()
    check_not_running(root)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    _check_own_dir(root)
    (root / STATE_FILE).unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("AGORA_API", "AGORA_HOME")}
    # every member would benchmark the same cores at once: a full run each made `up` take 14-18 s on 2 cores
    env.setdefault("AGORA_BENCHMARK", "quick")
    common = ["--announce-interval", str(announce_interval)]
    started: list[Proc] = []
    deadline = time.monotonic() + timeout
    try:
        step("starting the hub")
        hub = _spawn("hub", root, ["--hub", "--hub-port", "0", *common], env)
        started.append(hub)
        hub_ready = _wait_ready(hub, deadline)
        hub_url = hub_ready["hub_url"]
        step(f"starting {nodes} node(s)")
        for i in range(nodes):
            # `--sell`: each node publishes a default offer from its machine, so a devnet is a market at once
            started.append(_spawn(f"node-{i + 1}", root, ["--hub-url", hub_url, "--sell", *common], env))
        members = [
            {
                **_wait_ready(p, deadline),
                "name": p.name,
                "pid": p.popen.pid,
                "start_time": _start_time(p.popen.pid),
                "home": str(p.home),
            }
            for p in started
        ]
        state = {
            "dir": str(root),
            "hub_url": hub_url,
            "hub": {**members[0], "url": hub_url},
            "nodes": [{**m, "hub": hub_url} for m in members[1:]],
            "started_at": time.time(),
        }
        step("waiting for every node to see every other")
        _wait_mesh(state, deadline)
        step("funding the members")
        state["funded"] = [fund(state, m, funds) for m in members if funds > 0]
        _save_state(root, state)
        return state
    except BaseException:
        for p in reversed(started):
            _stop_child(p.popen)
        raise


def _save_state(root: Path, state: dict[str, Any]) -> None:
    tmp = root / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.chmod(0o644)  # whatever the umask: a devnet file others may write is not followed (read_devnet_file)
    tmp.replace(root / STATE_FILE)


def add_node(
    root: Path = DEFAULT_DIR,
    *,
    announce_interval: float = 1.0,
    timeout: float = 30.0,
    sell: bool = True,
    funds: int = DEVNET_FUNDS,
) -> dict[str, Any]:
    """Start one more node (`node-N+1`) in the running devnet at `root`, selling its machine like the others
    (`--sell`) unless `sell` is false; returns the new member once every member sees it (devnet.json then
    lists it, so `down` stops it too)."""
    root = root.resolve()
    state = load_state(root)
    if len(state["nodes"]) >= 32:
        raise AgoraError("invalid_argument", "a devnet has between 1 and 32 nodes")
    if not _is_ours(state["hub"], root):
        raise AgoraError("devnet_not_running", f"the devnet's hub in {root} is not running")
    env = {k: v for k, v in os.environ.items() if k not in ("AGORA_API", "AGORA_HOME")}
    env.setdefault("AGORA_BENCHMARK", "quick")
    name = f"node-{len(state['nodes']) + 1}"
    args = ["--hub-url", state["hub_url"], *(["--sell"] if sell else []), "--announce-interval", str(announce_interval)]
    deadline = time.monotonic() + timeout
    proc = _spawn(name, root, args, env)
    try:
        ready = _wait_ready(proc, deadline)
        member = {
            **ready,
            "name": name,
            "pid": proc.popen.pid,
            "start_time": _start_time(proc.popen.pid),
            "home": str(proc.home),
            "hub": state["hub_url"],
        }
        grown = {**state, "nodes": [*state["nodes"], member]}
        _wait_mesh(grown, deadline)
        if funds > 0:
            grown["funded"] = [*state.get("funded", []), fund(grown, member, funds)]
        _save_state(root, grown)
        return member
    except BaseException:
        _stop_child(proc.popen)
        raise


def fund(state: dict[str, Any], member: dict[str, Any], amount: int) -> dict[str, Any]:
    """Fund a member's wallet the way an operator does (`agora ledger mint DID AMOUNT` on the hub node): an
    issuance signed by the hub, the ledger's operator. The key names the member, so funding it twice (an
    `add_node` retried) issues nothing twice. Never a balance written anywhere by hand."""
    with AgoraClient(state["hub"]["api"], timeout=15) as hub:
        doc = hub.mint(
            member["did"], amount, idem=f"devnet-funds:{member['did']}", memo=f"devnet funds for {member['name']}"
        )
    entry = doc["entry"]
    return {"name": member["name"], "did": member["did"], "amount": amount, "seq": entry["seq"], "entry": entry["id"]}


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


def _stop_member(member: dict[str, Any], root: Path, grace: float = 10.0) -> bool:
    """SIGTERM (SIGKILL after `grace` s) to a member the devnet started, only while `_is_ours` holds."""
    if not _is_ours(member, root):
        return False
    pid = int(member["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    end = time.monotonic() + grace
    while time.monotonic() < end:
        if not _is_ours(member, root):
            return True
        time.sleep(0.02)
    if _is_ours(member, root):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return True


def _stop_child(popen: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """A process this very call started: its Popen knows it (a pid of our own child cannot be recycled)."""
    if popen.poll() is None:
        popen.terminate()
        try:
            popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            popen.kill()
    popen.wait(timeout=5)


def status(root: Path = DEFAULT_DIR) -> dict[str, Any]:
    state = load_state(root)
    rows = []
    for m in [state["hub"], *state["nodes"]]:
        row = {"name": m["name"], "did": m["did"], "api": m["api"], "pid": m["pid"], "running": _is_ours(m, root)}
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
        if _stop_member(m, root):
            stopped.append(m["name"])
    (root / STATE_FILE).unlink(missing_ok=True)  # this directory's file, never one its `dir` names
    return stopped


__all__ = [
    "DEFAULT_DIR",
    "DEVNET_FUNDS",
    "STATE_FILE",
    "add_node",
    "check_not_running",
    "down",
    "fund",
    "load_state",
    "status",
    "up",
]
