"""A state-changing invocation runs at most once, across restarts: its CID is journaled before it runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agora.actor import Actor, CallContext, Runtime, StoreReplayJournal, behavior
from agora.actor.journal import COLLECTION
from agora.clock import ManualClock
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.store import MemoryStore, Store
from agora.transport import MemoryNetwork, MemoryTransport
from agora.ucan import delegate
from agora.wire import Receipt, Request


class Bank(Actor):
    """One state-changing behavior, one read-only behavior; counts how often each ran."""

    def __init__(self) -> None:
        self.paid = 0
        self.looked = 0

    @behavior("/agora/test/pay")
    async def pay(self, ctx: CallContext) -> Any:
        self.paid += 1
        return {"paid": self.paid}

    @behavior("/agora/test/balance", public=True, mutating=False)
    async def balance(self, ctx: CallContext) -> Any:
        self.looked += 1
        return {"paid": self.paid}


class World:
    def __init__(self) -> None:
        self.clock = ManualClock(start=1_800_000_000)
        self.net = MemoryNetwork()
        self.node = Keypair.generate()
        self.caller = Keypair.generate()
        self.store: Store = MemoryStore(self.clock)  # the node's store outlives its runtimes
        self.grant = delegate(
            self.node,
            aud=self.caller.did,
            sub=self.node.did,
            cmd="/agora/test",
            exp=int(self.clock.now()) + 86400,
        )

        self.transport: MemoryTransport | None = None

    async def boot(self, journal: bool = True) -> tuple[Runtime, Bank]:
        """A fresh runtime (what a restarted node builds) over the same store; the old one stops serving."""
        await self.close()
        self.transport = MemoryTransport(self.net, self.node.did)
        await self.transport.start()
        runtime = Runtime(
            self.node,
            self.transport,
            clock=self.clock,
            journal=StoreReplayJournal(self.store) if journal else None,
        )
        bank = Bank()
        runtime.register(bank)
        await runtime.start()
        return runtime, bank

    async def close(self) -> None:
        if self.transport is not None:
            await self.transport.close()
            self.transport = None

    def pay(self) -> bytes:
        client = Runtime(self.caller, MemoryTransport(self.net, self.caller.did), clock=self.clock)
        return client.build_request(self.node.did, "/agora/test/pay", {"amount": 5}, proofs=[self.grant]).encode()

    def balance(self) -> bytes:
        client = Runtime(self.caller, MemoryTransport(self.net, self.caller.did), clock=self.clock)
        return client.build_request(self.node.did, "/agora/test/balance", {}).encode()


def _error(reply: bytes, node: str) -> str | None:
    receipt = Receipt.decode(reply, expected_issuer=node)
    return receipt.error.code if receipt.error is not None else None


@pytest.fixture
async def world() -> AsyncIterator[World]:
    w = World()
    yield w
    await w.close()


async def test_a_mutating_invocation_is_refused_after_a_restart(world: World) -> None:
    data = world.pay()
    first, bank = await world.boot()
    assert _error(await first.handle(data), world.node.did) is None and bank.paid == 1
    world.clock.advance(30)  # restarted within the invocation's lifetime (it is valid for 300 s + 60 s)
    second, bank2 = await world.boot()
    assert _error(await second.handle(data), world.node.did) == "ucan_replayed"
    assert bank2.paid == 0, "the handler ran again after the restart"
    assert _error(await second.handle(data), world.node.did) == "ucan_replayed"  # and stays refused
    assert _error(await second.handle(world.pay()), world.node.did) is None and bank2.paid == 1  # fresh: fine


async def test_copies_delivered_at_once_run_once_before_and_after_a_restart(world: World) -> None:
    """The same invocation arriving several times at once (two hubs, a retrying transport): one copy runs,
    the others are replays, in a fresh runtime too, where only the journal knows the first run."""
    data = world.pay()
    first, bank = await world.boot()
    codes = [_error(r, world.node.did) for r in await asyncio.gather(*(first.handle(data) for _ in range(8)))]
    assert codes.count(None) == 1 and codes.count("ucan_replayed") == 7 and bank.paid == 1
    second, bank2 = await world.boot()
    codes = [_error(r, world.node.did) for r in await asyncio.gather(*(second.handle(data) for _ in range(8)))]
    assert codes == ["ucan_replayed"] * 8 and bank2.paid == 0


async def test_the_journal_is_written_before_the_handler_runs(world: World) -> None:
    seen: list[int] = []

    class Spy(Actor):
        @behavior("/agora/test/spy")
        async def spy(self, ctx: CallContext) -> Any:
            seen.append(await world.store.count(COLLECTION))
            return {}

    runtime, _ = await world.boot()
    runtime.register(Spy())
    client = Runtime(world.caller, MemoryTransport(world.net, world.caller.did), clock=world.clock)
    data = client.build_request(world.node.did, "/agora/test/spy", {}, proofs=[world.grant]).encode()
    assert _error(await runtime.handle(data), world.node.did) is None
    assert seen == [1]


async def test_read_only_behaviors_are_not_journaled(world: World) -> None:
    runtime, bank = await world.boot()
    assert {c["command"]: c["mutating"] for c in runtime.commands} == {
        "/agora/test/balance": False,
        "/agora/test/pay": True,
    }
    for _ in range(3):
        assert _error(await runtime.handle(world.balance()), world.node.did) is None
    assert bank.looked == 3 and await world.store.count(COLLECTION) == 0
    data = world.balance()
    assert _error(await runtime.handle(data), world.node.did) is None
    assert _error(await runtime.handle(data), world.node.did) == "ucan_replayed"  # the memory cache still holds


async def test_expired_entries_are_pruned(world: World) -> None:
    runtime, _ = await world.boot()
    for _ in range(3):
        assert _error(await runtime.handle(world.pay()), world.node.did) is None
    assert await world.store.count(COLLECTION) == 3
    world.clock.advance(300 + 60 + 1)  # past exp + skew: the validator refuses these as expired anyway
    journal = runtime.journal
    assert journal is not None
    assert await journal.prune(world.clock.now()) == 3
    assert await world.store.count(COLLECTION) == 0


async def test_a_failed_journal_write_runs_nothing_and_remembers_nothing(world: World) -> None:
    runtime, bank = await world.boot()
    data = world.pay()
    await world.store.close()  # the disk is gone
    assert _error(await runtime.handle(data), world.node.did) == "store_closed"
    assert bank.paid == 0
    world.store = MemoryStore(world.clock)
    runtime.journal = StoreReplayJournal(world.store)
    assert _error(await runtime.handle(data), world.node.did) is None and bank.paid == 1  # not a replay


async def test_without_a_journal_mutating_invocations_from_before_the_start_are_refused(world: World) -> None:
    data, look = world.pay(), world.balance()
    world.clock.advance(61)
    runtime, bank = await world.boot(journal=False)
    assert _error(await runtime.handle(data), world.node.did) == "ucan_replayed"
    assert _error(await runtime.handle(look), world.node.did) is None  # read-only: a replay changes nothing
    assert bank.paid == 0 and bank.looked == 1


async def test_with_a_journal_an_invocation_sent_just_before_a_restart_still_runs(world: World) -> None:
    data = world.pay()  # sent, never delivered to the old runtime
    world.clock.advance(61)
    runtime, bank = await world.boot()
    assert _error(await runtime.handle(data), world.node.did) is None and bank.paid == 1


async def test_a_journal_conflict_is_a_replay(world: World) -> None:
    journal = StoreReplayJournal(world.store)
    runtime, _ = await world.boot()
    data = world.pay()
    cid = Request.decode(data).invocation.cid
    await journal.remember(cid, world.clock.now() + 100, world.clock.now())
    with pytest.raises(AgoraError) as err:
        await journal.remember(cid, world.clock.now() + 100, world.clock.now())
    assert err.value.code == "ucan_replayed"
    assert _error(await runtime.handle(data), world.node.did) == "ucan_replayed"
