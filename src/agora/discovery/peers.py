"""The peer table: who this node has heard from, what they announced, and when (pure, no I/O).

Two-step use, so a state change and its event are one step: `assess(ann)` / `due()` say what an
announcement or the passing of time would change (an `Update`, nothing applied yet); the caller records
the update's events and then `apply`s it. `observe` and `sweep` do both at once for callers without events.

Lost is judged from each peer's own announced interval (`missed_beats` of them, the interval clamped to
`[min_interval, max_interval]` so no peer can announce itself alive forever); an announcement without an
interval (an older node) is judged by the table's `lost_after`.

The table is bounded: at most `max_peers` peers besides the pinned ones. A newcomer past the bound evicts
the least valuable stranger: a lost or departed one first, then one heard from only once, then the one
heard from least recently. Pinned peers (operator-chosen DIDs) are never evicted.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from agora.clock import SYSTEM_CLOCK, Clock
from agora.wire import Announcement

DEFAULT_MAX_PEERS = 1024
MISSED_BEATS = 3.0
MIN_INTERVAL = 0.1  # seconds; a shorter announced interval counts as this
MAX_INTERVAL = 60.0  # seconds; a longer one counts as this, so a peer is lost at most 3 minutes after it fell silent


@dataclass
class Peer:
    did: str
    version: str
    hubs: tuple[str, ...]
    capabilities: dict[str, Any]
    first_seen: float
    last_seen: float
    last_seq: int
    last_ts: int = 0
    status: str = "alive"  # alive | lost | left
    interval: float | None = None  # the heartbeat interval it announced; None: an older node
    seen: int = 1  # announcements accepted from it: a stranger heard from once is the first to be evicted

    def to_dict(self, now: float) -> dict[str, Any]:
        return {
            "did": self.did,
            "version": self.version,
            "hubs": list(self.hubs),
            "capabilities": self.capabilities,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "age_s": round(max(0.0, now - self.last_seen), 3),
            "status": self.status,
            "interval": self.interval,
        }


@dataclass
class Change:
    kind: str  # peer.joined | peer.left | peer.lost | peer.expired | peer.returned | peer.evicted
    did: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Update:
    """What one announcement or one sweep changes: peers to put (new or replaced), DIDs to drop, and the
    changes to record as events. Nothing is applied until `PeerTable.apply`."""

    changes: tuple[Change, ...] = ()
    put: tuple[Peer, ...] = ()
    drop: tuple[str, ...] = ()

    @property
    def change(self) -> Change | None:
        """The change about the announcing peer itself (the last one), if any."""
        return self.changes[-1] if self.changes else None


@dataclass
class PeerTable:
    """`lost_after`: silence after which a peer that announced no interval is lost (it may come back);
    `expire_after`: a lost or departed peer is dropped from the table entirely."""

    self_did: str
    lost_after: float = 15.0
    expire_after: float = 60.0
    max_age: float = 120.0  # announcements older than this (or this far in the future) are replays or bad clocks
    clock: Clock = SYSTEM_CLOCK
    max_peers: int = DEFAULT_MAX_PEERS  # not counting pinned peers
    pinned: frozenset[str] = frozenset()
    missed_beats: float = MISSED_BEATS
    min_interval: float = MIN_INTERVAL
    max_interval: float = MAX_INTERVAL
    _peers: dict[str, Peer] = field(default_factory=dict)

    def lost_after_for(self, peer: Peer) -> float:
        """How long `peer` may stay silent before it is lost: its own interval times `missed_beats`."""
        if peer.interval is None:
            return self.lost_after
        return self.missed_beats * min(self.max_interval, max(self.min_interval, peer.interval))

    def is_pinned(self, did: str) -> bool:
        return did in self.pinned

    # -- two-step: assess / due, then apply ---------------------------------------------------
    def assess(self, ann: Announcement) -> Update | None:
        """What a verified announcement would change; None when it changes nothing (stale, replayed,
        our own, or a departed stranger's leave)."""
        if ann.did == self.self_did:
            return None
        now = self.clock.now()
        if abs(now - ann.ts) > self.max_age:
            return None  # a recorded announcement replayed later, or a clock far off
        interval = ann.interval_ms / 1000.0 if ann.interval_ms is not None else None
        peer = self._peers.get(ann.did)
        if peer is not None:
            # a restarted node counts its seq from 1 again, so a join is newer when its time is; a heartbeat or
            # leave older than the last announcement accepted is stale whatever its seq, or the previous run's
            # (higher seqs, still within max_age) replayed after a restart would pass as newer than the new run's
            if ann.kind == "join":
                stale = (ann.ts, ann.seq) <= (peer.last_ts, peer.last_seq)
            else:
                stale = ann.seq <= peer.last_seq or ann.ts < peer.last_ts
            if stale:
                return None
        if ann.kind == "leave":
            if peer is None:
                return None
            left = dataclasses.replace(
                peer, status="left", last_seen=now, last_seq=ann.seq, last_ts=ann.ts, seen=peer.seen + 1
            )
            return Update((Change("peer.left", ann.did),), put=(left,))
        if peer is None:
            new = Peer(ann.did, ann.version, ann.hubs, ann.capabilities, now, now, ann.seq, ann.ts, interval=interval)
            admit, victim = self._room_for(ann.did)
            if not admit:
                return None  # full of peers that may not be evicted
            if victim is None:
                return Update((Change("peer.joined", ann.did),), put=(new,))
            return Update(
                (Change("peer.evicted", victim.did, {"status": victim.status}), Change("peer.joined", ann.did)),
                put=(new,),
                drop=(victim.did,),
            )
        updated = dataclasses.replace(
            peer,
            version=ann.version,
            hubs=ann.hubs,
            capabilities=ann.capabilities,
            last_seen=now,
            last_seq=ann.seq,
            last_ts=ann.ts,
            status="alive",
            interval=interval,
            seen=peer.seen + 1,
        )
        changes = (Change("peer.returned", ann.did),) if peer.status != "alive" else ()
        return Update(changes, put=(updated,))

    def due(self) -> Update:
        """What the passing of time changes: silent peers become lost, long-gone ones are dropped."""
        now = self.clock.now()
        changes: list[Change] = []
        put: list[Peer] = []
        drop: list[str] = []
        for did, peer in self._peers.items():
            silent = now - peer.last_seen
            if peer.status in ("lost", "left") and silent > self.expire_after:
                drop.append(did)
                changes.append(Change("peer.expired", did))
            elif peer.status == "alive" and silent > self.lost_after_for(peer):
                put.append(dataclasses.replace(peer, status="lost"))
                changes.append(Change("peer.lost", did))
        return Update(tuple(changes), tuple(put), tuple(drop))

    def apply(self, update: Update) -> None:
        for did in update.drop:
            self._peers.pop(did, None)
        for peer in update.put:
            self._peers[peer.did] = peer

    def _room_for(self, newcomer: str) -> tuple[bool, Peer | None]:
        """Whether a newcomer may enter, and the stranger it evicts to make room (None: there is room)."""
        if self.is_pinned(newcomer):
            return True, None  # pinned peers do not count against the bound
        strangers = [p for p in self._peers.values() if not self.is_pinned(p.did)]
        if len(strangers) < self.max_peers:
            return True, None
        if not strangers:
            return False, None  # max_peers is 0: only pinned peers are kept
        return True, min(strangers, key=lambda p: (p.status == "alive", p.seen > 1, p.last_seen, p.did))

    # -- one step, for callers that record no events -------------------------------------------
    def observe(self, ann: Announcement) -> Change | None:
        """Apply a verified announcement; return the change about its sender (stale ones are ignored)."""
        update = self.assess(ann)
        if update is None:
            return None
        self.apply(update)
        return update.change

    def sweep(self) -> list[Change]:
        """Mark silent peers lost and drop long-gone ones; call it periodically."""
        update = self.due()
        self.apply(update)
        return list(update.changes)

    # -- reading ------------------------------------------------------------------------------
    def get(self, did: str) -> Peer | None:
        return self._peers.get(did)

    def alive(self) -> list[Peer]:
        return [p for p in self._peers.values() if p.status == "alive"]

    def all(self) -> list[Peer]:
        return sorted(self._peers.values(), key=lambda p: p.did)

    def __len__(self) -> int:
        return len(self._peers)

    def snapshot(self) -> list[dict[str, Any]]:
        now = self.clock.now()
        return [p.to_dict(now) for p in self.all()]


__all__ = ["DEFAULT_MAX_PEERS", "MAX_INTERVAL", "MIN_INTERVAL", "MISSED_BEATS", "Change", "Peer", "PeerTable", "Update"]
