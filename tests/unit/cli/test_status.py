"""`agora status` against a node's API, served here by a stub HTTP server on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner

from agora.cli.main import app

NODE = {
    "did": "did:key:z6MkfV2PEnGZsgSWPmFo9TVoAYV1Fmz16MVvVztVNfbfs1r9",
    "version": "0.1.0",
    "transport": "disconnected",
    "hubs": ["nats://127.0.0.1:4222"],
    "is_hub": False,
    "api": "http://127.0.0.1:8765",
    "peers_alive": 0,
    "uptime_s": 12.0,
    "ready_s": 0.4,
}
HEALTH: dict[str, Any] = {"status": "degraded", "reasons": ["transport disconnected"], "transport": "disconnected"}


class _Stub(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code, body = (503, HEALTH) if self.path == "/health" else (200, NODE)
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_status_of_a_degraded_node_shows_degraded_and_why(api: str) -> None:
    out = CliRunner().invoke(app, ["status", "--api", api])
    assert out.exit_code == 0, out.output
    assert "health:     degraded (transport disconnected)" in out.output
    as_json = CliRunner().invoke(app, ["status", "--api", api, "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)["health"]["reasons"] == ["transport disconnected"]
