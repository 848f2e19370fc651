"""A hub routing for its members: the hub quotes, routes, runs, verifies and pays the provider; the member
verifies the provider's signed quote and record itself and pays the hub the record's price."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from agora.clock import ManualClock
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.inference.requester import InferenceRequester
from agora.inference.router import InferenceRouter
from agora.inference.routing import RoutingPolicy
from agora.inference.rpc import ROUTE_CMD, policy_to_wire, request_to_wire, result_from_wire, result_to_wire
from agora.inference.runner import RunRequest
from agora.inference.runner_mock import MockRunner, expected_output
from agora.ledger import InternalLedgerSettlement, Ledger, MemoryJournalStore
from agora.wire.market import CapacityAd
from tests.unit.inference.net import CLOCK_START, Link, make_provider

OPERATOR = Keypair.generate()
FUNDS = 10_000


def chat(text: str = "hello routed market") -> RunRequest:
    return RunRequest("chat", "mock-chat", messages=({"role": "user", "content": text},), max_tokens=16)


class World:
    def __init__(self) -> None:
        self.tamper = False  # the hub changes the answer it hands back (a dishonest router)
        self.calls: list[str] = []

    async def build(self, member_funds: int = FUNDS) -> None:
        clock = ManualClock(CLOCK_START)
        self.provs, ads = [], []
        for price in ((1000, 1000), (3000, 3000)):
            p, ad = await make_provider(clock, MockRunner(), price=price)
            self.provs.append(p)
            ads.append(ad)
        self.hub, self.member = Keypair.generate(), Keypair.generate()
        self.bank = InternalLedgerSettlement(Ledger(MemoryJournalStore()), OPERATOR.did)
        await self.bank.mint(self.hub.did, FUNDS, actor=OPERATOR.did, idem="fund-hub")
        if member_funds:
            await self.bank.mint(self.member.did, member_funds, actor=OPERATOR.did, idem="fund-member")

        async def ads_now() -> list[CapacityAd]:
            return ads

        hub_req = InferenceRequester(
            self.hub.did, Link(self.hub.did, self.provs), ads_now, settlement=self.bank, clock=clock, keypair=self.hub
        )
        self.router = InferenceRouter(hub_req, self.bank)
        self.req = InferenceRequester(
            self.member.did,
            self.to_router,
            ads_now,
            settlement=self.bank,
            clock=clock,
            keypair=self.member,
            router=self.hub.did,
        )

    async def to_router(self, target: str, cmd: str, args: dict[str, Any], timeout: float) -> Any:
        assert target == self.hub.did
        self.calls.append(cmd)
        reply = await self.router.handle(self.member.did, args)
        if self.tamper:
            res = dataclasses.replace(result_from_wire(reply["result"]), text="something else entirely")
            reply["result"] = result_to_wire(res)
        return reply


async def test_a_member_buys_through_its_hub_verifies_the_providers_record_and_pays_the_hub() -> None:
    w = World()
    await w.build()
    req = chat()
    out = await w.req.run(req, RoutingPolicy("cheapest"))
    assert w.calls == [ROUTE_CMD]  # the member neither quoted nor called a provider
    cheap = w.provs[0]
    assert out.provider == cheap.did and out.result.text == expected_output(req).text
    assert out.quote.requester == w.hub.did and out.record.prompt_hash == req.prompt_hash
    assert w.req.audit.accepted[cheap.did] == 1 and out.paid == out.record.price > 0
    # the provider was paid by the hub (escrow released on the record); the member paid the hub the same price
    assert await w.bank.balance(cheap.did) == out.paid
    assert await w.bank.balance(w.member.did) == FUNDS - out.paid
    assert await w.bank.balance(w.hub.did) == FUNDS
    assert w.router.routed[w.member.did] == 1


async def test_a_router_that_alters_the_answer_is_refused_and_not_paid() -> None:
    w = World()
    await w.build()
    w.tamper = True
    with pytest.raises(AgoraError) as ei:
        await w.req.run(chat())
    assert ei.value.code == "metering_invalid" and w.req.totals.refused_records == 1
    assert await w.bank.balance(w.member.did) == FUNDS  # the member paid the hub nothing


async def test_the_router_refuses_a_member_that_cannot_cover_the_request() -> None:
    w = World()
    await w.build(member_funds=0)
    with pytest.raises(AgoraError) as ei:
        await w.req.run(chat())
    assert ei.value.code == "insufficient_funds"
    assert await w.bank.balance(w.hub.did) == FUNDS and await w.bank.balance(w.provs[0].did) == 0
    args = {"v": 1, "request": request_to_wire(chat()), "policy": policy_to_wire(RoutingPolicy())}
    with pytest.raises(AgoraError) as ei:
        await w.router.handle(w.hub.did, args)  # the hub does not route through itself
    assert ei.value.code == "invalid_argument" and "routes its own" in ei.value.message
