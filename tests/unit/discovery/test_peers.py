from __future__ import annotations

import asyncio

import pytest

from agora.clock import ManualClock
from agora.discovery import Discovery, EventBudget, PeerTable
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.transport import MemoryNetwork, MemoryTransport
from agora.ucan import seal_envelope
from agora.wire import ANNOUNCE_TAG, Announcement


def ann(kp: Keypair, kind: str, seq: int, ts: float = 1_700_000_000, interval_ms: int | None = None) -> Announcement:
    return Announcement(kp.did, kind, "0.1.0", ("nats://127.0.0.1:4222",), {"cpu": 2}, seq, int(ts), interval_ms)


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


def test_announcements_of_a_previous_run_replayed_after_a_restart_are_ignored() -> None:
    """A restarted node counts its seq from 1 again. Its previous run's heartbeats and leave carry higher
    seqs and may still be inside `max_age`: replayed now (they are genuinely signed), they must not pass
    as newer, or they would roll back its interval and capabilities, mark it departed, and make its real
    heartbeats (low seqs) look stale until its seq caught up, so that it would be judged lost."""
    clock = ManualClock()
    me, peer = Keypair.generate(), Keypair.generate()
    table = PeerTable(me.did, clock=clock, max_age=120)
    t0 = clock.now()
    assert table.observe(ann(peer, "join", 1, t0, interval_ms=60_000)) is not None
    old = [ann(peer, "heartbeat", seq, t0 + seq, interval_ms=60_000) for seq in range(2, 40)]
    for a in old:
        clock.set(a.ts)
        table.observe(a)
    old_leave = ann(peer, "leave", 40, t0 + 40, interval_ms=60_000)
    table.observe(old_leave)
    clock.advance(5)
    # restarted, with a 1 s interval now
    assert table.observe(ann(peer, "join", 1, clock.now(), interval_ms=1000)) is not None
    for replayed in [old[-1], old_leave]:
        assert table.observe(replayed) is None
    peer_now = table.get(peer.did)
    assert peer_now is not None and peer_now.status == "alive" and peer_now.interval == 1.0
    clock.advance(1)
    assert table.observe(ann(peer, "heartbeat", 2, clock.now(), interval_ms=1000)) is None  # accepted, no change
    peer_now = table.get(peer.did)
    assert peer_now is not None and peer_now.last_seq == 2 and peer_now.last_seen == clock.now()
    assert table.sweep() == []


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


def test_lost_is_judged_from_the_peers_own_interval() -> None:
    """A devnet node (lost after 3 s) must not lose a `node up` peer that announces every 5 s."""
    clock = ManualClock()
    me, slow, old, liar = Keypair.generate(), Keypair.generate(), Keypair.generate(), Keypair.generate()
    table = PeerTable(me.did, lost_after=3, expire_after=600, clock=clock)
    table.observe(ann(slow, "join", 1, clock.now(), interval_ms=5000))
    table.observe(ann(old, "join", 1, clock.now()))  # an older node: no interval, judged by lost_after
    table.observe(ann(liar, "join", 1, clock.now(), interval_ms=10**9))  # would stay alive for 31 years
    clock.advance(4)
    assert [(c.kind, c.did) for c in table.sweep()] == [("peer.lost", old.did)]
    assert table.get(slow.did).status == "alive"  # type: ignore[union-attr]
    clock.advance(12)  # 16 s of silence: more than 3 of its 5 s intervals
    assert [(c.kind, c.did) for c in table.sweep()] == [("peer.lost", slow.did)]
    assert table.lost_after_for(table.get(liar.did)) == 180.0  # type: ignore[arg-type]  # clamped to 3 x 60 s
    clock.advance(165)
    assert [(c.kind, c.did) for c in table.sweep()] == [("peer.lost", liar.did)]


def test_the_interval_travels_signed_and_older_announcements_still_open() -> None:
    kp = Keypair.generate()
    with_interval = Announcement.open(ann(kp, "heartbeat", 2, interval_ms=1000).seal(kp))
    assert with_interval.interval_ms == 1000
    assert Announcement.open(ann(kp, "heartbeat", 2).seal(kp)).interval_ms is None  # as an older node sends it
    base = {"did": kp.did, "kind": "join", "version": "0.1.0", "hubs": [], "caps": {}, "seq": 1, "ts": 1}
    for bad in (0, -5, 1.5, "1000", True):
        with pytest.raises(AgoraError) as err:
            Announcement.open(seal_envelope(kp, ANNOUNCE_TAG, {**base, "ivl": bad}))
        assert err.value.code == "message_malformed", bad


def test_a_full_table_evicts_departed_then_once_heard_then_least_recent_strangers_never_pinned() -> None:
    clock = ManualClock()
    me, pin = Keypair.generate(), Keypair.generate()
    keys = {name: Keypair.generate() for name in ("steady", "once", "gone", "d", "e", "f")}
    table = PeerTable(me.did, clock=clock, max_peers=3, pinned=frozenset({pin.did}))
    table.observe(ann(pin, "join", 1, clock.now()))
    for name in ("steady", "once", "gone"):
        table.observe(ann(keys[name], "join", 1, clock.now()))
        clock.advance(1)
    table.observe(ann(keys["steady"], "heartbeat", 2, clock.now()))
    table.observe(ann(keys["gone"], "heartbeat", 2, clock.now()))
    table.observe(ann(keys["gone"], "leave", 3, clock.now()))

    def evicted_by(name: str) -> list[tuple[str, str]]:
        update = table.assess(ann(keys[name], "join", 1, clock.now()))
        assert update is not None
        table.apply(update)
        return [(c.kind, c.did) for c in update.changes]

    assert evicted_by("d") == [("peer.evicted", keys["gone"].did), ("peer.joined", keys["d"].did)]
    assert evicted_by("e") == [("peer.evicted", keys["once"].did), ("peer.joined", keys["e"].did)]
    clock.advance(1)
    table.observe(ann(keys["d"], "heartbeat", 2, clock.now()))
    table.observe(ann(keys["e"], "heartbeat", 2, clock.now()))
    assert evicted_by("f") == [("peer.evicted", keys["steady"].did), ("peer.joined", keys["f"].did)]
    assert len(table) == 4 and table.get(pin.did) is not None  # 3 strangers + the pinned peer
    nobody = PeerTable(me.did, clock=clock, max_peers=0, pinned=frozenset({pin.did}))
    assert nobody.observe(ann(keys["d"], "join", 1, clock.now())) is None  # only pinned peers are kept
    assert nobody.observe(ann(pin, "join", 1, clock.now())).kind == "peer.joined"  # type: ignore[union-attr]


def test_the_event_budget_refills_with_time() -> None:
    clock = ManualClock()
    budget = EventBudget(burst=3, rate=0.5, clock=clock)
    assert [budget.take() for _ in range(4)] == [True, True, True, False]
    clock.advance(1)
    assert budget.take() is False  # half a token
    clock.advance(1)
    assert budget.take() is True
    clock.advance(100)
    assert [budget.take() for _ in range(4)] == [True, True, True, False]  # never more than the burst
