"""A provider's side of the market for the requester's tests: the REAL `compute.bidder.Bidder` (over the
compute harness provider's own capacity tracker and an `OfferBook` holding one offer, wired to its
allocation manager as a node does), with knobs a test uses to play a slow, silent or refusing provider and
to see what it was asked. Only the knobs and the ad publishing (straight into a `MemoryMarketIndex`) are
test code; pricing, declines, signed bids and their delegations, commits on the capacity and releases are
the real ones."""

from __future__ import annotations

import asyncio
from typing import Any

from agora.actor import CallContext, behavior
from agora.clock import SYSTEM_CLOCK
from agora.compute.bidder import Bidder
from agora.errors import AgoraError
from agora.market import MemoryMarketIndex
from agora.market.offers import OfferBook
from agora.models.capability import Capability, GiB
from agora.models.offer import ResourceOffer
from agora.wire.market import CapacityAd, ExecutorState
from agora.wire.market_rpc import AWARD_CMD, BID_REQUEST_CMD, RELEASE_CMD, read_award, read_bid_request, read_release
from tests.unit.compute.harness import Provider


def make_offer(did: str, *, cpu_price: int = 1, cpu: int = 4000, memory: int = 4 * GiB) -> ResourceOffer:
    return ResourceOffer.from_dict(
        {
            "kind": "resources",
            "offer_id": f"o-{did[-8:]}",
            "provider": did,
            "resources": {"cpu_millis": cpu, "memory_bytes": memory, "disk_bytes": 20 * GiB, "executors": ["wasm"]},
            "price": {"base": {"cpu_second": cpu_price}},
            "terms": {},
            "valid_from": 0,
            "valid_until": 4_000_000_000,
        }
    )


class StandInBidder(Bidder):
    """`Bidder` plus test knobs; build it with `make_bidder`."""

    name = "market-standin"

    def __init__(self, provider: Provider, offer: ResourceOffer, offers: OfferBook) -> None:
        super().__init__(keypair=provider.keypair, capacity=provider.capacity, offers=offers)
        self.provider = provider
        self.offer = offer
        self.seq = 0
        self.delay_s = 0.0  # answer bid requests this late (a slow provider)
        self.silent = False  # never answer bid requests (until the requester gives up)
        self.refuse_commit: str | None = None  # commit fails with this code (e.g. insufficient_capacity)
        self.asked: list[str] = []
        self.awarded: list[str] = []
        self.released: list[str] = []

    async def publish(self, index: MemoryMarketIndex, *, cpu: int | None = None) -> CapacityAd:
        self.seq += 1
        total = self.offer.resources
        free = total if cpu is None else Capability.from_dict({**total.to_dict(), "cpu_millis": cpu})
        ad = CapacityAd.issue(
            self.keypair,
            seq=self.seq,
            iat=int(SYSTEM_CLOCK.now()),
            ttl_s=600,
            offer=self.offer,
            free=free,
            executors={"wasm": ExecutorState(True)},
            benchmark_score=1000.0,
            version="0.1.0",
        )
        return await index.publish(ad.raw)

    @behavior(BID_REQUEST_CMD, public=True, mutating=False)
    async def bid_request(self, ctx: CallContext) -> dict[str, Any]:
        self.asked.append(read_bid_request(ctx.args, provider=self.did).request_id)
        if self.silent:
            await asyncio.sleep(3600)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return await super().bid_request(ctx)

    @behavior(AWARD_CMD, public=True, mutating=True)
    async def award(self, ctx: CallContext) -> dict[str, Any]:
        self.awarded.append(read_award(ctx.args, provider=self.did).request_id)
        if self.refuse_commit is not None:
            raise AgoraError(self.refuse_commit, "refused by the test")
        return await super().award(ctx)

    @behavior(RELEASE_CMD, public=True, mutating=True)
    async def release(self, ctx: CallContext) -> dict[str, Any]:
        self.released.append(read_release(ctx.args).request_id)
        return await super().release(ctx)


async def make_bidder(provider: Provider, offer: ResourceOffer) -> StandInBidder:
    """The real bidder on a harness provider, selling under `offer`, registered and wired as a node does."""
    offers = OfferBook(provider.store, provider.did)
    await offers.add(offer, source="test")
    bidder = StandInBidder(provider, offer, offers)
    provider.runtime.register(bidder)
    provider.manager.market = bidder
    await bidder.start()
    return bidder


__all__ = ["StandInBidder", "make_bidder", "make_offer"]
