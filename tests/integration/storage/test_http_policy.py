"""Server-side request forgery: a provider's fetcher refuses private and local addresses by default.

A real HTTP(S) server on 127.0.0.1 records every request it gets (path, Host header, TLS SNI), so each
refusal is shown to happen before anything is contacted. Tests that need an admitted first hop (the
server is loopback too) use `admit_test_server`: the production rules, with an exception for exactly
127.0.0.1; names resolve through an injected resolver (`.test` names exist nowhere else, so a fetch
that succeeds can only have connected to the address the fetcher checked).
"""

from __future__ import annotations

import ssl
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address, ip_address
from pathlib import Path

import pytest

from agora.errors import AgoraError
from agora.storage import HttpFetcher, InputSource, InputSpec, Storages, fetch_inputs
from agora.storage.http import IPAddress, forbidden_reason
from tests.integration.storage.conformance import listing
from tests.support import require_binary

pytestmark = pytest.mark.integration

TEST_SERVER = IPv4Address("127.0.0.1")


def admit_test_server(ip: IPAddress) -> str | None:
    """The production rules, except that the test server's own address counts as public."""
    return None if ip == TEST_SERVER else forbidden_reason(ip)


@dataclass
class Seen:
    path: str
    host: str | None


@dataclass
class Server:
    port: int
    routes: dict[str, tuple[int, bytes, dict[str, str]]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)
    scheme: str = "http"

    def serve(self, path: str, body: bytes = b"", status: int = 200, **headers: str) -> None:
        self.routes[path] = (status, body, headers)

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]


def _start(tls: ssl.SSLContext | None = None) -> tuple[Server, ThreadingHTTPServer, threading.Thread]:
    state = Server(port=0, scheme="https" if tls else "http")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.seen.append(Seen(self.path, self.headers.get("Host")))
            status, body, headers = state.routes.get(self.path, (404, b"", {}))
            self.send_response(status)
            for k, v in ({"Content-Length": str(len(body))} | headers).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if tls is not None:
        tls.sni_callback = lambda _sock, name, _ctx: state.sni.append(name)
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="test-http-policy", daemon=True)
    thread.start()
    return state, server, thread


