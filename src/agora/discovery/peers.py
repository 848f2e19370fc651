"""The peer table: who this node has heard from, what they announced, and when (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agora.clock import SYSTEM_CLOCK, Clock
from agora.wire import Announcement


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
        }


@dataclass
class Change:
    kind: str  # peer.joined | peer.left | peer.lost | peer.expired | peer.returned
    did: str


@dataclass
class PeerTable:
    """`lost_after`: no announcement for that long marks a peer lost (it may come back);
    `expire_after`: a lost or departed peer is dropped from the table entirely."""

    self_did: str
    lost_after: float = 15.0
    expire_after: float = 60.0
    max_age: float = 120.0  # announcements older than this (or this far in the future) are replays or bad clocks
    clock: Clock = SYSTEM_CLOCK
    _peers: dict[str, Peer] = field(default_factory=dict)

    def observe(self, ann: Announcement) -> Change | None:
        """Apply a verified announcement; stale (replayed or reordered) ones are ignored."""
        if ann.did == self.self_did:
            return None
        now = self.clock.now()
        if abs(now - ann.ts) > self.max_age:
            return None  # a recorded announcement replayed later, or a clock far off
        peer = self._peers.get(ann.did)
        if peer is not None:
            # a restarted node counts its seq from 1 again, so a join is newer when its time is
            if ann.kind == "join":
                stale = (ann.ts, ann.seq) <= (peer.last_ts, peer.last_seq)
            else:
                stale = ann.seq <= peer.last_seq
            if stale:
                return None
        if ann.kind == "leave":
            if peer is None:
                return None
            peer.status, peer.last_seen, peer.last_seq, peer.last_ts = "left", now, ann.seq, ann.ts
            return Change("peer.left", ann.did)
        if peer is None:
            self._peers[ann.did] = Peer(ann.did, ann.version, ann.hubs, ann.capabilities, now, now, ann.seq, ann.ts)
            return Change("peer.joined", ann.did)
        was = peer.status
        peer.version, peer.hubs, peer.capabilities = ann.version, ann.hubs, ann.capabilities
        peer.last_seen, peer.last_seq, peer.last_ts, peer.status = now, ann.seq, ann.ts, "alive"
        if was != "alive":
            return Change("peer.returned", ann.did)
        return None

    def sweep(self) -> list[Change]:
        """Mark silent peers lost and drop long-gone ones; call it periodically."""
        now = self.clock.now()
        changes = []
        for did, peer in list(self._peers.items()):
            silent = now - peer.last_seen
            if peer.status in ("lost", "left") and silent > self.expire_after:
                del self._peers[did]
                changes.append(Change("peer.expired", did))
            elif peer.status == "alive" and silent > self.lost_after:
                peer.status = "lost"
                changes.append(Change("peer.lost", did))
        return changes

    def get(self, did: str) -> Peer | None:
        return self._peers.get(did)

    def alive(self) -> list[Peer]:
        return [p for p in self._peers.values() if p.status == "alive"]

    def all(self) -> list[Peer]:
        return sorted(self._peers.values(), key=lambda p: p.did)

    def snapshot(self) -> list[dict[str, Any]]:
        now = self.clock.now()
        return [p.to_dict(now) for p in self.all()]


__all__ = ["Change", "Peer", "PeerTable"]
