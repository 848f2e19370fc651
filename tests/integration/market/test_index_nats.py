"""The MarketIndex conformance suite on the NATS JetStream KV index, against a real nats-server.

The hostile hub writes raw bytes straight into the bucket (any writer of an open hub can), so the
suite checks that readers verify what the hub serves, exactly as for the memory index.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import nats
import pytest

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.market.index_nats import SNAPSHOT_LIMIT_S, NatsMarketIndex, did_of_key, kv_snapshot, market_key
from agora.transport import HubProcess
from agora.transport.reachability import close_client
from tests.integration.market.kv_race import held_kv_deliveries
from tests.unit.market.ads import signed_ad
from tests.unit.market.index_conformance import Hub, IndexConformance, next_ad

pytestmark = pytest.mark.integration


class TestNatsMarketIndex(IndexConformance):
    @pytest.fixture
    async def hub(self, hub: HubProcess) -> AsyncIterator[Hub]:
        nc = await nats.connect(hub.url, allow_reconnect=False)
        index = NatsMarketIndex(nc, f"t-{secrets.token_hex(4)}", ttl_s=60)

        async def hostile(key: str, raw: bytes) -> None:
            await index._write(market_key(key), raw)

        try:
            yield index, hostile
        finally:
            await index.close()
            await close_client(nc)


def test_keys_are_valid_kv_keys_and_reversible() -> None:
    did = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
    assert market_key(did) == "did.key.z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
    assert did_of_key(market_key(did)) == did
    odd = "did:web:example.org%3A8443"
    with pytest.raises(AgoraError) as raised:  # '.' is not allowed in a DID token
        market_key(odd)
    assert raised.value.code == "did_invalid"
    assert did_of_key(market_key("did:web:host%3A8443")) == "did:web:host%3A8443"


@pytest.fixture
async def index(hub: HubProcess) -> AsyncIterator[NatsMarketIndex]:
    nc = await nats.connect(hub.url, allow_reconnect=False)
    index = NatsMarketIndex(nc, f"t-{secrets.token_hex(4)}", ttl_s=60)
    try:
        yield index
    finally:
        await index.close()
        await close_client(nc)


async def test_a_snapshot_reads_the_entries_the_hub_pushed_before_it_answered_consumer_info(
    index: NatsMarketIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CI flake: the server had sent every entry (nothing pending) but the client had read none when
    `consumer_info` answered; nats-py's KeyWatcher then said "no more values" before the entries came."""
    providers = [Keypair.generate() for _ in range(3)]
    for kp in providers:
        await index.publish(signed_ad(kp).raw)
    async with held_kv_deliveries(monkeypatch, expect=len(providers)) as held:
        ads = await index.ads()
    assert held.held == len(providers)  # the race was played: every entry came after the info's answer
    assert [a.provider for a in ads] == sorted(kp.did for kp in providers)


async def test_a_snapshot_the_hub_never_delivers_is_hub_unreachable_within_its_limit(
    index: NatsMarketIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    await index.publish(signed_ad(Keypair.generate()).raw)
    kv = await index._kv()
    async with held_kv_deliveries(monkeypatch, expect=1, release_after_info=False) as held:
        with pytest.raises(AgoraError) as raised:
            await kv_snapshot(kv, what="market bucket x", limit_s=1.0)
    assert held.held == 1 and held.infos >= 1  # the hub said it sent the entry, and it never came
    assert raised.value.code == "hub_unreachable" and raised.value.message.startswith("market bucket x:")


async def test_a_watch_whose_hub_connection_closes_ends_with_hub_unreachable(hub: HubProcess) -> None:
    """Not a watch that waits forever for changes that can no longer come (the runner opens a new one)."""
    nc = await nats.connect(hub.url, allow_reconnect=False)
    index = NatsMarketIndex(nc, f"t-{secrets.token_hex(4)}", ttl_s=60)
    try:
        kp = Keypair.generate()
        await index.publish(signed_ad(kp).raw)
        async with index.watch() as w:
            assert (await next_ad(w)).provider == kp.did
            await close_client(nc)
            with pytest.raises(AgoraError) as raised:
                await next_ad(w)
        assert raised.value.code == "hub_unreachable"
    finally:
        await index.close()
        await close_client(nc)


async def test_a_snapshot_leaves_no_long_lived_consumer_on_the_hub(index: NatsMarketIndex) -> None:
    """Every `ads()` is one consumer; nats-py never deletes it, so the hub must drop it soon (nats-py's
    KeyWatcher kept each for five minutes: a busy requester piled them up on the hub)."""
    await index.publish(signed_ad(Keypair.generate()).raw)
    for _ in range(3):
        assert len(await index.ads()) == 1
    kv = await index._kv()
    consumers = await kv._js.consumers_info(kv._stream)
    assert len(consumers) == 3
    assert all(0 < (c.config.inactive_threshold or 0) <= SNAPSHOT_LIMIT_S for c in consumers)
