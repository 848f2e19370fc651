"""`agora node up` with its API port taken fails at once, before it dials any hub (6.7)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path


def _listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock


def test_a_taken_api_port_fails_before_the_node_dials_its_hub(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGORA_")}
    with _listener() as hub, _listener() as taken:  # a "hub" that records any connection; a port in use
        hub_port, api_port = hub.getsockname()[1], taken.getsockname()[1]
        argv = ["--home", str(tmp_path / "n"), "--hub-url", f"nats://127.0.0.1:{hub_port}", "--api-port", str(api_port)]
        proc = subprocess.run(
            [sys.executable, "-m", "agora.daemon", *argv, "--benchmark", "off"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        hub.setblocking(False)
        try:
            conn, _ = hub.accept()  # a connection the node made (even one closed since) waits in the backlog
        except BlockingIOError:
            conn = None
        if conn is not None:
            conn.close()
        assert conn is None, "the node dialled its hub before it found its API port taken"
        assert proc.returncode == 1, proc.stderr
        [event] = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        assert event["event"] == "error" and event["code"] == "config_invalid", event
        assert f":{api_port}" in event["message"] and "--api-port" in event["hint"]
