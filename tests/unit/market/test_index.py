"""The MarketIndex conformance suite on the in-memory index (the NATS KV index will run the same suite)."""

from __future__ import annotations

import asyncio

import pytest

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.market.index import MemoryMarketIndex
from tests.unit.market.ads import signed_ad
from tests.unit.market.index_conformance import WAIT_S, Hub, IndexConformance, next_ad


class TestMemoryMarketIndex(IndexConformance):
    @pytest.fixture
    def hub(self) -> Hub:
        index = MemoryMarketIndex()

        async def hostile(key: str, raw: bytes) -> None:
            index._put(key, raw)

        return index, hostile


def test_both_indexes_read_through_the_one_reader() -> None:
    """Verification, dedupe, replay counting and watch fan-out live in IndexReader / IndexWatch only: neither
    index defines its own copy, so the conformance suite exercises the same code on both."""
    from agora.market.index import IndexReader, IndexWatch
    from agora.market.index_nats import NatsMarketIndex, _NatsWatch

    for cls in (MemoryMarketIndex, NatsMarketIndex):
        assert issubclass(cls, IndexReader)
        assert not {"publish", "ads", "get", "stats", "close", "_stored"} & set(vars(cls)), cls
    assert issubclass(_NatsWatch, IndexWatch)
    assert not {"__anext__", "aclose", "notify"} & set(vars(_NatsWatch))


class _SlowIndex(MemoryMarketIndex):
    """Reading a key waits for `open` (a hub slow to answer), or fails once after `fail_next` (a hub that
    did not answer)."""

    def __init__(self) -> None:
        super().__init__()
        self.open = asyncio.Event()
        self.open.set()
        self.reading = asyncio.Event()
        self.fail_next = False

    async def _raw(self, key: str) -> bytes | None:
        self.reading.set()
        await self.open.wait()
        if self.fail_next:
            self.fail_next = False
            raise AgoraError("hub_unreachable", f"market ad {key}: the hub did not answer")
        return await super()._raw(key)


@pytest.mark.parametrize("interruption", ["cancelled", "failed"])
async def test_a_wait_interrupted_while_reading_a_key_keeps_the_key_for_the_next_wait(interruption: str) -> None:
    """A watcher that waits with a timeout (`asyncio.timeout(1): anext(w)`) or whose read failed (the hub
    did not answer) still gets the ad on its next wait: the change it was reading is not lost."""
    index = _SlowIndex()
    kp = Keypair.generate()
    await index.publish(signed_ad(kp).raw)
    async with index.watch() as w:
        if interruption == "cancelled":
            index.open.clear()
            index.reading.clear()
            waiting = asyncio.ensure_future(anext(w))
            await asyncio.wait_for(index.reading.wait(), WAIT_S)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            index.open.set()
        else:
            index.fail_next = True
            with pytest.raises(AgoraError):
                await next_ad(w)
        got = await next_ad(w)
    assert got.provider == kp.did


class _MissingOnce(MemoryMarketIndex):
    """A hub whose next read leaves every key out (a read that missed them), then serves them again."""

    def __init__(self) -> None:
        super().__init__()
        self.miss_next = False

    async def _snapshot(self) -> dict[str, bytes]:
        if self.miss_next:
            self.miss_next = False
            return {}
        return await super()._snapshot()


async def test_an_ad_missed_by_one_read_is_back_on_the_next() -> None:
    """One read that misses a provider's key must not hide its unchanged ad until it publishes a new one:
    the same bytes served again are the same ad (a hub could as well have kept serving it), not a replay;
    an older one after the miss still is."""
    index = _MissingOnce()
    kp = Keypair.generate()
    old, ad = signed_ad(kp, seq=1), signed_ad(kp, seq=2)
    await index.publish(old.raw)
    await index.publish(ad.raw)
    assert [a.seq for a in await index.ads()] == [2]
    index.miss_next = True
    assert await index.ads() == []
    assert [a.seq for a in await index.ads()] == [2]
    assert index.stats["replayed"] == 0
    index.miss_next = True
    assert await index.ads() == []
    index._put(kp.did, old.raw)
    assert await index.ads() == [] and index.stats["replayed"] == 1
