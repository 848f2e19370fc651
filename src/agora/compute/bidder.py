"""The provider's side of the market: bids, awards (the commit) and releases, as three public behaviors.

    /agora/market/bid_request  (public, read-only)  the offer's policy, engine, duration, free capacity,
                               max_price, draining -> `market.bidding.answer` -> a signed `Bid` carrying a
                               UCAN delegation for this one job, or a signed `Decline` with coded reasons
    /agora/market/award        (public, mutating)   the award names a bid this node made and still
                               remembers, in time -> capacity committed in the `ReservationBook` -> a signed
                               `Commit` with `start_by`; a retried award gets the same commit
    /agora/market/release      (public, mutating)   a party to the award gives the reservation back now

They are public because a requester holds no grant before it is awarded: their authority is the signed
message each carries (`agora.wire.market_rpc` is the envelope). The reservation book sits on the SAME
`CapacityTracker` the `AllocationManager` reserves from, so a plain start and a commit can never both
take the last slot; every check-then-reserve runs without an await in between.

The bid's delegation is `iss = sub = provider, aud = requester, cmd = /agora/alloc` with a policy binding
`.job_id` to the job and `.reservation` to the bid request's id (wrapped by `grants.starts_only`, like every
grant, so the calls that follow a start need no task). A start therefore takes only the capacity the
commit reserved (`take`, called by the manager's start), never fresh capacity, and only once. Its `exp`
is the bid's validity + the start window + the job's duration + `follow_s`, so the requester can still
watch and fetch its allocation after the start: the start itself is bounded by `start_by` through the
reservation, not by `exp`.

An award not followed by a start by `start_by` is given back: `expire` runs on every call and from the
sweep task the bidder owns (`start` / `stop`). An operator can refuse requesters (`refuse`) and
rate-limit bid requests per requester (`rate_per_min`, a token bucket per DID in a bounded LRU).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agora.actor import Actor, CallContext, behavior
from agora.clock import SYSTEM_CLOCK, Clock
from agora.compute.grants import DEFAULT_COMMAND, starts_only
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.market.bidding import Quote, answer
from agora.market.offers import OfferBook
from agora.market.reservations import COMMITTED, ReservationBook
from agora.models.capability import Capability, accounted, fits
from agora.models.offer import ResourceOffer
from agora.resources import CapacityTracker
from agora.ucan import delegate
from agora.wire.market import Award, Bid, BidRequest, Commit, Decline, DeclineReason, check_award
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

log = logging.getLogger("agora.compute.bidder")

_QUANTITIES = ("cpu_millis", "memory_bytes", "disk_bytes", "gpu_count")


@dataclass(frozen=True)
class BidderSettings:
    bid_valid_s: int = 30  # how long a bid's price holds
    start_window_s: int = 60  # from the commit, how long the requester has to start the job
    follow_s: int = 3600  # beyond the job's duration, how long the bid's delegation lets it watch and fetch
    max_bids: int = 4096  # bids remembered for their awards (oldest forgotten first)
    rate_per_min: int = 120  # bid requests per requester per minute (0: no limit)
    refuse: tuple[str, ...] = ()  # requesters this node never bids for
    sweep_interval_s: float = 5.0  # how often committed-but-never-started awards are given back


@dataclass(frozen=True)
class _Made:
    """A bid this node signed, with the request it answers (for `check_award`)."""

    bid: Bid
    request: BidRequest


@dataclass(frozen=True)
class _Committed:
    award: Award
    commit: Commit


def accounted_need(request: BidRequest) -> Capability:
    """What a start of this job will take here: a wasm task takes at least a core (`WASM_MIN_CPU_MILLIS`, as
    `manager.start` accounts it), so the bid prices and the commit holds that much, and the start fits."""
    return accounted(request.need, request.engine)


def hold_key(requester: str, request_id: str) -> str:
    """The reservation's key in the book: request ids are the requester's, so they are scoped by it."""
    return f"market:{requester}:{request_id}"


def sellable(free: Capability, total: Capability, offered: Capability) -> Capability:
    """What can still be sold now under an offer: free capacity minus the part of the machine the offer keeps
    back (the operator's reserve, `total - offered`), never below zero."""
    kept = {q: max(0, getattr(total, q) - getattr(offered, q)) for q in _QUANTITIES}
    return dataclasses.replace(free, **{q: max(0, getattr(free, q) - kept[q]) for q in _QUANTITIES})


class _Buckets:
    """A token bucket per requester (bounded LRU: a flood of throw-away DIDs evicts only each other)."""

    def __init__(self, per_min: int, max_keys: int = 4096) -> None:
        self.per_min = per_min
        self.max_keys = max_keys
        self._b: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, who: str, now: float) -> bool:
        if self.per_min <= 0:
            return True
        tokens, at = self._b.pop(who, (float(self.per_min), now))
        tokens = min(float(self.per_min), tokens + (now - at) * self.per_min / 60.0)
        ok = tokens >= 1.0
        self._b[who] = (tokens - 1.0 if ok else tokens, now)
        while len(self._b) > self.max_keys:
            self._b.popitem(last=False)
        return ok


