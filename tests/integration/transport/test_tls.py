"""TLS between nodes and a hub, with certificates made by the openssl command for each test."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.storage import HubObjectStore
from agora.transport import NatsTransport, TlsConfig, reachability_check
from agora.transport.reachability import HINT_TLS_MISMATCH, HINT_TLS_NOT_OFFERED, HINT_TLS_REQUIRED
from tests.integration.transport.conformance import DEADLINE, echo
from tests.integration.transport.conftest import HubFactory
from tests.support import require_binary


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _make_ca(d: Path, name: str) -> None:
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "1",
             "-subj", f"/CN={name}", cwd=d)  # fmt: skip


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    require_binary("openssl", "openssl (Debian package openssl)")
    d = tmp_path / "certs"
    d.mkdir()
    _make_ca(d, "ca")
    _make_ca(d, "other-ca")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.pem", "-days", "1", "-extfile", "ext.cnf", cwd=d)  # fmt: skip
    return d


async def test_nodes_talk_over_tls_and_mismatches_get_hints(certs: Path, hub_factory: HubFactory) -> None:
    hub = await hub_factory(tls=TlsConfig(cert_file=certs / "server.pem", key_file=certs / "server.key"))
    assert hub.url.startswith("tls://")
    trust = TlsConfig(ca_file=certs / "ca.pem")
    keys = [Keypair.generate(), Keypair.generate()]
    a, b = (NatsTransport(k.did, [hub.url], keypair=k, tls=trust) for k in keys)
    await a.start()
    await b.start()
    try:
        await b.serve(echo)
        assert await a.request(b.local_did, b"secret", timeout=DEADLINE) == b"echo:secret"
    finally:
        await a.close()
        await b.close()

    ok, detail, _hint = await reachability_check(hub.url, tls=trust)
    assert ok, detail
    assert (await reachability_check(hub.url))[::2] == (False, HINT_TLS_REQUIRED)
    wrong = TlsConfig(ca_file=certs / "other-ca.pem")
    assert (await reachability_check(hub.url, tls=wrong))[::2] == (False, HINT_TLS_MISMATCH)

    key = Keypair.generate()
    untrusting = NatsTransport(key.did, [hub.url], tls=wrong, connect_deadline=60.0)
    with pytest.raises(AgoraError) as info:
        await untrusting.start()  # fails at once: an untrusted certificate does not heal by retrying
    assert (info.value.code, info.value.hint) == ("hub_unreachable", HINT_TLS_MISMATCH)


async def test_a_tls_node_refuses_a_plaintext_hub(certs: Path, hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    trust = TlsConfig(ca_file=certs / "ca.pem")
    key = Keypair.generate()
    node = NatsTransport(key.did, [hub.url], tls=trust)
    with pytest.raises(AgoraError) as info:
        await node.start()
    assert (info.value.code, info.value.hint) == ("hub_unreachable", HINT_TLS_NOT_OFFERED)
    assert (await reachability_check(hub.url, tls=trust))[::2] == (False, HINT_TLS_NOT_OFFERED)


async def test_an_allowlisted_tls_hub_creates_its_bucket_over_tls(certs: Path, hub_factory: HubFactory) -> None:
    """The hub dials itself over TLS (trusting its own certificate) to create the object store bucket."""
    key = Keypair.generate()
    tls = TlsConfig(cert_file=certs / "server.pem", key_file=certs / "server.key")
    hub = await hub_factory(tls=tls, allowed_dids=(key.did,))
    node = NatsTransport(key.did, [hub.url], keypair=key, tls=TlsConfig(ca_file=certs / "ca.pem"))
    await node.start()
    try:
        store = HubObjectStore(node.nats_client)
        ref = await store.put(b"over tls")
        assert await store.get(ref) == b"over tls"
    finally:
        await node.close()
