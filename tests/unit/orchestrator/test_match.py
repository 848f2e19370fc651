"""Match an intent: the preview changes nothing anywhere (intent, contracts, the providers' bid requests and
reservations, the store); a budget lower than every bid is answered with the rejection counts; a match that
fits places the job and answers with its paid contract, and the intent is fulfilled when the job completes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agora.errors import AgoraError
from agora.market import MemoryMarketIndex
from agora.market.intents import IntentBook
from agora.orchestrator.match import Matcher
from agora.transport import MemoryNetwork
from tests.unit.orchestrator.market_standin import make_offer
from tests.unit.orchestrator.test_placement import Market, index, market, spec
from tests.unit.orchestrator.test_settle import FUNDS, Buyer, _close, make_buyer

__all__ = ["index", "market"]  # fixtures


@pytest.fixture
async def buyer(net: MemoryNetwork, tmp_path: Path, index: MemoryMarketIndex) -> AsyncIterator[Buyer]:
    b, _ = await make_buyer(net, tmp_path / "buyer", index)
    yield b
    await _close(b)


@pytest.fixture
def matcher(buyer: Buyer) -> Matcher:
    return Matcher(buyer.runner, IntentBook(buyer.r.store, buyer.r.did), buyer.settler.contracts, buyer.settler)


async def _open_intent(m: Matcher, tmp: Path, budget: int) -> str:
    doc = await m.intents.create({"job": spec(tmp), "budget": budget, "open": True})
    return str(doc["intent_id"])


async def _snapshot(b: Buyer, m: Matcher, intent_id: str, market: Market) -> tuple[object, ...]:
    intent = await m.intents.show(intent_id)
    events = [(e.kind, e.subject) for e in await b.r.store.events(limit=10_000)]
    contracts = [c.contract_id for c in await b.settler.contracts.list()]
    providers = [(len(bd.asked), len(bd.awarded), len(bd.released), dict(bd.book.holds)) for _, bd in market.providers]
    jobs = await b.runner.list_jobs()
    return intent, events, contracts, providers, jobs, len(await b.settlement.entries())


async def test_preview_changes_nothing(buyer: Buyer, matcher: Matcher, market: Market, tmp_path: Path) -> None:
    await market.add("p1", price=3)
    await market.add("p2", price=5)
    intent_id = await _open_intent(matcher, tmp_path, budget=1_000)
    before = await _snapshot(buyer, matcher, intent_id, market)
    preview = await matcher.preview(intent_id)
    assert preview["preview"] is True and preview["would_match"] is True
    assert len(preview["tasks"]["hello"]["chosen"]) == 2 and preview["budget_rejections"] == 0
    assert await _snapshot(buyer, matcher, intent_id, market) == before  # nothing anywhere


async def test_a_budget_below_every_bid(buyer: Buyer, matcher: Matcher, market: Market, tmp_path: Path) -> None:
    await market.add("p1", price=3)
    await market.add("p2", price=5)
    intent_id = await _open_intent(matcher, tmp_path, budget=1)
    before = await _snapshot(buyer, matcher, intent_id, market)
    answer = await matcher.match(intent_id)
    assert answer["matched"] is False and answer["contracts"] == [] and answer["status"] == "open"
    assert answer["budget_rejections"] == 2 and answer["rejections"] == {"over_budget": 2}
    intent = await matcher.intents.show(intent_id)
    assert intent["status"] == "open" and intent["match"]["budget_rejections"] == 2
    _, _, contracts, providers, jobs, entries = before
    after = await _snapshot(buyer, matcher, intent_id, market)
    assert after[2:] == (contracts, providers, jobs, entries)  # no bid asked, no job, no contract, no money
    summary = await matcher.summary()
    assert summary["matches"] == {
        "attempts": 1,
        "matched": 0,
        "success_rate": 0.0,
        "top_rejections": [{"code": "over_budget", "count": 2}],
    }


async def test_a_match_places_the_job_and_the_job_fulfils_the_intent(
    buyer: Buyer, matcher: Matcher, market: Market, tmp_path: Path
) -> None:
    bidder = await market.add("p1", price=3)
    intent_id = await _open_intent(matcher, tmp_path, budget=1_000)
    answer = await matcher.match(intent_id, base_dirs=[str(tmp_path)])
    assert answer["matched"] is True and answer["status"] == "matched", answer
    [c] = answer["contracts"]
    assert c["intent_id"] == intent_id and c["provider"] == bidder.did and c["state"] in ("escrow_locked",)
    job_id = answer["job_id"]
    assert (await buyer.runner.wait(job_id, 20))["state"] == "completed"
    # the job's end reached the intent through the settler's hook before the runner said it ended
    assert (await matcher.intents.show(intent_id))["status"] == "fulfilled"
    [done] = await buyer.settler.contracts.list(intent_id=intent_id)
    assert done.state == "escrow_released" and await buyer.balance(buyer.r.did) == FUNDS - done.price
    with pytest.raises(AgoraError) as err:  # a fulfilled intent is not matched again
        await matcher.match(intent_id)
    assert err.value.code == "intent_transition_invalid"
    assert (await matcher.summary())["matches"]["success_rate"] == 1.0


async def test_only_an_open_intent_is_matched(matcher: Matcher, tmp_path: Path) -> None:
    doc = await matcher.intents.create({"job": spec(tmp_path), "budget": 10})
    with pytest.raises(AgoraError) as err:
        await matcher.match(doc["intent_id"])
    assert err.value.code == "intent_transition_invalid" and "allowed from draft: open" in err.value.message


async def test_a_round_that_does_not_commit_is_a_rejection_and_leaves_no_job_queued(
    buyer: Buyer, matcher: Matcher, market: Market, tmp_path: Path
) -> None:
    bidder = await market.add("p1", price=3)
    bidder.refuse_commit = "insufficient_capacity"  # it bids, then cannot commit the award
    intent_id = await _open_intent(matcher, tmp_path, budget=1_000)
    answer = await matcher.match(intent_id, base_dirs=[str(tmp_path)])
    assert answer["matched"] is False and answer["status"] == "open" and answer["contracts"] == []
    assert answer["rejections"] == {"insufficient_capacity": 1} and answer["budget_rejections"] == 0
    [job] = await buyer.runner.list_jobs()
    assert (await buyer.runner.wait(job["id"], 10))["state"] == "cancelled"  # not left waiting in the queue
    assert await buyer.settler.contracts.list() == []
    assert await buyer.balance(buyer.r.did) == FUNDS


async def test_two_matches_of_one_intent_at_once_place_one_job(
    buyer: Buyer, matcher: Matcher, market: Market, tmp_path: Path
) -> None:
    await market.add("p1", price=3)
    intent_id = await _open_intent(matcher, tmp_path, budget=1_000)
    first, second = await asyncio.gather(
        matcher.match(intent_id, base_dirs=[str(tmp_path)]),
        matcher.match(intent_id, base_dirs=[str(tmp_path)]),
        return_exceptions=True,
    )
    answers = [a for a in (first, second) if isinstance(a, dict)]
    errors = [e for e in (first, second) if isinstance(e, AgoraError)]
    assert len(answers) == 1 and answers[0]["matched"] is True
    assert len(errors) == 1 and errors[0].code == "intent_transition_invalid"
    assert len(await buyer.runner.list_jobs()) == 1


async def test_bids_over_the_budget_are_budget_rejections(
    buyer: Buyer, matcher: Matcher, market: Market, tmp_path: Path, index: MemoryMarketIndex
) -> None:
    """The ads quote under the budget, every provider's firm bid is over it: declined for the price."""
    cheap_ads = []
    for name in ("p1", "p2"):
        bidder = await market.add(name, price=50, publish=False)  # sells at 50 per cpu-second
        bidder.offer = make_offer(bidder.did, cpu_price=1)  # ...but advertises 1 (same offer id)
        await bidder.publish(index)
        cheap_ads.append(bidder)
    intent_id = await _open_intent(matcher, tmp_path, budget=100)  # 1 cpu x 30 s: 30 at 1, 1,500 at 50
    preview = await matcher.preview(intent_id)
    assert preview["would_match"] is True and preview["budget_rejections"] == 0
    answer = await matcher.match(intent_id, base_dirs=[str(tmp_path)])
    assert answer["matched"] is False and answer["status"] == "open"
    assert answer["rejections"] == {"declined_price": 2} and answer["budget_rejections"] == 2
    assert all(b.asked and not b.awarded for b in cheap_ads)  # asked for bids, none awarded
    assert await buyer.settler.contracts.list() == []


async def test_an_intents_job_ending_after_a_restart_still_fulfils_it(
    buyer: Buyer, matcher: Matcher, market: Market, tmp_path: Path
) -> None:
    await market.add("p1", price=3)
    intent_id = await _open_intent(matcher, tmp_path, budget=1_000)
    await matcher.intents.transition(intent_id, "matched", job_ids=["job-before-the-restart"])
    await matcher.job_ended("job-before-the-restart", "completed")  # no link in memory: read from the intent
    assert (await matcher.intents.show(intent_id))["status"] == "fulfilled"
