"""Bidding decisions: a provider prices from its offer or declines with codes; the requester awards the best
valid bid whatever the arrival order."""

from __future__ import annotations

import itertools
from typing import Any

from agora.identity import Keypair
from agora.market.bidding import Quote, answer, choose_bid
from agora.models.capability import Capability, GiB
from agora.ucan import seal_envelope
from agora.wire.market import Bid, BidRequest
from tests.unit.market.ads import offer

REQ = Keypair.generate()
PROVS = [Keypair.generate() for _ in range(3)]
NEED = Capability(cpu_millis=2000, memory_bytes=2 * GiB, executors=frozenset({"wasm"}))
FREE = Capability(cpu_millis=4000, memory_bytes=8 * GiB, executors=frozenset({"wasm"}))


def request(provider: Keypair, **over: Any) -> BidRequest:
    kw: dict[str, Any] = {
        "provider": provider.did,
        "request_id": "r",
        "job_id": "j",
        "task": "t",
        "offer_id": f"o-{provider.did[-6:]}",
        "need": NEED,
        "engine": "wasm",
        "duration_s": 100,
        "max_price": 1000,
        "respond_by": 50,
        "iat": 10,
    }
    kw.update(over)
    return BidRequest.issue(REQ, **kw)


def test_provider_prices_from_its_offer() -> None:
    kp = PROVS[0]
    result = answer(
        offer(kp.did, price={"base": {"cpu_second": 3}}),
        FREE,
        request(kp),
        requester_trust=None,
        draining=False,
        now=20,
    )
    assert result == Quote(2 * 3 * 100)


def test_provider_declines_with_every_coded_reason() -> None:
    kp = PROVS[0]
    o = offer(
        kp.did,
        price={"base": {"cpu_second": 10}},
        terms={"max_duration_s": 50, "engines": ["docker"], "access": {"mode": "min_trust", "min_trust": 0.8}},
    )
    busy = Capability(cpu_millis=1000, memory_bytes=8 * GiB, executors=frozenset({"wasm"}))
    result = answer(o, busy, request(kp), requester_trust=0.5, draining=True, now=60)
    assert isinstance(result, tuple)
    assert [r.code for r in result] == ["draining", "expired", "policy", "policy", "policy", "busy", "price"]
    assert "insufficient_cpu: need 2 cores, free 1 core" in result[5].text
    assert result[6].text == "the price is 2,000, over the job's max_price of 1,000"


def test_the_best_bid_wins_whatever_the_arrival_order() -> None:
    requests = {kp.did: request(kp) for kp in PROVS}
    b0 = Bid.issue(PROVS[0], requests[PROVS[0].did], price=700, valid_until=100, iat=20)
    b1 = Bid.issue(PROVS[1], requests[PROVS[1].did], price=500, valid_until=100, iat=21)
    b2 = Bid.issue(PROVS[2], requests[PROVS[2].did], price=500, valid_until=100, iat=22)
    order = [PROVS[2].did, PROVS[0].did, PROVS[1].did]  # the match order breaks the 500/500 tie
    for bids in itertools.permutations([b0, b1, b2]):
        choice = choose_bid(requests, bids, order, now=30)
        assert choice.award == b2 and choice.set_aside == ()


def test_invalid_bids_are_set_aside_with_the_reason() -> None:
    requests = {kp.did: request(kp) for kp in PROVS[:2]}
    good = Bid.issue(PROVS[0], requests[PROVS[0].did], price=900, valid_until=100, iat=20)
    late = Bid.issue(PROVS[1], requests[PROVS[1].did], price=100, valid_until=25, iat=20)
    over = Bid(PROVS[1].did, REQ.did, requests[PROVS[1].did].cid, "r", "j", "o", 1001, 100, None, 20)
    over = Bid.open(seal_envelope(PROVS[1], Bid.TAG, over._payload()))
    stranger = Bid.issue(PROVS[2], request(PROVS[2]), price=1, valid_until=100, iat=20)
    choice = choose_bid(requests, [late, over, stranger, good], [], now=30)
    assert choice.award == good
    assert [(p, why.split(":")[0]) for p, why in choice.set_aside] == sorted(
        [
            (PROVS[1].did, "bid_expired"),
            (PROVS[1].did, "bid_over_max_price"),
            (PROVS[2].did, "no bid request was sent to this provider"),
        ]
    )
    assert choose_bid(requests, [late], [], now=30).award is None
