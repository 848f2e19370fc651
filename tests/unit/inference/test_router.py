"""A hub routing for its members: the hub quotes, routes, runs, verifies and pays the provider; the member
verifies the provider's signed quote and record itself and pays the hub the record's price. Streams too: the
hub passes the provider's deltas on, falls back before the first one, and hands over the evidence at the end."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from agora.clock import ManualClock
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.inference.requester import InferenceRequester, Outcome
from agora.inference.router import InferenceRouter, RouterSettings
from agora.inference.routing import RoutingPolicy
from agora.inference.rpc import (
    ROUTE_CMD,
    ROUTE_STREAM_CMD,
    ROUTE_WATCH_CMD,
    policy_to_wire,
    request_to_wire,
    result_from_wire,
    result_to_wire,
)
from agora.inference.runner import Delta, RunRequest
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

    async def build(self, member_funds: int = FUNDS, runners: tuple[MockRunner, MockRunner] | None = None) -> None:
        self.clock = clock = ManualClock(CLOCK_START)
        self.provs, ads = [], []
        for price, runner in zip(((1000, 1000), (3000, 3000)), runners or (MockRunner(), MockRunner()), strict=True):
            p, ad = await make_provider(clock, runner, price=price)
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
        self.router = InferenceRouter(hub_req, self.bank, settings=RouterSettings(abandon_after_s=30))
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
        if cmd == ROUTE_STREAM_CMD:
            return {"session": await self.router.open_stream(self.member.did, args)}
        if cmd == ROUTE_WATCH_CMD:
            reply = await self.router.watch(self.member.did, args)
            if self.tamper and reply["deltas"]:
                reply["deltas"][0] = "forged"
            return reply
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


async def stream_all(w: World, req: RunRequest, policy: RoutingPolicy | None = None) -> tuple[str, Outcome]:
    text, out = [], None
    async for ev in w.req.stream(req, policy):
        if isinstance(ev, Delta):
            text.append(ev.text)
        else:
            out = ev
    assert out is not None
    return "".join(text), out


async def test_a_member_streams_through_its_hub_verifies_the_record_against_the_text_and_pays_the_hub() -> None:
    w = World()
    await w.build()
    req = chat()
    text, out = await stream_all(w, req, RoutingPolicy("cheapest"))
    assert w.calls[0] == ROUTE_STREAM_CMD and set(w.calls[1:]) == {ROUTE_WATCH_CMD}  # no provider called directly
    cheap = w.provs[0]
    assert text == out.result.text == expected_output(req).text and out.provider == cheap.did
    assert out.quote.requester == w.hub.did and w.req.audit.accepted[cheap.did] == 1
    assert out.paid == out.record.price > 0 and not out.record.partial
    assert await w.bank.balance(cheap.did) == out.paid  # the hub's escrow, released on its countersignature
    assert await w.bank.balance(w.member.did) == FUNDS - out.paid
    assert await w.bank.balance(w.hub.did) == FUNDS
    assert w.router.routed[w.member.did] == 1 and len(w.router.sessions) == 0  # read to the end: gone


async def test_the_hub_falls_back_before_the_first_token_of_a_routed_stream() -> None:
    w = World()
    await w.build(runners=(MockRunner(fail="error"), MockRunner()))
    req = chat()
    text, out = await stream_all(w, req, RoutingPolicy("cheapest"))
    cheap, dear = w.provs
    assert out.provider == dear.did and text == expected_output(req).text
    assert await w.bank.balance(cheap.did) == 0 and await w.bank.balance(dear.did) == out.paid > 0
    assert await w.bank.balance(w.hub.did) == FUNDS  # the failed attempt's escrow came back to the hub


async def test_a_router_that_alters_a_streamed_delta_is_refused_and_not_paid() -> None:
    w = World()
    await w.build()
    w.tamper = True
    with pytest.raises(AgoraError) as ei:
        await stream_all(w, chat())
    assert ei.value.code == "metering_invalid" and w.req.totals.refused_records == 1
    assert await w.bank.balance(w.member.did) == FUNDS


async def test_a_routed_stream_nobody_watches_is_dropped_and_the_providers_escrow_refunded() -> None:
    w = World()
    await w.build(runners=(MockRunner(delay_s=0.01), MockRunner()))
    args = {"v": 1, "request": request_to_wire(chat()), "policy": policy_to_wire(RoutingPolicy("cheapest"))}
    sid = await w.router.open_stream(w.member.did, args)
    w.clock.advance(31)  # the member has not watched for longer than abandon_after_s
    session = w.router.sessions.get(sid)
    assert session is not None and session.task is not None
    async with asyncio.timeout(10):
        await session.task  # the pump stops at the first delta it sees nobody reads
    end = await w.router.watch(w.member.did, {"v": 1, "session": sid, "cursor": 0, "wait": 0})
    assert end["done"] and end["error"]["code"] == "timeout" and end["meter"] is None
    assert await w.bank.balance(w.hub.did) == FUNDS and await w.bank.balance(w.provs[0].did) == 0
    assert w.router.routed[w.member.did] == 0


async def test_a_routed_stream_is_the_members_alone_and_embeddings_are_not_streamed() -> None:
    w = World()
    await w.build()
    args = {"v": 1, "request": request_to_wire(chat()), "policy": policy_to_wire(RoutingPolicy())}
    sid = await w.router.open_stream(w.member.did, args)
    with pytest.raises(AgoraError) as ei:
        await w.router.watch(w.hub.did, {"v": 1, "session": sid, "cursor": 0, "wait": 0})
    assert ei.value.code == "not_found"
    embed = RunRequest("embeddings", "mock-embed", inputs=("a b",))
    with pytest.raises(AgoraError) as ei:
        await w.router.open_stream(w.member.did, {**args, "request": request_to_wire(embed)})
    assert ei.value.code == "invalid_argument"
    await w.router.stop()  # the open stream ends with the router
    assert len(w.router.sessions) == 0
