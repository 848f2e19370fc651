"""HubObjectStore against a real nats-server with JetStream: size cap, connection failures, sharing."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import nats
import pytest

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.storage import HubObjectStore
from agora.transport import HubProcess
from tests.integration.transport.conftest import HubFactory
from tests.support import free_port

pytestmark = pytest.mark.integration


async def test_over_the_cap_is_message_too_large_with_an_s3_hint(hub_store: HubObjectStore, tmp_path: Path) -> None:
    cap = hub_store.max_object_bytes
    with pytest.raises(AgoraError) as info:
        await hub_store.put(b"\0" * (cap + 1))
    assert info.value.code == "message_too_large"
    assert "S3" in info.value.hint
    big = tmp_path / "big"
    big.write_bytes(os.urandom(cap + 1))
    with pytest.raises(AgoraError) as info:
        await hub_store.put(big)
    assert info.value.code == "message_too_large"
    at_cap = await hub_store.put(b"\1" * cap)
    assert at_cap.size == cap
    assert await hub_store.exists(at_cap)


async def test_a_smaller_cap_is_honoured(hub: HubProcess) -> None:
    store = await HubObjectStore.connect(hub.url, bucket="small", max_object_bytes=10)
    try:
        assert (await store.put(b"0123456789")).size == 10
        with pytest.raises(AgoraError) as info:
            await store.put(b"0123456789A")
        assert info.value.code == "message_too_large"
    finally:
        await store.close()


async def test_no_hub_is_storage_unreachable() -> None:
    with pytest.raises(AgoraError) as info:
        await HubObjectStore.connect(f"nats://127.0.0.1:{free_port()}", connect_timeout=1.0)
    assert info.value.code == "storage_unreachable"
    assert info.value.retryable


async def test_a_hub_that_goes_away_is_storage_unreachable(hub: HubProcess) -> None:
    store = await HubObjectStore.connect(hub.url, bucket=f"t-{secrets.token_hex(4)}")
    try:
        ref = await store.put(b"before")
        await hub.stop()
        with pytest.raises(AgoraError) as info:
            await store.get(ref)
        assert info.value.code == "storage_unreachable"
    finally:
        await store.close()


async def test_a_hub_refusing_the_key_is_storage_auth_failed(hub_factory: HubFactory) -> None:
    allowed = Keypair.generate()
    hub = await hub_factory(allowed_dids=(allowed.did,))
    with pytest.raises(AgoraError) as info:
        await HubObjectStore.connect(hub.url, nkeys_seed_str=Keypair.generate().nkey_seed())
    assert info.value.code == "storage_auth_failed"
    store = await HubObjectStore.connect(hub.url, nkeys_seed_str=allowed.nkey_seed())
    try:
        ref = await store.put(b"allowed")
        assert await store.get(ref) == b"allowed"
    finally:
        await store.close()


async def test_shares_a_borrowed_connection_and_leaves_it_open(hub: HubProcess) -> None:
    nc = await nats.connect(hub.url)
    try:
        bucket = f"t-{secrets.token_hex(4)}"
        a = HubObjectStore(nc, bucket)
        b = HubObjectStore(nc, bucket)  # a second node's view: the bucket already exists
        ref = await a.put(b"shared result")
        assert ref.uri == f"hub://{bucket}/{ref.sha256}"
        assert await b.get(ref) == b"shared result"
        await a.close()
        assert not nc.is_closed, "the store must not close a connection it did not open"
        assert await b.exists(ref)
    finally:
        await nc.close()
