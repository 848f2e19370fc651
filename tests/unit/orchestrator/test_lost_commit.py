"""A provider that dies between its commit and the requester's start (issue 8, bad input), on the memory
transport: the unit is placed again on another provider with the lost one excluded, no retry attempt of the
spec is spent (the task never ran), every move is recorded, and the restarted provider holds no phantom
reservation. The same path with real processes on real NATS: tests/integration/compute/test_lost_commit.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agora.orchestrator.placement import PlacementRound
from tests.unit.compute.harness import Requester, leftovers, make_provider
from tests.unit.orchestrator.market_standin import StandInBidder, make_bidder
from tests.unit.orchestrator.test_placement import (  # noqa: F401 (fixtures)
    Market,
    buyer,
    ended,
    index,
    market,
    spec,
    states,
    submit,
)


class AfterCommit:
    """Holds the requester right after `provider` committed, until the test has done its damage."""

    def __init__(self, r: Requester, provider: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.committed, self.go = asyncio.Event(), asyncio.Event()
        placer = r.runner.placer
        assert placer is not None
        real = placer.place

        async def place(*args: Any, **kw: Any) -> PlacementRound:
            rnd = await real(*args, **kw)
            if rnd.placed is not None and rnd.placed.provider == provider and not self.committed.is_set():
                self.committed.set()
                await asyncio.wait_for(self.go.wait(), 30)
            return rnd

        monkeypatch.setattr(placer, "place", place)

    async def wait(self) -> None:
        await asyncio.wait_for(self.committed.wait(), 20)


async def _kill(victim: StandInBidder) -> None:
    """The provider's node goes away at once (its bidder, its allocations, its transport)."""
    assert victim.provider is not None
    await victim.stop()
    await victim.provider.manager.stop()
    await victim.provider.runtime.transport.close()


def _lost_moves(unit: dict[str, Any], did: str) -> list[dict[str, Any]]:
    lost = f"the commit on {did} is lost"
    return [h for h in unit["history"] if h["state"] == "waiting_retry" and lost in h["cause"]]


async def test_a_provider_dead_after_its_commit_has_the_unit_placed_elsewhere(
    market: Market,  # noqa: F811
    buyer: Requester,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = await market.add("first", price=1)  # the best bid: it commits, then dies
    second = await market.add("second", price=2)
    hook = AfterCommit(buyer, first.did, monkeypatch)
    job_id = await submit(buyer, spec(tmp_path), tmp_path)  # the default retry policy: no attempts left
    await hook.wait()
    assert len(first.book.holds) == 1  # the commit holds its capacity
    await _kill(first)
    hook.go.set()
    doc = await ended(buyer, job_id)
    assert doc["state"] == "completed", doc["error"]
    [unit] = doc["units"]
    assert unit["node"] == second.did and unit["excluded"] == [first.did]
    assert unit["attempts"] == 1  # the task never ran on the dead provider: no retry was spent
    [lost] = _lost_moves(unit, first.did)
    assert lost["cause"].startswith("peer_unreachable:")
    assert states(unit).count("committed") == 2
    assert unit["placements"][-1]["excluded"] == [first.did] and unit["placements"][-1]["provider"] == second.did
    assert second.provider is not None and leftovers(second.provider) == []  # nothing double-booked there


async def test_a_provider_restarted_after_its_commit_frees_it_and_the_unit_runs_elsewhere(
    market: Market,  # noqa: F811
    buyer: Requester,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = await market.add("first", price=1)
    second = await market.add("second", price=2)
    hook = AfterCommit(buyer, first.did, monkeypatch)
    job_id = await submit(buyer, spec(tmp_path), tmp_path)
    await hook.wait()
    old = first.provider
    assert old is not None and old.capacity.free != old.capacity.total
    await _kill(first)
    # started again on the same keys, store and home: its reservations were in memory, so none is left
    again = await make_provider(market.net, old.home, restart_of=old)
    restarted = await make_bidder(again, first.offer)
    market.providers = [(again, restarted) if b is first else (p, b) for p, b in market.providers]
    assert restarted.book.holds == {} and again.capacity.free == again.capacity.total
    hook.go.set()  # the requester starts on the restarted provider with the commit it no longer knows
    doc = await ended(buyer, job_id)
    assert doc["state"] == "completed", doc["error"]
    [unit] = doc["units"]
    assert unit["node"] == second.did and unit["excluded"] == [first.did] and unit["attempts"] == 1
    [lost] = _lost_moves(unit, first.did)
    assert lost["cause"].startswith("reservation_not_found:")
    assert leftovers(again) == []  # the start it refused took nothing
    assert second.provider is not None and leftovers(second.provider) == []


async def test_a_named_provider_restarted_after_its_commit_runs_the_job_once_back(
    market: Market,  # noqa: F811
    buyer: Requester,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`--node` without a grant: the provider is the job's one candidate, so it is not excluded (the unit would
    wait for nobody until its deadline); it is placed on it again once restarted."""
    named = await market.add("named", price=5)
    await market.add("other", price=1)
    hook = AfterCommit(buyer, named.did, monkeypatch)
    job_id = await submit(buyer, spec(tmp_path), tmp_path, node=named.did)
    await hook.wait()
    old = named.provider
    assert old is not None
    await _kill(named)
    again = await make_provider(market.net, old.home, restart_of=old)
    restarted = await make_bidder(again, named.offer)
    market.providers = [(again, restarted) if b is named else (p, b) for p, b in market.providers]
    hook.go.set()
    doc = await ended(buyer, job_id)
    assert doc["state"] == "completed", doc["error"]
    [unit] = doc["units"]
    assert unit["node"] == named.did and unit["excluded"] == [] and unit["attempts"] == 1
    [lost] = [h for h in unit["history"] if h["state"] == "waiting_retry"]
    assert lost["cause"].startswith("reservation_not_found:") and "the job's one candidate" in lost["cause"]
    assert restarted.awarded and leftovers(again) == []