class Bidder(Actor):
    name = "bidder"

    def __init__(
        self,
        *,
        keypair: Keypair,
        capacity: CapacityTracker,
        offers: OfferBook,
        clock: Clock = SYSTEM_CLOCK,
        settings: BidderSettings | None = None,
        draining: Callable[[], bool] = lambda: False,
        trust_of: Callable[[str], float | None] = lambda _did: None,
    ) -> None:
        self.keypair = keypair
        self.did = keypair.did
        self.capacity = capacity
        self.book = ReservationBook(tracker=capacity)
        self.offers = offers
        self.clock = clock
        self.settings = settings or BidderSettings()
        self.draining = draining
        self.trust_of = trust_of  # trust is unknown today: None, read as 0 by min_trust
        self._bids: OrderedDict[str, _Made] = OrderedDict()
        self._commits: dict[str, _Committed] = {}  # hold key -> the award and the commit that answered it
        self._buckets = _Buckets(self.settings.rate_per_min)
        self._sweeper: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    # -- owned background sweep ---------------------------------------------------------------
    async def start(self) -> None:
        if self._sweeper is None:
            self._stop.clear()
            self._sweeper = asyncio.create_task(self._sweep_loop(), name="bidder-sweep")

    async def stop(self) -> None:
        self._stop.set()
        if self._sweeper is not None:
            await self._sweeper
            self._sweeper = None

    async def _sweep_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.expire()
            except Exception:
                log.exception("the reservation sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.settings.sweep_interval_s)

    def expire(self) -> list[str]:
        """Give back every commit whose start never came, and forget bids past their validity."""
        now = self.clock.now()
        gone = [h.award_id for h in self.book.expire(now)]
        for key in gone:
            self._commits.pop(key, None)
            log.info("reservation %s expired without a start: capacity given back", key)
        # kept a while past their validity so a late award is told `bid_expired`, not "no such bid"
        late = now - self.settings.bid_valid_s
        for cid in [c for c, m in self._bids.items() if m.bid.valid_until < late]:
            del self._bids[cid]
        return gone

    # -- views ----------------------------------------------------------------------------------
    def reservations(self) -> list[dict[str, Any]]:
        return [
            {"key": k, "job_id": h.job_id, "state": h.state, "start_by": h.start_by, "need": h.need.to_dict()}
            for k, h in sorted(self.book.holds.items())
        ]

    # -- behaviors --------------------------------------------------------------------------------
    @behavior(BID_REQUEST_CMD, public=True, mutating=False)
    async def bid_request(self, ctx: CallContext) -> dict[str, Any]:
        """A firm, signed price for one job, or a signed decline with every reason."""
        request = read_bid_request(ctx.args, provider=self.did)
        if request.requester != ctx.invoker:
            raise AgoraError("market_message_invalid", "a bid request is sent by the requester that signed it")
        now = self.clock.now()
        if not self._buckets.take(request.requester, now):
            raise AgoraError("rate_limited", f"more than {self.settings.rate_per_min} bid requests a minute")
        self.expire()
        return bid_reply(self._answer(request, now))

    def _answer(self, request: BidRequest, now: float) -> Bid | Decline:
        iat = int(now)
        if request.requester in self.settings.refuse:
            reason = DeclineReason("policy", "this node's operator takes no bid requests from this requester")
            return Decline.issue(self.keypair, request, [reason], iat=iat)
        if request.need.cpu_millis == 0 and request.need.memory_bytes == 0:  # free holds would be unbounded
            reason = DeclineReason("policy", "a bid request asks for some cpu or memory")
            return Decline.issue(self.keypair, request, [reason], iat=iat)
        offer = self.offers.get(request.offer_id)
        if not isinstance(offer, ResourceOffer):
            reason = DeclineReason("policy", f"offer {request.offer_id} is not open on this node")
            return Decline.issue(self.keypair, request, [reason], iat=iat)
        free = sellable(self.capacity.free, self.capacity.total, offer.resources)
        trust = self.trust_of(request.requester)
        verdict = answer(
            offer,
            free,
            dataclasses.replace(request, need=accounted_need(request)),
            requester_trust=trust if trust is not None else 0.0,
            draining=self.draining(),
            now=now,
        )
        if not isinstance(verdict, Quote):
            return Decline.issue(self.keypair, request, verdict, iat=iat)
        valid_until = min(iat + self.settings.bid_valid_s, offer.valid_until)
        token = self._delegation(request, valid_until, iat)
        bid = Bid.issue(self.keypair, request, price=verdict.price, valid_until=valid_until, iat=iat, delegation=token)
        self._remember(bid, request)
        return bid

    def _delegation(self, request: BidRequest, valid_until: int, iat: int) -> bytes:
        exp = valid_until + self.settings.start_window_s + request.duration_s + self.settings.follow_s
        policy = [["==", ".job_id", request.job_id], ["==", ".reservation", request.request_id]]
        d = delegate(
            self.keypair,
            aud=request.requester,
            sub=self.did,
            cmd=DEFAULT_COMMAND,
            pol=starts_only(DEFAULT_COMMAND, policy),
            exp=exp,
            nbf=iat,
        )
        return d.raw

    def _remember(self, bid: Bid, request: BidRequest) -> None:
        self._bids[str(bid.cid)] = _Made(bid, request)
        while len(self._bids) > self.settings.max_bids:
            self._bids.popitem(last=False)

    @behavior(AWARD_CMD, public=True, mutating=True)
    async def award(self, ctx: CallContext) -> dict[str, Any]:
        """Commit the awarded bid's capacity until `start_by`, all or nothing; a retried award is answered
        with the same commit."""
        award = read_award(ctx.args, provider=self.did)
        if award.requester != ctx.invoker:
            raise AgoraError("market_message_invalid", "an award is sent by the requester that signed it")
        self.expire()
        return commit_reply(self._commit(award))

    def _commit(self, award: Award) -> Commit:
        now = self.clock.now()
        key = hold_key(award.requester, award.request_id)
        done = self._commits.get(key)
        if done is not None and key in self.book.holds:
            if done.award.cid == award.cid:
                return done.commit  # a retry: the requester may not have seen the first answer
            raise AgoraError("already_exists", f"bid request {award.request_id} is already committed")
        made = self._bids.get(str(award.bid))
        if made is None:
            raise AgoraError(
                "reservation_not_found",
                f"this node made no bid {award.bid} (or it expired and was forgotten)",
                hint="Ask for a new bid.",
            )
        check_award(award, made.bid, now=now)  # market_message_invalid, bid_expired
        offer = self.offers.get(made.request.offer_id)
        if not isinstance(offer, ResourceOffer) or not offer.is_valid_at(now):
            raise AgoraError("bid_expired", f"offer {made.request.offer_id} was withdrawn or expired")
        need = accounted_need(made.request)
        room = fits(need, sellable(self.capacity.free, self.capacity.total, offer.resources))
        if not room.ok:  # the reserve is the operator's: the tracker alone would sell it
            raise AgoraError(
                "insufficient_capacity",
                f"the capacity is already taken: {room.text}",
                retryable=True,
                details={"reasons": [r.to_dict() for r in room.reasons]},
            )
        start_by = int(now) + self.settings.start_window_s
        # no await from the check above to here: the commit is atomic on the event loop
        self.book.commit(key, award.job_id, need, start_by=start_by, now=now)
        commit = Commit.issue(self.keypair, award, start_by=start_by, iat=int(now))
        self._commits[key] = _Committed(award, commit)
        del self._bids[str(award.bid)]  # consumed: a retry is answered from `_commits`, never committed twice
        return commit

    @behavior(RELEASE_CMD, public=True, mutating=True)
    async def release(self, ctx: CallContext) -> dict[str, Any]:
        """Give an award's reservation back now (a party to the award only; a started job is cancelled, not
        released)."""
        rel = read_release(ctx.args)
        if rel.issuer != ctx.invoker:
            raise AgoraError("market_message_invalid", "a release is sent by the party that signed it")
        self.expire()
        for key, done in self._commits.items():
            if done.award.cid == rel.award:
                if rel.issuer not in (done.award.requester, self.did):
                    raise AgoraError(
                        "market_message_invalid", "only the requester or the provider of an award can release it"
                    )
                hold = self.book.holds.get(key)
                if hold is None or hold.state != COMMITTED:
                    return {"released": False}
                self.book.release(key)
                del self._commits[key]
                return {"released": True}
        return {"released": False}

    # -- the manager's start ------------------------------------------------------------------
    def take(self, reservation: str, *, requester: str, job_id: str, need: Capability) -> Callable[[], None]:
        """Let an allocation take a committed reservation (once, before `start_by`); returns how to give it
        back when the allocation ends. Another requester's reservation reads as not found."""
        key = hold_key(requester, reservation)
        hold = self.book.holds.get(key)
        if hold is None:
            raise AgoraError("reservation_not_found", f"no committed reservation {reservation!r} for this requester")
        if hold.job_id != job_id:
            raise AgoraError("reservation_invalid_state", f"reservation {reservation!r} is for job {hold.job_id}")
        over = {
            q: (getattr(need, q), getattr(hold.need, q))
            for q in _QUANTITIES
            if getattr(need, q) > getattr(hold.need, q)
        }
        if over:  # the hold is an amount of capacity: the task may take at most what was committed
            text = ", ".join(f"{q}: need {n}, committed {h}" for q, (n, h) in sorted(over.items()))
            raise AgoraError(
                "insufficient_capacity",
                f"the task needs more than the committed reservation ({text})",
                details={"scope": "reservation", "over": {q: list(v) for q, v in over.items()}},
            )
        self.book.start(key, now=self.clock.now())  # bid_expired (and released) past start_by

        def give_back() -> None:
            self.book.release(key)
            self._commits.pop(key, None)

        return give_back


__all__ = ["Bidder", "BidderSettings", "accounted_need", "hold_key", "sellable"]
