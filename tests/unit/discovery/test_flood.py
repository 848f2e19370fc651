"""Discovery under a flood of hellos from fresh keys, and a table change and its event as one step."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from agora.clock import ManualClock
from agora.discovery import HELLO_TOPIC, TOPIC, Change, Discovery, EventBudget, PeerTable
from agora.identity import Keypair
from agora.transport import MemoryNetwork, MemoryTransport
from agora.wire import Announcement

FLOOD = 500


@dataclass
class World:
    net: MemoryNetwork
    clock: ManualClock
    me: Keypair
    table: PeerTable
    discovery: Discovery
    attacker: MemoryTransport
    events: list[Change] = field(default_factory=list)
    heard: list[Announcement] = field(default_factory=list)  # what the node announced, as others hear it

    async def hello(self, kp: Keypair, kind: str = "join", seq: int = 1, topic: str = HELLO_TOPIC) -> None:
        ann = Announcement(kp.did, kind, "0.1.0", (), {}, seq, int(self.clock.now()), 1000)
        await self.attacker.publish(topic, ann.seal(kp))

    async def settle(self) -> None:
        await self.net.flush()
        await self.discovery.replies_done()
        await self.net.flush()

    def heartbeats(self) -> int:
        return sum(1 for a in self.heard if a.did == self.me.did and a.kind == "heartbeat")


@pytest.fixture
async def world() -> AsyncIterator[World]:
    net, clock, me = MemoryNetwork(), ManualClock(), Keypair.generate()
    node, attacker = MemoryTransport(net, me.did), MemoryTransport(net, Keypair.generate().did)
    await node.start()
    await attacker.start()
    table = PeerTable(me.did, clock=clock, max_peers=100)
    w = World(net, clock, me, table, Discovery(me, node, table, interval=60, reply_gap=0.05), attacker)

    async def record(change: Change) -> None:
        w.events.append(change)

    async def listen(data: bytes) -> None:
        w.heard.append(Announcement.open(data))

    w.discovery.on_change = record
    await attacker.subscribe(TOPIC, listen)
    await w.discovery.start(run_loop=False)
    await w.settle()
    w.heard.clear()
    yield w
    await w.discovery.stop(announce_leave=False)
    await attacker.close()
    await node.close()


async def test_a_flood_of_hellos_is_answered_by_at_most_two_heartbeats(world: World) -> None:
    for _ in range(FLOOD):
        await world.hello(Keypair.generate())
    await world.settle()
    assert 1 <= world.heartbeats() <= 2  # one at once, one owed to the hellos coalesced after it
    await world.hello(Keypair.generate())  # a later newcomer is still answered
    await world.settle()
    assert world.heartbeats() in (2, 3)


async def test_a_flood_of_fresh_keys_cannot_push_out_pinned_or_established_peers(world: World) -> None:
    friend, pinned = Keypair.generate(), Keypair.generate()
    world.table.pinned = frozenset({pinned.did})
    await world.hello(pinned, topic=TOPIC)
    await world.hello(friend, topic=TOPIC)
    await world.hello(friend, "heartbeat", 2, topic=TOPIC)  # heard from twice: established
    for _ in range(FLOOD):
        await world.hello(Keypair.generate())
    await world.settle()
    assert len(world.table) == 101  # 100 strangers at most, plus the pinned peer
    assert world.table.get(pinned.did) is not None and world.table.get(friend.did) is not None


async def test_events_about_strangers_are_budgeted_and_the_rest_counted(world: World) -> None:
    pinned = Keypair.generate()
    world.table.pinned = frozenset({pinned.did})
    world.discovery.event_budget = EventBudget(burst=50, rate=1.0, clock=world.clock)
    for _ in range(FLOOD):
        await world.hello(Keypair.generate())
    await world.hello(pinned, topic=TOPIC)
    await world.settle()
    about_strangers = [e for e in world.events if e.did != pinned.did]
    assert len(about_strangers) == 50  # 500 joins and 400 evictions, 50 recorded
    assert [e.kind for e in world.events if e.did == pinned.did] == ["peer.joined"]  # pinned: always recorded
    await world.discovery.sweep()
    summary = [e for e in world.events if e.kind == "peer.events_suppressed"]
    assert len(summary) == 1 and summary[0].did == world.me.did
    assert summary[0].data["count"] == FLOOD + (FLOOD - 100) - 50
    await world.discovery.sweep()
    assert len([e for e in world.events if e.kind == "peer.events_suppressed"]) == 1  # reported once


async def test_a_reader_that_sees_a_change_can_read_its_event(world: World) -> None:
    """The event is recorded before the table shows the change, even when recording takes its time."""
    seen_when_recorded: list[tuple[str, str | None]] = []

    async def slow_record(change: Change) -> None:
        for _ in range(20):
            await asyncio.sleep(0)  # a store write in a worker thread yields like this
        peer = world.table.get(change.did)
        seen_when_recorded.append((change.kind, peer.status if peer is not None else None))
        world.events.append(change)

    world.discovery.on_change = slow_record
    peer = Keypair.generate()
    await world.hello(peer, topic=TOPIC)

    async def watch() -> None:
        while world.table.get(peer.did) is None or world.table.get(peer.did).status != "lost":  # type: ignore[union-attr]
            known = world.table.get(peer.did)
            if known is not None:
                assert any(e.kind == "peer.joined" for e in world.events)
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    try:
        await world.settle()
        world.clock.advance(10)  # three of its 1 s intervals have passed
        await world.discovery.sweep()
        async with asyncio.timeout(5):
            await watcher
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    assert seen_when_recorded == [("peer.joined", None), ("peer.lost", "alive")]
    assert [e.kind for e in world.events] == ["peer.joined", "peer.lost"]
