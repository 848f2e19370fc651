"""The provider's market behaviors through the real runtime on the memory transport: bid request -> bid (or
decline) -> award -> commit -> a start citing the reservation with the bid's delegation; and every bad input
of the issue's list (policy refusal, late award, another provider's award, capacity taken, an award never
started, a stranger's release, another requester's reservation)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agora.clock import ManualClock
from agora.compute.bidder import Bidder, BidderSettings
from agora.compute.taskprep import need_of, parse_task
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.market.offers import OfferBook
from agora.models.capability import Capability, GiB, MiB, PriceSchedule
from agora.models.offer import AccessPolicy, OfferTerms, PriceTerms, ResourceOffer
from agora.transport import MemoryNetwork
from agora.wire.market import Award, Bid, BidRequest, Commit, Decline, Release
from agora.wire.market_rpc import (
    AWARD_CMD,
    BID_REQUEST_CMD,
    RELEASE_CMD,
    award_args,
    bid_request_args,
    read_bid_reply,
    read_commit_reply,
    release_args,
)
from tests.unit.compute import wat
from tests.unit.compute.harness import Provider, Requester, grant, leftovers, make_requester
from tests.unit.compute.test_allocations import START, task

WASM_TASK = task()  # cpu 1 (a wasm task takes a core), 64 MiB, 16 MiB disk
NEED = need_of(parse_task(WASM_TASK, "unit", None))


@dataclass
class Market:
    provider: Provider
    bidder: Bidder
    offers: OfferBook
    offer: ResourceOffer
    clock: ManualClock


async def make_market(provider: Provider, *, access: AccessPolicy | None = None, **settings: Any) -> Market:
    clock = ManualClock(time.time())
    offers = OfferBook(provider.store, provider.did, clock=clock)
    now = int(clock.now())
    offer = ResourceOffer(
        offer_id="o-1",
        provider=provider.did,
        resources=provider.capacity.total,
        price=PriceTerms(PriceSchedule(cpu_second=1, memory_gib_second=1, minimum=10)),
        terms=OfferTerms(max_duration_s=3600, access=access or AccessPolicy()),
        valid_from=now - 10,
        valid_until=now + 3600,
    )
    await offers.add(offer)
    bidder = Bidder(
        keypair=provider.keypair,
        capacity=provider.capacity,
        offers=offers,
        clock=clock,
        settings=BidderSettings(**settings),
    )
    provider.runtime.register(bidder)
    provider.manager.market = bidder
    return Market(provider, bidder, offers, offer, clock)


@pytest.fixture
async def market(provider: Provider) -> AsyncIterator[Market]:
    m = await make_market(provider)
    yield m
    await m.bidder.stop()


def bid_request(req: Requester | Keypair, m: Market, *, need: Capability = NEED, **over: Any) -> BidRequest:
    kp = req if isinstance(req, Keypair) else req.keypair
    now = int(m.clock.now())
    kw: dict[str, Any] = {
        "provider": m.provider.did,
        "request_id": "rq-" + secrets.token_hex(4),
        "job_id": "job-1",
        "task": "t",
        "offer_id": m.offer.offer_id,
        "need": need,
        "engine": "wasm",
        "duration_s": 60,
        "max_price": 100_000,
        "respond_by": now + 30,
        "iat": now,
    }
    kw.update(over)
    return BidRequest.issue(kp, **kw)


async def ask(req: Requester, m: Market, request: BidRequest) -> Bid | Decline:
    reply = await req.runtime.call(m.provider.did, BID_REQUEST_CMD, bid_request_args(request))
    return read_bid_reply(reply, provider=m.provider.did)


async def get_bid(req: Requester, m: Market, **over: Any) -> Bid:
    answer = await ask(req, m, bid_request(req, m, **over))
    assert isinstance(answer, Bid), answer
    return answer


async def award(req: Requester, m: Market, bid: Bid) -> tuple[Award, Commit]:
    a = Award.issue(req.keypair, bid, commit_by=int(m.clock.now()) + 30, iat=int(m.clock.now()))
    reply = await req.runtime.call(m.provider.did, AWARD_CMD, award_args(a))
    return a, read_commit_reply(reply, provider=m.provider.did, award=a)


async def start_with(req: Requester, m: Market, bid: Bid, **over: Any) -> str:
    token = bid.delegation_token()
    assert token is not None
    args: dict[str, Any] = {
        "job": "unit",
        "job_id": bid.job_id,
        "task": WASM_TASK,
        "module_bytes": wat.hello(),
        "reservation": bid.request_id,
    }
    args.update(over)
    reply = await req.runtime.call(m.provider.did, START, args, proofs=[token])
    return str(reply["alloc_id"])


async def test_bid_award_commit_start_runs_the_job_on_the_committed_capacity(
    market: Market, requester: Requester
) -> None:
    p = market.provider
    bid = await get_bid(requester, market)
    assert bid.price > 0 and bid.valid_until > market.clock.now()
    assert p.capacity.free == p.capacity.total  # a bid reserves nothing
    _, commit = await award(requester, market, bid)
    assert commit.start_by > market.clock.now()
    assert p.capacity.free.cpu_millis == p.capacity.total.cpu_millis - NEED.cpu_millis
    alloc_id = await start_with(requester, market, bid)
    assert [r["state"] for r in market.bidder.reservations()] == ["running"]
    assert len(p.capacity.allocations) == 1  # the start took the hold, it did not reserve again
    end = await wait_with_bid(requester, market, bid, alloc_id)  # the follow-ups ride on the same delegation
    assert end["state"] == "completed", end.get("error")
    assert market.bidder.reservations() == []
    assert leftovers(p) == []


async def test_a_retried_award_gets_the_same_commit_and_holds_once(market: Market, requester: Requester) -> None:
    bid = await get_bid(requester, market)
    a, first = await award(requester, market, bid)
    reply = await requester.runtime.call(market.provider.did, AWARD_CMD, award_args(a))
    again = read_commit_reply(reply, provider=market.provider.did, award=a)
    assert again.raw == first.raw
    assert len(market.provider.capacity.allocations) == 1


async def test_several_requesters_racing_for_the_last_slot_get_one_commit(
    market: Market, net: MemoryNetwork, tmp_path: Path
) -> None:
    p = market.provider
    whole = Capability(cpu_millis=p.capacity.total.cpu_millis, memory_bytes=GiB)
    rivals = [await make_requester(net, tmp_path / f"r{i}") for i in range(5)]
    try:
        bids = [await get_bid(r, market, need=whole) for r in rivals]  # each one fits while nothing is held
        results = await asyncio.gather(
            *(award(r, market, b) for r, b in zip(rivals, bids, strict=True)), return_exceptions=True
        )
        won = [x for x in results if isinstance(x, tuple)]
        lost = [x for x in results if isinstance(x, AgoraError)]
        assert len(won) == 1 and len(lost) == 4, results
        assert {e.code for e in lost} == {"insufficient_capacity"}
        assert len(p.capacity.allocations) == 1
        assert p.capacity.free.cpu_millis == 0
        # a plain start on a grant cannot take the slot either: one pool
        await grant(p, rivals[1])
        with pytest.raises(AgoraError) as err:
            await rivals[1].runtime.call(
                p.did,
                START,
                {"job": "unit", "job_id": "j", "task": WASM_TASK, "module_bytes": wat.hello()},
                proofs=rivals[1].book.proofs_for(p.did, START),
            )
        assert err.value.code == "insufficient_capacity"
    finally:
        for r in rivals:
            await r.runner.stop()
            await r.runtime.transport.close()
            await r.store.close()


async def test_a_commit_on_capacity_already_taken_fails_and_changes_nothing(
    market: Market, requester: Requester
) -> None:
    p = market.provider
    bid = await get_bid(requester, market)
    p.capacity.reserve("someone-else", Capability(cpu_millis=p.capacity.total.cpu_millis))
    before = p.capacity.free
    with pytest.raises(AgoraError) as err:
        await award(requester, market, bid)
    assert err.value.code == "insufficient_capacity"
    assert p.capacity.free == before and market.bidder.reservations() == []
    p.capacity.release("someone-else")


async def test_the_operator_reserve_is_never_sold(provider: Provider, requester: Requester) -> None:
    m = await make_market(provider)
    smaller = Capability(cpu_millis=2000, memory_bytes=GiB, disk_bytes=GiB, arch="x86_64")
    withdrawn = await m.offers.withdraw("o-1")
    assert withdrawn["state"] == "withdrawn"
    now = int(m.clock.now())
    m.offer = ResourceOffer("o-2", provider.did, smaller, PriceTerms(), OfferTerms(), now - 1, now + 600)
    await m.offers.add(m.offer)
    answer = await ask(requester, m, bid_request(requester, m, need=Capability(cpu_millis=3000)))
    assert isinstance(answer, Decline) and answer.codes == ["busy"]
    assert isinstance(await ask(requester, m, bid_request(requester, m, need=Capability(cpu_millis=2000))), Bid)
    gone = bid_request(requester, m, offer_id="o-1")
    answer = await ask(requester, m, gone)
    assert isinstance(answer, Decline) and answer.codes == ["policy"]


@pytest.mark.parametrize("access", ["allowlist", "min_trust", "refused"])
async def test_a_requester_the_policy_refuses_gets_a_signed_policy_decline(
    provider: Provider, requester: Requester, access: str
) -> None:
    if access == "allowlist":
        m = await make_market(provider, access=AccessPolicy("allowlist", frozenset({Keypair.generate().did})))
    elif access == "min_trust":  # trust is unknown today: read as 0
        m = await make_market(provider, access=AccessPolicy("min_trust", min_trust=0.1))
    else:
        m = await make_market(provider, refuse=(requester.did,))
    answer = await ask(requester, m, bid_request(requester, m))
    assert isinstance(answer, Decline)
    assert answer.codes == ["policy"]
    assert answer.provider == provider.did
    assert m.bidder.reservations() == []


async def test_bid_requests_are_rate_limited_per_requester(provider: Provider, requester: Requester) -> None:
    m = await make_market(provider, rate_per_min=2)
    for _ in range(2):
        assert isinstance(await ask(requester, m, bid_request(requester, m)), Bid)
    with pytest.raises(AgoraError) as err:
        await ask(requester, m, bid_request(requester, m))
    assert err.value.code == "rate_limited"
    m.clock.advance(60)  # the bucket refills with time
    assert isinstance(await ask(requester, m, bid_request(requester, m)), Bid)


async def test_declines_say_price_and_draining(provider: Provider, requester: Requester) -> None:
    m = await make_market(provider)
    answer = await ask(requester, m, bid_request(requester, m, max_price=1))
    assert isinstance(answer, Decline) and answer.codes == ["price"]
    m.bidder.draining = lambda: True
    answer = await ask(requester, m, bid_request(requester, m))
    assert isinstance(answer, Decline) and "draining" in answer.codes


async def test_an_award_for_a_bid_past_its_valid_until_is_refused(market: Market, requester: Requester) -> None:
    bid = await get_bid(requester, market)
    a = Award.issue(requester.keypair, bid, commit_by=int(market.clock.now()) + 600, iat=int(market.clock.now()))
    market.clock.advance(bid.valid_until - market.clock.now() + 1)
    with pytest.raises(AgoraError) as err:
        await requester.runtime.call(market.provider.did, AWARD_CMD, award_args(a))
    assert err.value.code == "bid_expired"
    assert market.bidder.reservations() == []


async def test_an_award_for_another_providers_bid_is_refused(
    market: Market, requester: Requester, net: MemoryNetwork, tmp_path: Path
) -> None:
    other = Keypair.generate()
    request = bid_request(requester, market, provider=other.did)
    foreign = Bid.issue(other, request, price=10, valid_until=int(market.clock.now()) + 30, iat=int(market.clock.now()))
    a = Award.issue(requester.keypair, foreign, commit_by=int(market.clock.now()) + 30, iat=int(market.clock.now()))
    with pytest.raises(AgoraError) as err:  # addressed to the other provider
        await requester.runtime.call(market.provider.did, AWARD_CMD, award_args(a))
    assert err.value.code == "market_message_invalid"
    # the other provider's bid in an award addressed to this provider: this node never made that bid
    made_elsewhere, mine = foreign, request
    forged = Award(
        requester.did,
        market.provider.did,
        made_elsewhere.cid,
        mine.request_id,
        mine.job_id,
        10,
        int(market.clock.now()) + 30,
        int(market.clock.now()),
    )._sealed(requester.keypair)
    with pytest.raises(AgoraError) as err:
        await requester.runtime.call(market.provider.did, AWARD_CMD, award_args(forged))
    assert err.value.code == "reservation_not_found"
    assert market.bidder.reservations() == []


async def test_an_award_never_followed_by_a_start_gives_the_capacity_back(market: Market, requester: Requester) -> None:
    p = market.provider
    bid = await get_bid(requester, market)
    _, commit = await award(requester, market, bid)
    assert p.capacity.free != p.capacity.total
    market.clock.advance(commit.start_by - market.clock.now() + 1)
    await market.bidder.start()  # the sweep the node owns gives it back
    await _until(lambda: p.capacity.free == p.capacity.total, "the expired commit to be given back")
    assert market.bidder.reservations() == []
    with pytest.raises(AgoraError) as err:
        await start_with(requester, market, bid)
    assert err.value.code == "reservation_not_found"
    assert leftovers(p) == []


async def test_a_start_after_start_by_is_refused_even_before_the_sweep(market: Market, requester: Requester) -> None:
    bid = await get_bid(requester, market)
    _, commit = await award(requester, market, bid)
    market.clock.advance(commit.start_by - market.clock.now() + 1)
    with pytest.raises(AgoraError) as err:
        await start_with(requester, market, bid)
    assert err.value.code == "bid_expired"
    assert leftovers(market.provider) == []


async def test_a_release_by_a_stranger_is_refused_and_the_requester_can_release(
    market: Market, requester: Requester, net: MemoryNetwork, tmp_path: Path
) -> None:
    p = market.provider
    bid = await get_bid(requester, market)
    a, _ = await award(requester, market, bid)
    stranger = await make_requester(net, tmp_path / "stranger")
    try:
        now = int(market.clock.now())
        theirs = Release(stranger.did, a.cid, a.request_id, "mine now", now)._sealed(stranger.keypair)
        with pytest.raises(AgoraError) as err:
            await stranger.runtime.call(p.did, RELEASE_CMD, release_args(theirs))
        assert err.value.code == "market_message_invalid"
        assert len(market.bidder.reservations()) == 1
        # a release signed by the requester but sent by the stranger is refused too
        relayed = Release.issue(requester.keypair, a, reason="x", iat=now)
        with pytest.raises(AgoraError) as err:
            await stranger.runtime.call(p.did, RELEASE_CMD, release_args(relayed))
        assert err.value.code == "market_message_invalid"
    finally:
        await stranger.runner.stop()
        await stranger.runtime.transport.close()
        await stranger.store.close()
    mine = Release.issue(requester.keypair, a, reason="another bid won", iat=int(market.clock.now()))
    assert await requester.runtime.call(p.did, RELEASE_CMD, release_args(mine)) == {"released": True}
    assert await requester.runtime.call(p.did, RELEASE_CMD, release_args(mine)) == {"released": False}
    assert p.capacity.free == p.capacity.total


async def test_a_start_citing_another_requesters_reservation_is_refused(
    market: Market, requester: Requester, net: MemoryNetwork, tmp_path: Path
) -> None:
    p = market.provider
    bid = await get_bid(requester, market)
    await award(requester, market, bid)
    other = await make_requester(net, tmp_path / "other")
    try:
        await grant(p, other)  # it may start tasks here, just not on someone else's reservation
        with pytest.raises(AgoraError) as err:
            await other.runtime.call(
                p.did,
                START,
                {
                    "job": "unit",
                    "job_id": bid.job_id,
                    "task": WASM_TASK,
                    "module_bytes": wat.hello(),
                    "reservation": bid.request_id,
                },
                proofs=other.book.proofs_for(p.did, START),
            )
        assert err.value.code == "reservation_not_found"
    finally:
        await other.runner.stop()
        await other.runtime.transport.close()
        await other.store.close()
    assert [r["state"] for r in market.bidder.reservations()] == ["committed"]
    assert p.manager.running() == []


async def test_the_bid_delegation_is_for_this_job_and_this_reservation_only(
    market: Market, requester: Requester
) -> None:
    bid = await get_bid(requester, market)
    await award(requester, market, bid)
    for over in ({"job_id": "another-job"}, {"reservation": None}):
        args = {k: v for k, v in over.items() if v is not None}
        with pytest.raises(AgoraError) as err:
            if over.get("reservation", "") is None:
                token = bid.delegation_token()
                assert token is not None
                plain = {"job": "unit", "job_id": bid.job_id, "task": WASM_TASK, "module_bytes": wat.hello()}
                await requester.runtime.call(market.provider.did, START, plain, proofs=[token])
            else:
                await start_with(requester, market, bid, **args)
        assert err.value.code == "ucan_policy_violation"
    assert [r["state"] for r in market.bidder.reservations()] == ["committed"]


async def wait_with_bid(req: Requester, m: Market, bid: Bid, alloc_id: str) -> dict[str, Any]:
    token = bid.delegation_token()
    assert token is not None
    known = None
    for _ in range(200):
        args = {"alloc_id": alloc_id, "known_state": known, "wait_s": 2}
        st = await req.runtime.call(m.provider.did, "/agora/alloc/status", args, proofs=[token])
        if st["state"] in ("completed", "failed", "cancelled"):
            return dict(st)
        known = st["state"]
    raise AssertionError("allocation did not end")


async def _until(cond: Any, what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def test_need_is_what_a_wasm_start_reserves() -> None:
    assert NEED.cpu_millis == 1000 and NEED.memory_bytes == 64 * MiB


async def test_a_bid_request_or_award_relayed_by_another_node_is_refused(
    market: Market, requester: Requester, net: MemoryNetwork, tmp_path: Path
) -> None:
    relay = await make_requester(net, tmp_path / "relay")
    try:
        theirs = bid_request(requester, market)  # signed by the requester, sent by the relay
        with pytest.raises(AgoraError) as err:
            await relay.runtime.call(market.provider.did, BID_REQUEST_CMD, bid_request_args(theirs))
        assert err.value.code == "market_message_invalid"
        bid = await get_bid(requester, market)
        a = Award.issue(requester.keypair, bid, commit_by=int(market.clock.now()) + 30, iat=int(market.clock.now()))
        with pytest.raises(AgoraError) as err:
            await relay.runtime.call(market.provider.did, AWARD_CMD, award_args(a))
        assert err.value.code == "market_message_invalid"
    finally:
        await relay.runner.stop()
        await relay.runtime.transport.close()
        await relay.store.close()
    assert market.bidder.reservations() == []


async def test_a_released_award_cannot_be_committed_again(market: Market, requester: Requester) -> None:
    bid = await get_bid(requester, market)
    a, _ = await award(requester, market, bid)
    mine = Release.issue(requester.keypair, a, reason="changed my mind", iat=int(market.clock.now()))
    assert await requester.runtime.call(market.provider.did, RELEASE_CMD, release_args(mine)) == {"released": True}
    with pytest.raises(AgoraError) as err:
        await requester.runtime.call(market.provider.did, AWARD_CMD, award_args(a))
    assert err.value.code == "reservation_not_found"
    assert market.provider.capacity.free == market.provider.capacity.total


async def test_a_request_for_nothing_is_declined(market: Market, requester: Requester) -> None:
    answer = await ask(requester, market, bid_request(requester, market, need=Capability(disk_bytes=1)))
    assert isinstance(answer, Decline) and answer.codes == ["policy"]


async def test_a_wasm_job_asking_less_than_a_core_is_priced_and_held_as_the_start_takes_it(
    market: Market, requester: Requester
) -> None:
    light = task(resources={"cpu": 0.1, "memory": "64Mi", "disk": "16Mi"})
    need = need_of(parse_task(light, "unit", None))
    assert need.cpu_millis == 100
    bid = await get_bid(requester, market, need=need)
    await award(requester, market, bid)
    [held] = market.bidder.reservations()
    assert held["need"]["cpu_millis"] == 1000  # a wasm task takes a core (manager.WASM_MIN_CPU_MILLIS)
    alloc_id = await start_with(requester, market, bid, task=light)
    end = await wait_with_bid(requester, market, bid, alloc_id)
    assert end["state"] == "completed", end.get("error")
    assert leftovers(market.provider) == []
