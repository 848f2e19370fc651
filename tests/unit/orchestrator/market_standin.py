"""A provider's side of the market for the requester's tests: STANDS IN UNTIL `compute/bidder.py` LANDS.

It answers the three market commands (`/agora/market/bid_request`, `award`, `release`, in the fixed
envelope of `agora.wire.market_rpc`) with the real pieces: `market.bidding.answer` prices the request
from the provider's offer (or declines with coded reasons), `wire.market` signs the bid / decline /
commit, and `market.reservations.ReservationBook` reserves the capacity on commit (all or nothing) and
gives it back on release. It runs on a real provider of the compute harness (memory transport, real
wasm executor) or a real node, whose ad it publishes to a `MemoryMarketIndex`. Knobs let a test play a slow, silent or
refusing provider. The bid carries a delegation from the provider to the requester for `/agora/alloc`
(the real bidder scopes it to the job with a policy; here it is only short-lived).
"""

from __future__ import annotations

import asyncio
from typing import Any

from agora.actor import Actor, CallContext, behavior
from agora.clock import SYSTEM_CLOCK
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.market import MemoryMarketIndex, Quote, ReservationBook, answer
from agora.models.capability import Capability, GiB
from agora.models.offer import ResourceOffer
from agora.ucan import delegate
from agora.wire.market import Bid, BidRequest, CapacityAd, Commit, Decline, ExecutorState, check_award
from agora.wire.market_rpc import (
    AWARD_CMD,
    BID_REQUEST_CMD,
    RELEASE_CMD,
    bid_reply,
    commit_reply,
    read_award,
    read_bid_request,
    read_release,
)
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


class StandInBidder(Actor):
    name = "market-standin"

    def __init__(self, keypair: Keypair, offer: ResourceOffer, provider: Provider | None = None) -> None:
        self.provider = provider  # the compute harness's provider it runs on, when it is one
        self.kp = keypair
        self.offer = offer
        self.book = ReservationBook(offer.resources)
        self._requests: dict[str, BidRequest] = {}
        self._bids: dict[str, Bid] = {}
        self.seq = 0
        self.delay_s = 0.0  # answer bid requests this late (a slow provider)
        self.silent = False  # never answer bid requests (until the requester gives up)
        self.refuse_commit: str | None = None  # commit fails with this code (e.g. insufficient_capacity)
        self.asked: list[str] = []
        self.awarded: list[str] = []
        self.released: list[str] = []

    @property
    def did(self) -> str:
        return self.kp.did

    async def publish(self, index: MemoryMarketIndex, *, cpu: int | None = None) -> CapacityAd:
        self.seq += 1
        total = self.offer.resources
        free = total if cpu is None else Capability.from_dict({**total.to_dict(), "cpu_millis": cpu})
        ad = CapacityAd.issue(
            self.kp,
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

    @behavior(BID_REQUEST_CMD, public=True)
    async def bid_request(self, ctx: CallContext) -> dict[str, Any]:
        req = read_bid_request(ctx.args, provider=self.did)
        if req.requester != ctx.invoker:
            raise AgoraError("market_message_invalid", "the bid request is signed by another requester")
        self.asked.append(req.request_id)
        if self.silent:
            await asyncio.sleep(3600)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        now = int(SYSTEM_CLOCK.now())
        quote = answer(self.offer, self.book.free, req, requester_trust=None, draining=False, now=now)
        if not isinstance(quote, Quote):
            return bid_reply(Decline.issue(self.kp, req, quote, iat=now))
        dlg = delegate(self.kp, aud=req.requester, sub=self.did, cmd="/agora/alloc", exp=now + 600, nbf=now)
        bid = Bid.issue(self.kp, req, price=quote.price, valid_until=now + 30, iat=now, delegation=dlg.raw)
        self._requests[req.request_id] = req
        self._bids[str(bid.cid)] = bid
        return bid_reply(bid)

    @behavior(AWARD_CMD, public=True)
    async def award(self, ctx: CallContext) -> dict[str, Any]:
        award = read_award(ctx.args, provider=self.did)
        bid = self._bids.get(str(award.bid))
        if bid is None:
            raise AgoraError("market_message_invalid", "the award names no bid of this provider")
        now = int(SYSTEM_CLOCK.now())
        check_award(award, bid, now=now)
        self.awarded.append(award.request_id)
        if self.refuse_commit is not None:
            raise AgoraError(self.refuse_commit, "refused by the test")
        need = self._requests[award.request_id].need
        self.book.commit(award.request_id, award.job_id, need, start_by=now + 30, now=now)
        return commit_reply(Commit.issue(self.kp, award, start_by=now + 30, iat=now))

    @behavior(RELEASE_CMD, public=True)
    async def release(self, ctx: CallContext) -> dict[str, Any]:
        rel = read_release(ctx.args)
        self.released.append(rel.request_id)
        return {"released": self.book.release(rel.request_id) is not None}


__all__ = ["StandInBidder", "make_offer"]
