from __future__ import annotations

import asyncio

import pytest

from agora.clock import ManualClock
from agora.discovery import Discovery, PeerTable
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.transport import MemoryNetwork, MemoryTransport
from agora.wire import Announcement


def ann(kp: Keypair, kind: str, seq: int, ts: float = 1_700_000_000) -> Announcement:
    return Announcement(kp.did, kind, "0.1.0", ("nats://127.0.0.1:4222",), {"cpu": 2}, seq, int(ts))


def test_join_heartbeat_lost_return_leave_expire() -> None:
    clock = ManualClock()
    me, peer = Keypair.generate(), Keypair.generate()
    table = PeerTable(me.did, lost_after=15, expire_after=60, clock=clock)
    assert table.observe(ann(peer, "join", 1)).kind == "peer.joined"  # type: ignore[union-attr]
    assert table.observe(ann(me, "join", 1)) is None  # never itself
    clock.advance(10)
    assert table.observe(ann(peer, "heartbeat", 2, clock.now())) is None
    assert table.get(peer.did).last_seen == clock.now()  # type: ignore[union-attr]
    clock.advance(16)
    assert [c.kind for c in table.sweep()] == ["peer.lost"]
    assert table.alive() == []
    assert table.observe(ann(peer, "heartbeat", 3, clock.now())).kind == "peer.returned"  # type: ignore[union-attr]
    assert table.observe(ann(peer, "heartbeat", 3, clock.now())) is None  # replayed seq ignored
    assert table.observe(ann(peer, "leave", 4, clock.now())).kind == "peer.left"  # type: ignore[union-attr]
    # the recorded join replayed now cannot bring a departed node back
    assert table.observe(ann(peer, "join", 1, clock.now() - 26)) is None
    assert table.get(peer.did).status == "left"  # type: ignore[union-attr]
    clock.advance(61)
    assert [c.kind for c in table.sweep()] == ["peer.expired"]
    assert table.all() == []


def test_old_or_future_announcements_are_ignored_and_restarts_are_seen() -> None:
    clock = ManualClock()
    me, peer = Keypair.generate(), Keypair.generate()
    table = PeerTable(me.did, clock=clock, max_age=120)
    assert table.observe(ann(peer, "join", 1, clock.now() - 121)) is None  # recorded long ago
    assert table.observe(ann(peer, "join", 1, clock.now() + 121)) is None  # from the future
    assert table.observe(ann(peer, "join", 5, clock.now())).kind == "peer.joined"  # type: ignore[union-attr]
    assert table.observe(ann(peer, "leave", 6, clock.now())).kind == "peer.left"  # type: ignore[union-attr]
    clock.advance(3)
    # the node restarted: its seq starts again at 1, but its join is newer
    assert table.observe(ann(peer, "join", 1, clock.now())).kind == "peer.returned"  # type: ignore[union-attr]


def test_forged_announcement_is_rejected() -> None:
    kp, other = Keypair.generate(), Keypair.generate()
    raw = bytearray(ann(kp, "join", 1).seal(kp))
    raw[10] ^= 1
    with pytest.raises(AgoraError) as err:
        Announcement.open(bytes(raw))
    assert err.value.code == "ucan_signature_invalid"
    with pytest.raises(AgoraError):
        ann(kp, "join", 1).seal(other)  # cannot sign for someone else


async def test_discovery_over_memory_transport() -> None:
    net = MemoryNetwork()
    keys = [Keypair.generate() for _ in range(3)]
    clock = ManualClock()
    tables = [PeerTable(k.did, clock=clock) for k in keys]
    transports = [MemoryTransport(net, k.did) for k in keys]
    services = []
    for k, t, table in zip(keys, transports, tables, strict=True):
        await t.start()
        d = Discovery(k, t, table, interval=60)
        await d.start()
        services.append(d)
    for _ in range(200):
        if all(len(t.alive()) == 2 for t in tables):
            break
        await asyncio.sleep(0.01)
    assert all(len(t.alive()) == 2 for t in tables)
    await services[0].stop()
    for _ in range(200):
        if all(t.get(keys[0].did).status == "left" for t in tables[1:]):  # type: ignore[union-attr]
            break
        await asyncio.sleep(0.01)
    assert all(t.get(keys[0].did).status == "left" for t in tables[1:])  # type: ignore[union-attr]
    for d in services[1:]:
        await d.stop()
    for t in transports:
        await t.close()