def _stop(server: ThreadingHTTPServer, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.fixture
def web() -> Iterator[Server]:
    state, server, thread = _start()
    try:
        yield state
    finally:
        _stop(server, thread)


class FakeDns:
    """A resolver with fixed answers per name (a list of answers is handed out one per lookup)."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[IPAddress]:
        self.lookups.append(host)
        queue = self.answers[host]
        current = queue.pop(0) if len(queue) > 1 else queue[0]
        return [ip_address(a) for a in current]


async def _refused(fetcher: HttpFetcher, url: str, tmp_path: Path) -> AgoraError:
    """Both entry points refuse, with the same code, and leave no file."""
    with pytest.raises(AgoraError) as info:
        await fetcher.fetch_to_file(url, tmp_path / "out")
    assert listing(tmp_path) == []
    with pytest.raises(AgoraError) as again:
        await fetcher.fetch(url)
    assert again.value.code == info.value.code
    return info.value


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://127.0.0.1:{port}/data", "127.0.0.1"),
        ("http://localhost:{port}/data", "127.0.0.1"),  # a name resolving to loopback (system resolver)
        ("http://2130706433:{port}/data", "127.0.0.1"),  # 127.0.0.1 written as a number
        ("http://[::1]:{port}/data", "::1"),
        ("http://[::ffff:127.0.0.1]:{port}/data", "::ffff:7f00:1"),
        ("http://0.0.0.0:{port}/data", "0.0.0.0"),
        ("http://10.0.0.1/data", "10.0.0.1"),
        ("http://192.168.0.1/data", "192.168.0.1"),
        ("http://100.64.0.1/data", "100.64.0.1"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("https://[fd00::1]/data", "fd00::1"),
    ],
)
async def test_the_default_refuses_private_and_local_addresses(
    web: Server, tmp_path: Path, url: str, address: str
) -> None:
    web.serve("/data", b"the provider's secret")
    url = url.format(port=web.port)
    err = await _refused(HttpFetcher(connect_timeout=1.0), url, tmp_path)
    assert err.code == "input_forbidden", err
    assert err.http_status == 403 and not err.retryable
    assert err.details["address"] == str(ip_address(address))
    assert "--allow-private-inputs" in err.hint
    assert web.seen == [], "refused before anything was contacted"


async def test_the_operator_opt_in_fetches_from_loopback(web: Server) -> None:
    web.serve("/data", b"on my own network")
    url = f"http://localhost:{web.port}/data"
    assert await HttpFetcher(allow_private_inputs=True).fetch(url) == b"on my own network"
    assert web.seen == [Seen("/data", f"localhost:{web.port}")]


async def test_one_refused_address_refuses_the_whole_name(web: Server, tmp_path: Path) -> None:
    web.serve("/data", b"x")
    dns = FakeDns({"mixed.test": [["127.0.0.1", "10.0.0.7"]]})
    fetcher = HttpFetcher(address_policy=admit_test_server, resolver=dns)
    err = await _refused(fetcher, f"http://mixed.test:{web.port}/data", tmp_path)
    assert err.code == "input_forbidden"
    assert err.details["host"] == "mixed.test" and err.details["address"] == "10.0.0.7"
    assert "mixed.test resolves to 10.0.0.7" in err.message
    assert web.seen == []


async def test_connects_to_the_checked_address_with_the_name_in_host(web: Server) -> None:
    web.serve("/data", b"pinned")
    dns = FakeDns({"files.test": [["127.0.0.1"]]})
    fetcher = HttpFetcher(address_policy=admit_test_server, resolver=dns)
    # files.test exists in no real DNS: this works only if the connection went to the address checked
    assert await fetcher.fetch(f"http://files.test:{web.port}/data") == b"pinned"
    assert dns.lookups == ["files.test"], "one lookup per hop, none by the HTTP client"
    assert web.seen == [Seen("/data", f"files.test:{web.port}")]


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.2:{port}/secret",
        "http://localhost.test:{port}/secret",
        "http://[::1]:{port}/secret",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://internal.test/secret",
        "https://[::ffff:10.0.0.1]/secret",
    ],
)
async def test_a_redirect_to_a_refused_address_is_refused(web: Server, tmp_path: Path, target: str) -> None:
    target = target.format(port=web.port)
    web.serve("/secret", b"must not leave")
    web.serve("/hop", b"", status=302, Location=target)
    dns = FakeDns({"localhost.test": [["127.0.0.3"]], "internal.test": [["10.20.30.40"]]})
    fetcher = HttpFetcher(address_policy=admit_test_server, resolver=dns, connect_timeout=1.0)
    err = await _refused(fetcher, f"http://127.0.0.1:{web.port}/hop", tmp_path)
    assert err.code == "input_forbidden", err
    assert err.details["hop"] == target
    assert f"redirected to {target}" in err.message
    assert web.paths() == ["/hop", "/hop"], "the allowed first hop only, once per call"


async def test_each_hop_is_resolved_and_checked_again(web: Server, tmp_path: Path) -> None:
    """DNS rebinding across a redirect: the same name answers a public address, then a private one."""
    web.serve("/old", b"", status=301, Location="/new")
    web.serve("/new", b"private")
    dns = FakeDns({"rebind.test": [["127.0.0.1"], ["10.0.0.1"]]})
    fetcher = HttpFetcher(address_policy=admit_test_server, resolver=dns)
    with pytest.raises(AgoraError) as info:
        await fetcher.fetch_to_file(f"http://rebind.test:{web.port}/old", tmp_path / "out")
    assert info.value.code == "input_forbidden" and info.value.details["address"] == "10.0.0.1"
    assert dns.lookups == ["rebind.test", "rebind.test"]
    assert web.paths() == ["/old"]
    assert listing(tmp_path) == []


async def test_redirects_between_allowed_hosts_are_followed_and_bounded(web: Server) -> None:
    web.serve("/a", b"", status=302, Location=f"http://two.test:{web.port}/b")
    web.serve("/b", b"", status=307, Location="/c")
    web.serve("/c", b"arrived")
    dns = FakeDns({"one.test": [["127.0.0.1"]], "two.test": [["127.0.0.1"]]})
    fetcher = HttpFetcher(address_policy=admit_test_server, resolver=dns)
    assert await fetcher.fetch(f"http://one.test:{web.port}/a") == b"arrived"
    assert web.seen == [
        Seen("/a", f"one.test:{web.port}"),
        Seen("/b", f"two.test:{web.port}"),
        Seen("/c", f"two.test:{web.port}"),
    ]
    web.serve("/loop", b"", status=302, Location="/loop")
    with pytest.raises(AgoraError) as info:
        await fetcher.fetch(f"http://one.test:{web.port}/loop")
    assert info.value.code == "invalid_argument" and "redirects" in info.value.message
    assert web.paths().count("/loop") == 6  # the first request and MAX_REDIRECTS (5) more, then it stops


async def test_a_redirect_to_another_scheme_is_refused(web: Server) -> None:
    web.serve("/f", b"", status=302, Location="file:///etc/passwd")
    fetcher = HttpFetcher(address_policy=admit_test_server)
    with pytest.raises(AgoraError) as info:
        await fetcher.fetch(f"http://127.0.0.1:{web.port}/f")
    assert info.value.code == "invalid_argument" and "file:///etc/passwd" in info.value.message


async def test_a_name_that_does_not_resolve_is_unreachable() -> None:
    with pytest.raises(AgoraError) as info:
        await HttpFetcher(resolver=FakeDns({"gone.test": [[]]})).fetch("http://gone.test/x")
    assert info.value.code == "storage_unreachable" and info.value.retryable


async def test_staging_refuses_a_loopback_input_by_default(web: Server, tmp_path: Path) -> None:
    web.serve("/in", b"secret")
    inputs = [
        InputSpec("ok", InputSource("inline", content="fine")),
        InputSpec("creds", InputSource("http", url=f"http://localhost:{web.port}/in")),
    ]
    with pytest.raises(AgoraError) as info:
        await fetch_inputs(inputs, tmp_path / "work" / "inputs", Storages())
    assert info.value.code == "input_forbidden"
    assert info.value.details["input"] == "creds" and "input 'creds'" in info.value.message
    assert listing(tmp_path / "work") == []
    assert web.seen == []


# -- https: connecting by address keeps SNI and the certificate check on the name ----------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture
def tls_web(tmp_path: Path) -> Iterator[tuple[Server, ssl.SSLContext]]:
    """An https server on 127.0.0.1 whose certificate names only files.agora.test, and a CA to trust."""
    require_binary("openssl", "openssl (Debian package openssl)")
    d = tmp_path / "certs"
    d.mkdir()
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=test-ca", cwd=d)
    _openssl("req", *ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=files.agora.test", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=DNS:files.agora.test\n")
    _openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "srv.pem", "-days", "1", "-extfile", "ext.cnf", cwd=d)  # fmt: skip
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(d / "srv.pem", d / "srv.key")
    trust = ssl.create_default_context(cafile=str(d / "ca.pem"))
    state, server, thread = _start(server_ctx)
    try:
        yield state, trust
    finally:
        _stop(server, thread)


async def test_https_by_address_keeps_sni_and_hostname_verification(
    tls_web: tuple[Server, ssl.SSLContext], tmp_path: Path
) -> None:
    web, trust = tls_web
    web.serve("/data", b"over tls")
    dns = FakeDns({"files.agora.test": [["127.0.0.1"]], "other.agora.test": [["127.0.0.1"]]})
    fetcher = HttpFetcher(address_policy=admit_test_server, resolver=dns, verify=trust)
    got = await fetcher.fetch_to_file(f"https://files.agora.test:{web.port}/data", tmp_path / "d")
    assert got[1] == len(b"over tls") and (tmp_path / "d").read_bytes() == b"over tls"
    assert web.sni == ["files.agora.test"]
    assert web.seen == [Seen("/data", f"files.agora.test:{web.port}")]

    # same address, another name: the certificate is checked against the name, not the address
    with pytest.raises(AgoraError) as info:
        await fetcher.fetch(f"https://other.agora.test:{web.port}/data")
    assert info.value.code == "storage_unreachable"
    assert "certificate verify failed" in info.value.message.lower()
    assert len(web.seen) == 1, "nothing was sent over the unverified connection"
