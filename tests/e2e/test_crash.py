"""A provider killed with SIGKILL in the middle of a task, and started again at once: the allocation ends
with a signed statement of interruption, the requester retries the unit per its policy, and the task
cgroups the dead node left are gone after its restart."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from agora.executors.cgroups import Cgroups
from tests.e2e.test_jobs import ENV, agora, j
from tests.support import require_binary

DAEMON = [sys.executable, "-m", "agora.daemon"]


def _wait(cond: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _restart(node: dict[str, Any], hub_url: str) -> subprocess.Popen[bytes]:
    """What devnet's launcher does for one node, on the same home (keys, store, work dir)."""
    home = Path(node["home"])
    out = home / "daemon.restart.out"
    out.write_text("")
    with open(out, "ab") as stdout, open(home / "daemon.log", "ab") as stderr:
        proc = subprocess.Popen(
            [*DAEMON, "--home", str(home), "--api-port", "0", "--hub-url", hub_url, "--announce-interval", "1.0"],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=ENV,
            start_new_session=True,
        )

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the restarted node exited with {proc.returncode}")
        return any('"ready"' in line for line in out.read_text().splitlines())

    _wait(ready, "the restarted node to be ready")
    return proc


def _tagged_cgroups(home: Path) -> list[Path]:
    tag = "n" + hashlib.sha256(str((home / "work").absolute()).encode()).hexdigest()[:10] + "-"
    support = Cgroups().detect()
    found: list[Path] = []
    for root in set(support.roots.values()):
        if root.exists():
            found += [p for p in root.iterdir() if p.is_dir() and p.name.startswith(tag)]
    return found


def test_a_provider_killed_mid_task_is_retried_by_the_requester(tmp_path: Path) -> None:
    require_binary("bwrap", "bubblewrap")
    require_binary("busybox", "busybox-static")
    d = tmp_path / "net"
    state = j("devnet", "up", "--nodes", "2", "--dir", str(d))
    restarted: subprocess.Popen[bytes] | None = None
    try:
        one, two = state["nodes"]
        agora("node", "grant", two["did"], "--api", one["api"])
        spec = tmp_path / "slow.yaml"
        spec.write_text(
            "name: slow\n"
            "tasks:\n"
            "  - name: nap\n"
            "    engine: process\n"
            "    command: [busybox, sh, -c, 'echo napping; sleep 4; echo rested > /work/outputs/nap.txt']\n"
            "    resources: {cpu: 500m, memory: 64Mi, disk: 16Mi}\n"
            "    timeout: 60s\n"
            "retry: {attempts: 2, backoff: 1s}\n"
        )
        run = agora("job", "run", str(spec), "--node", one["did"], "--detach", "--api", two["api"], cwd=tmp_path)
        job_id = run.stdout.strip()

        def running() -> bool:
            doc = j("job", "status", job_id, "--api", two["api"])
            return bool(doc["units"][0]["state"] == "running" and doc["units"][0].get("alloc_id"))

        _wait(running, "the task to run on the provider")
        os.kill(one["pid"], signal.SIGKILL)
        _wait(lambda: not Path(f"/proc/{one['pid']}").exists() or _zombie(one["pid"]), "the provider to die")
        restarted = _restart(one, state["hub_url"])

        def ended() -> dict[str, Any] | None:
            doc = j("job", "status", job_id, "--api", two["api"])
            return doc if doc["state"] in ("completed", "failed", "cancelled") else None

        doc = _wait(ended, "the job to end", timeout=120)
        [unit] = doc["units"]
        assert doc["state"] == "completed", json.dumps(doc, indent=1)[:3000]
        assert unit["attempts"] == 2, unit
        [output] = j("job", "outputs", job_id, "--api", two["api"])
        assert Path(output["local_path"]).read_text() == "rested\n"
        assert _tagged_cgroups(Path(one["home"])) == []  # the killed attempt's cgroup was swept
    finally:
        if restarted is not None:
            restarted.terminate()
            try:
                restarted.wait(timeout=20)
            except subprocess.TimeoutExpired:
                restarted.kill()
                restarted.wait(timeout=10)
        agora("devnet", "down", "--dir", str(d), check=False)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True
