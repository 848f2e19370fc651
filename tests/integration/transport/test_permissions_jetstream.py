"""The hub object store on an allowlisted hub: nodes use the hub's buckets but cannot create any.

The whole Storage conformance suite runs as a confined node (its big object exercises JetStream
flow control through the permissions), and the focused tests cover what only an allowlisted hub
does: the hub creates its buckets itself, keeps them across restarts, and refuses other buckets
with a clear error.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.storage import ContentRef, HubObjectStore
from agora.transport import HubProcess, NatsTransport
from tests.integration.storage.conformance import Harness, StorageConformance
from tests.integration.transport.conformance import DEADLINE
from tests.integration.transport.conftest import HubFactory

pytestmark = pytest.mark.integration


class TestHubObjectStoreAsAConfinedNode(StorageConformance):
    @pytest.fixture
    async def harness(self, hub_factory: HubFactory) -> AsyncIterator[Harness]:
        key, bucket = Keypair.generate(), f"t-{secrets.token_hex(6)}"
        hub = await hub_factory(allowed_dids=(key.did,), object_buckets=(bucket,))
        store = await HubObjectStore.connect(hub.url, bucket=bucket, keypair=key)

        async def corrupt(ref: ContentRef, data: bytes) -> None:
            obs = await store._nc.jetstream().object_store(bucket)
            await obs.put(ref.sha256, data)  # a member that ignores the content-addressing rule

        try:
            yield Harness(storage=store, corrupt=corrupt, big_size=6 * 1024 * 1024, bounded_memory=False)
        finally:
            await store.close()


async def test_a_node_shares_results_through_its_own_transport_connection(hub_factory: HubFactory) -> None:
    a, b = Keypair.generate(), Keypair.generate()
    hub = await hub_factory(allowed_dids=(a.did, b.did))  # the default bucket, created by the hub
    ta, tb = NatsTransport(a.did, [hub.url], keypair=a), NatsTransport(b.did, [hub.url], keypair=b)
    await ta.start()
    await tb.start()
    try:
        ref = await HubObjectStore(ta.nats_client).put(b"result of a")
        assert await HubObjectStore(tb.nats_client).get(ref) == b"result of a"
    finally:
        await ta.close()
        await tb.close()


async def test_buckets_outlive_a_hub_restart(hub_factory: HubFactory) -> None:
    key = Keypair.generate()
    hub = await hub_factory(allowed_dids=(key.did,))
    store = await HubObjectStore.connect(hub.url, keypair=key)
    try:
        ref = await store.put(b"kept")
    finally:
        await store.close()
    await hub.restart()
    store = await HubObjectStore.connect(hub.url, keypair=key)
    try:
        assert await store.get(ref) == b"kept"
    finally:
        await store.close()


async def test_a_bucket_the_hub_does_not_open_is_storage_auth_failed(hub_factory: HubFactory) -> None:
    key = Keypair.generate()
    hub = await hub_factory(allowed_dids=(key.did,))
    store = await HubObjectStore.connect(hub.url, bucket="not-opened", keypair=key, timeout=1.0)
    try:
        with pytest.raises(AgoraError) as info:
            await store.put(b"x")
        assert info.value.code == "storage_auth_failed"
        assert "object_buckets" in info.value.hint
    finally:
        await store.close()


async def test_no_bucket_is_made_on_an_open_hub_at_start(hub: HubProcess) -> None:
    """Only an allowlisted hub provisions buckets (anyone may create them on an open hub)."""
    store = await HubObjectStore.connect(hub.url, bucket=f"t-{secrets.token_hex(4)}", timeout=DEADLINE)
    try:
        js = store._nc.jetstream(timeout=DEADLINE)
        assert [name async for name in _stream_names(js)] == []
        await store.put(b"first use creates it")
        assert [name async for name in _stream_names(js)] == [f"OBJ_{store.bucket}"]
    finally:
        await store.close()


async def _stream_names(js: object) -> AsyncIterator[str]:
    for info in await js.streams_info():  # type: ignore[attr-defined]
        yield info.config.name
