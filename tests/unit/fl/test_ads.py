"""The hub's data-ad index, read as an untrusted store: forged, mis-filed and replayed entries are
skipped and counted, the provider's last good ad is kept; a publish never goes back in `seq`; the
provider's advertiser publishes on a data-set change and withdraws at stop."""

from __future__ import annotations

import asyncio

import pytest

from agora.errors import AgoraError
from agora.fl.ads import DataAdvertiser, MemoryDataIndex
from agora.identity import Keypair
from agora.transport.hub_config import market_key
from agora.wire.fl import DataAd
from tests.unit.fl.helpers import NOW, offer


def ad(kp: Keypair, seq: int) -> DataAd:
    return DataAd.issue(kp, seq=seq, iat=NOW, ttl_s=3600, offers=[offer(kp)])


async def test_publish_and_read_every_providers_newest_ad() -> None:
    index = MemoryDataIndex()
    a, b = Keypair.generate(), Keypair.generate()
    await index.publish(ad(a, 1).raw)
    await index.publish(ad(b, 1).raw)
    await index.publish(ad(a, 2).raw)
    assert sorted((x.provider, x.seq) for x in await index.ads()) == sorted([(a.did, 2), (b.did, 1)])
    await index.publish(ad(a, 2).raw)  # the very same ad again changes nothing
    with pytest.raises(AgoraError) as err:
        await index.publish(ad(a, 1).raw)  # older: refused
    assert err.value.code == "ad_replayed"
    await index.withdraw(a.did)
    assert [x.provider for x in await index.ads()] == [b.did]


async def test_a_hostile_hub_cannot_forge_misfile_or_roll_back_an_ad() -> None:
    index = MemoryDataIndex()
    a, b = Keypair.generate(), Keypair.generate()
    await index.publish(ad(a, 5).raw)
    assert [x.seq for x in await index.ads()] == [5]
    index.store[market_key(a.did)] = ad(a, 3).raw  # rolled back: the last good ad is kept
    assert [x.seq for x in await index.ads()] == [5]
    index.store[market_key(b.did)] = ad(a, 9).raw  # a's ad filed under b's key
    index.store[market_key(a.did)] = ad(a, 5).raw[:-3] + b"xyz"  # damaged signature
    ads = await index.ads()
    assert [(x.provider, x.seq) for x in ads] == [(a.did, 5)]
    assert dict(index.stats) == {"accepted": 1, "forged": 2, "replayed": 1}


async def test_an_ad_missed_by_one_read_is_back_on_the_next() -> None:
    """A read that misses a provider's key (gone for a moment) must not hide its unchanged ad afterwards."""
    index = MemoryDataIndex()
    kp = Keypair.generate()
    await index.publish(ad(kp, 2).raw)
    assert [x.seq for x in await index.ads()] == [2]
    kept = dict(index.store)
    index.store.clear()
    assert await index.ads() == []
    index.store.update(kept)
    assert [x.seq for x in await index.ads()] == [2]


async def test_the_advertiser_publishes_on_change_and_withdraws_at_stop() -> None:
    index = MemoryDataIndex()
    kp = Keypair.generate()
    current: list[DataAd | None] = [None]
    seq = [0]

    async def make() -> DataAd | None:
        return current[0]

    advertiser = DataAdvertiser(index, make, kp.did, ttl_s=3600)
    await advertiser.start()
    try:
        assert await index.ads() == []
        seq[0] += 1
        current[0] = ad(kp, seq[0])
        advertiser.changed()  # a data set was added
        for _ in range(200):  # bounded: the advertiser's task publishes it
            if await index.ads():
                break
            await asyncio.sleep(0.01)
        assert [x.provider for x in await index.ads()] == [kp.did]
    finally:
        await advertiser.stop()
    assert await index.ads() == []  # a clean stop takes the ad out


async def test_a_node_offering_no_data_never_touches_the_index() -> None:
    touched: list[str] = []

    class Watched(MemoryDataIndex):
        async def _write(self, key: str, raw: bytes) -> None:
            touched.append("write")
            await super()._write(key, raw)

        async def _delete(self, key: str) -> None:
            touched.append("delete")
            await super()._delete(key)

    async def nothing() -> DataAd | None:
        return None

    advertiser = DataAdvertiser(Watched(), nothing, Keypair.generate().did, ttl_s=3600)
    await advertiser.start()
    await advertiser.publish_now()  # what every turn does
    await advertiser.stop()
    assert touched == [] and advertiser.published == 0
