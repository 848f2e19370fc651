"""The conformance suite every `MarketIndex` implementation passes (memory now, NATS JetStream KV next).

A subclass provides the `hub` fixture: a fresh index and a function that writes raw bytes under a key as
a hostile hub would (bypassing `publish`), so the suite can check that readers verify what they read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.market.index import MarketIndex
from agora.ucan import seal_envelope
from agora.wire.market import AD_TAG, CapacityAd
from tests.unit.market.ads import signed_ad

HostileWrite = Callable[[str, bytes], Any]
Hub = tuple[MarketIndex, HostileWrite]
WAIT_S = 5.0


async def next_ad(w: AsyncIterator[CapacityAd]) -> CapacityAd:
    return await asyncio.wait_for(anext(w), WAIT_S)


class IndexConformance:
    @pytest.fixture
    def hub(self) -> Hub:  # overridden by each implementation's test module
        raise NotImplementedError

    async def test_publish_and_read(self, hub: Hub) -> None:
        index, _ = hub
        a, b = Keypair.generate(), Keypair.generate()
        ad_a = signed_ad(a)
        assert (await index.publish(ad_a.raw)).cid == ad_a.cid
        await index.publish(signed_ad(b).raw)
        ads = await index.ads()
        assert [x.provider for x in ads] == sorted([a.did, b.did])
        got = await index.get(a.did)
        assert got is not None and got.raw == ad_a.raw
        assert await index.get(Keypair.generate().did) is None

    async def test_newer_replaces_older_is_refused_same_is_idempotent(self, hub: Hub) -> None:
        index, _ = hub
        kp = Keypair.generate()
        first, second = signed_ad(kp, seq=1), signed_ad(kp, seq=2, cpu=1000)
        await index.publish(first.raw)
        await index.publish(second.raw)
        await index.publish(second.raw)  # the same ad again: accepted, nothing changes
        with pytest.raises(AgoraError) as raised:
            await index.publish(first.raw)
        assert raised.value.code == "ad_replayed"
        got = await index.get(kp.did)
        assert got is not None and got.seq == 2 and got.free.cpu_millis == 1000

    async def test_publishing_a_forged_ad_is_refused(self, hub: Hub) -> None:
        index, _ = hub
        victim, mallory = Keypair.generate(), Keypair.generate()
        forged = seal_envelope(mallory, AD_TAG, signed_ad(victim)._payload())
        with pytest.raises(AgoraError) as raised:
            await index.publish(forged)
        assert raised.value.code == "ad_invalid"
        assert await index.ads() == []

    async def test_readers_ignore_and_count_what_a_hostile_hub_serves(self, hub: Hub) -> None:
        index, hostile = hub
        victim, other, mallory = Keypair.generate(), Keypair.generate(), Keypair.generate()
        good1, good2 = signed_ad(victim, seq=1), signed_ad(victim, seq=2)
        await index.publish(good1.raw)
        await index.publish(good2.raw)
        assert [a.seq for a in await index.ads()] == [2]
        # forged bytes in the victim's key: ignored, the last good ad stays, counted once however often read
        await hostile(victim.did, seal_envelope(mallory, AD_TAG, signed_ad(victim, seq=9, cpu=1)._payload()))
        for _ in range(2):
            ads = await index.ads()
            assert [(a.provider, a.seq) for a in ads] == [(victim.did, 2)]
        assert index.stats["forged"] == 1
        # rolled back to an older ad: a replay, ignored
        await hostile(victim.did, good1.raw)
        assert [a.seq for a in await index.ads()] == [2]
        assert index.stats["replayed"] == 1
        # a good ad of one provider filed under another's key: ignored
        await hostile(other.did, good2.raw)
        assert [a.provider for a in await index.ads()] == [victim.did]
        assert index.stats["forged"] == 2
        # garbage
        await hostile(other.did, b"\xa1junk")
        assert await index.get(other.did) is None
        assert index.stats["forged"] == 3

    async def test_withdraw(self, hub: Hub) -> None:
        index, _ = hub
        kp = Keypair.generate()
        await index.publish(signed_ad(kp).raw)
        await index.withdraw(kp.did)
        await index.withdraw(kp.did)
        assert await index.ads() == [] and await index.get(kp.did) is None

    async def test_withdrawn_then_rolled_back_is_still_a_replay(self, hub: Hub) -> None:
        index, hostile = hub
        kp = Keypair.generate()
        old, new = signed_ad(kp, seq=1), signed_ad(kp, seq=2)
        await index.publish(old.raw)
        await index.publish(new.raw)
        assert [a.seq for a in await index.ads()] == [2]
        await index.withdraw(kp.did)
        assert await index.ads() == []
        await hostile(kp.did, old.raw)
        assert await index.ads() == [] and index.stats["replayed"] == 1

    async def test_watch_yields_current_then_changes_coalesced_and_verified(self, hub: Hub) -> None:
        index, hostile = hub
        a, b, mallory = Keypair.generate(), Keypair.generate(), Keypair.generate()
        await index.publish(signed_ad(a, seq=1).raw)
        async with index.watch() as w:
            first = await next_ad(w)
            assert (first.provider, first.seq) == (a.did, 1)
            await index.publish(signed_ad(b, seq=1).raw)
            for seq in (2, 3, 4):
                await index.publish(signed_ad(a, seq=seq).raw)
            await hostile(b.did, seal_envelope(mallory, AD_TAG, signed_ad(b, seq=5)._payload()))
            await index.publish(signed_ad(a, seq=5).raw)
            seen = [(x.provider, x.seq) for x in [await next_ad(w)]]
            # b's only good ad was replaced by a forgery before the watcher read it: nothing from b;
            # a's ads coalesce to the newest
            assert seen == [(a.did, 5)]
            assert w.stats["forged"] == 1
            await index.publish(signed_ad(b, seq=6).raw)
            nxt = await next_ad(w)
            assert (nxt.provider, nxt.seq) == (b.did, 6)

    async def test_close_ends_watches_and_refuses_calls(self, hub: Hub) -> None:
        index, _ = hub
        w = index.watch()
        waiting = asyncio.ensure_future(anext(w))
        await asyncio.sleep(0)
        await index.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(waiting, WAIT_S)
        with pytest.raises(AgoraError) as raised:
            await index.publish(signed_ad(Keypair.generate()).raw)
        assert raised.value.code == "unavailable"
