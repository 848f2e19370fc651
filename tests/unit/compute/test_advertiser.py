"""The capacity ad publisher: seq across restarts, debounced republish on capacity change, periodic
republish, withdrawal on a clean stop, failures that are counted but never fatal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agora.clock import SYSTEM_CLOCK
from agora.compute.advertiser import (
    AdContent,
    Advertiser,
    AdvertiserSettings,
    executor_states,
)
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.market.index import MemoryMarketIndex
from agora.market.offers import default_offer
from agora.models.capability import Capability, GiB
from agora.resources import CapacityTracker
from agora.store import MemoryStore, Store
from agora.wire.market import CapacityAd, ExecutorState

WAIT_S = 5.0
MACHINE = Capability(
    cpu_millis=8000,
    memory_bytes=16 * GiB,
    disk_bytes=100 * GiB,
    arch="x86_64",
    executors=frozenset({"wasm"}),
    labels={"zone": "a"},
    location="eu",
    benchmark_score=900.0,
)


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    s = MemoryStore(SYSTEM_CLOCK)
    await s.open()
    yield s
    await s.close()


class Provider:
    def __init__(self, store: Store, index: MemoryMarketIndex, **settings: float) -> None:
        self.key = Keypair.generate()
        self.tracker = CapacityTracker(MACHINE)
        offer = default_offer(self.key.did, MACHINE, now=1_000, reserve=Capability(), offer_id="default")
        execs = executor_states({"wasm": (True, None), "docker": (False, "no engine answers")})
        self.index = index

        def content() -> AdContent:
            return AdContent(offer, self.tracker.free, execs, 900.0)

        self.content = content
        self.store = store
        self.settings = AdvertiserSettings(**settings)  # type: ignore[arg-type]

    def advertiser(self) -> Advertiser:
        adv = Advertiser(self.key, self.index, self.content, self.store, settings=self.settings)
        self.tracker.on_change(adv.changed)
        return adv


async def next_ad(w: AsyncIterator[CapacityAd]) -> CapacityAd:
    return await asyncio.wait_for(anext(w), WAIT_S)


async def test_the_first_ad_says_what_the_node_has_and_verifies(store: Store) -> None:
    index = MemoryMarketIndex()
    p = Provider(store, index)
    adv = p.advertiser()
    async with index.watch() as w:
        await adv.start()
        ad = await next_ad(w)
        await adv.stop()
    assert ad.provider == p.key.did and ad.seq == 1 and ad.ttl_s == 180
    assert ad.free.cpu_millis == 8000 and ad.free.labels == {"zone": "a"} and ad.free.location == "eu"
    assert ad.free.benchmark_score is None and ad.benchmark_score == 900.0  # the requester's view, not a claim
    assert ad.executors["docker"] == ExecutorState(False, "no engine answers")
    assert ad.available_executors == {"wasm"}
    assert ad.offer.offer_id == "default" and ad.offer.resources.cpu_millis == 8000
    assert CapacityAd.open(ad.raw, expected_signer=p.key.did) == ad


async def test_seq_keeps_increasing_across_restarts(store: Store) -> None:
    index = MemoryMarketIndex()
    p = Provider(store, index)
    for expected in (1, 2, 3):
        adv = p.advertiser()  # a restart: a new publisher on the same store
        async with index.watch() as w:
            await adv.start()
            assert (await next_ad(w)).seq == expected
            await adv.stop(withdraw=False)
    got = await index.get(p.key.did)
    assert got is not None and got.seq == 3 and index.stats["replayed"] == 0


async def test_a_burst_of_capacity_changes_makes_one_ad_after_the_debounce(store: Store) -> None:
    index = MemoryMarketIndex()
    p = Provider(store, index, debounce_s=1.0)
    adv = p.advertiser()
    async with index.watch() as w:
        await adv.start()
        assert (await next_ad(w)).free.cpu_millis == 8000
        p.tracker.reserve("a1", Capability(cpu_millis=1000))
        for _ in range(20):
            await asyncio.sleep(0)  # let the publisher run: without the debounce it would publish now
        p.tracker.reserve("a2", Capability(cpu_millis=2000))
        ad = await next_ad(w)
        assert (ad.seq, ad.free.cpu_millis) == (2, 5000)
        p.tracker.release("a1")
        ad = await next_ad(w)
        assert (ad.seq, ad.free.cpu_millis) == (3, 6000)
    await adv.stop()
    assert adv.published == 3


async def test_republished_periodically_without_changes(store: Store) -> None:
    index = MemoryMarketIndex()
    p = Provider(store, index, ttl_s=2, republish_s=0.05, debounce_s=0.0)
    adv = p.advertiser()
    async with index.watch() as w:
        await adv.start()
        seqs = [(await next_ad(w)).seq for _ in range(3)]
    await adv.stop()
    assert seqs == sorted(seqs) and len(set(seqs)) == 3


async def test_a_clean_stop_withdraws_the_ad(store: Store) -> None:
    index = MemoryMarketIndex()
    p = Provider(store, index)
    adv = p.advertiser()
    async with index.watch() as w:
        await adv.start()
        await next_ad(w)
    assert await index.get(p.key.did) is not None
    await adv.stop()
    assert await index.get(p.key.did) is None


class FlakyIndex(MemoryMarketIndex):
    """Refuses the first `fail` publishes (a hub that is away), then works."""

    def __init__(self, fail: int) -> None:
        super().__init__()
        self.fail = fail

    async def publish(self, raw: bytes) -> CapacityAd:
        if self.fail > 0:
            self.fail -= 1
            raise AgoraError("hub_unreachable", "the hub is away")
        return await super().publish(raw)


async def test_a_failed_publish_is_counted_and_retried_never_fatal(store: Store) -> None:
    index = FlakyIndex(fail=2)
    p = Provider(store, index, ttl_s=2, republish_s=0.05, debounce_s=0.0)
    adv = p.advertiser()
    async with index.watch() as w:
        await adv.start()
        ad = await next_ad(w)
    await adv.stop()
    assert adv.failures == 2 and ad.seq == 3  # the numbers of the lost ads are not reused


def test_settings_are_checked() -> None:
    for bad in (
        {"ttl_s": 1},
        {"ttl_s": 60, "republish_s": 31},
        {"republish_s": 0},
        {"debounce_s": -1},
        {"republish_s": 1.0, "debounce_s": 1.0},
        {"bucket": "a.b"},
        {"withdraw_timeout_s": 0},
    ):
        with pytest.raises(ValueError):
            AdvertiserSettings(**bad)


async def test_a_failed_publish_is_retried_before_the_period(store: Store) -> None:
    """A hub that is not ready yet (a cluster electing its leader) must not cost a whole period."""
    index = FlakyIndex(fail=1)
    p = Provider(store, index, ttl_s=3600, republish_s=1800.0, debounce_s=0.0)
    adv = p.advertiser()
    async with index.watch() as w:
        await adv.start()
        ad = await next_ad(w)  # within WAIT_S, far inside the period
    await adv.stop()
    assert adv.failures == 1 and ad.seq == 2
