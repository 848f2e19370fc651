"""Both sides of a bid, as pure decisions (the RPCs that carry them come with the node wiring).

- Provider: `answer(offer, free, request, ...)` prices a bid request from its own offer, or declines with
  coded reasons (`busy`, `policy`, `price`, `draining`, `expired`). It never bids against its own offer's
  policy (engine, duration, access, validity) and never above the job's `max_price`.
- Requester: `choose_bid(requests, bids, order, now)` awards the best valid bid, never simply the first
  to arrive: the lowest price, then the provider's place in the match order, then its DID. Bids that do
  not answer their request, are over `max_price` or expired are set aside with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from agora.errors import AgoraError
from agora.models.capability import Capability, accounted, fits
from agora.models.offer import ResourceOffer
from agora.wire.market import Bid, BidRequest, DeclineReason, check_bid


@dataclass(frozen=True)
class Quote:
    price: int


def answer(
    offer: ResourceOffer,
    free: Capability,
    request: BidRequest,
    *,
    requester_trust: float | None,
    draining: bool,
    now: float,
) -> Quote | tuple[DeclineReason, ...]:
    """The provider's firm price for `request`, or every reason it declines."""
    out: list[DeclineReason] = []
    if draining:
        out.append(DeclineReason("draining", "the node is draining and takes no new jobs"))
    if now > request.respond_by:
        out.append(DeclineReason("expired", f"the request asked for an answer by {request.respond_by}"))
    terms = offer.terms
    if request.offer_id != offer.offer_id or not offer.is_valid_at(now):
        out.append(DeclineReason("policy", f"offer {request.offer_id} is not open"))
    if not terms.accepts_engine(request.engine):
        out.append(DeclineReason("policy", f"the offer does not accept engine {request.engine}"))
    if terms.max_duration_s is not None and request.duration_s > terms.max_duration_s:
        out.append(DeclineReason("policy", f"max duration {terms.max_duration_s} s < {request.duration_s} s"))
    if not terms.access.admits(request.requester, requester_trust):
        out.append(DeclineReason("policy", f"requester not admitted by the offer ({terms.access.mode})"))
    need = accounted(request.need, request.engine)  # what a start takes there (a wasm task: a whole core)
    fit = fits(need, free)
    if not fit.ok:
        out.append(DeclineReason("busy", fit.text[:500]))
    price = offer.price.quote(need, request.duration_s, request.engine)
    if request.max_price is not None and price > request.max_price:
        out.append(DeclineReason("price", f"the price is {price:,}, over the job's max_price of {request.max_price:,}"))
    return tuple(out) if out else Quote(price)


@dataclass(frozen=True)
class BidChoice:
    award: Bid | None
    set_aside: tuple[tuple[str, str], ...]  # (provider, why) for every bid not considered


def choose_bid(
    requests: Mapping[str, BidRequest], bids: Iterable[Bid], order: Sequence[str], *, now: float
) -> BidChoice:
    """The best valid bid: lowest price, then earlier in the match `order`, then DID."""
    rank = {p: i for i, p in enumerate(order)}
    valid: list[tuple[int, int, str, Bid]] = []
    aside: list[tuple[str, str]] = []
    for bid in bids:
        request = requests.get(bid.provider)
        if request is None:
            aside.append((bid.provider, "no bid request was sent to this provider"))
            continue
        try:
            check_bid(bid, request, now=now)
        except AgoraError as exc:
            aside.append((bid.provider, f"{exc.code}: {exc.message}"))
            continue
        valid.append((bid.price, rank.get(bid.provider, len(rank)), bid.provider, bid))
    valid.sort(key=lambda t: t[:3])
    return BidChoice(valid[0][3] if valid else None, tuple(sorted(aside)))


__all__ = ["BidChoice", "Quote", "answer", "choose_bid"]
