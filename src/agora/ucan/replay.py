"""The replay cache: remembers every accepted invocation's CID until it could no longer be accepted.

An invocation is accepted until `exp + skew`, so its CID is kept exactly that long; after that the
validator rejects it as expired anyway and the entry can go. Memory is bounded: expired entries are
evicted first (a min-heap on expiry makes that cheap), and when the cache is full of live entries it
refuses new invocations (`ucan_replay_cache_full`, retryable) instead of forgetting a live one,
because forgetting would silently re-open a replay window. For the same reason an invocation
without `exp`, or one that lives longer than `max_lifetime`, is refused (`ucan_lifetime_invalid`):
no bounded cache could remember it for as long as it stays valid.

Shares keep one class of callers from filling the cache for everyone. A caller names the share an
entry goes to (the actor runtime uses one for invocations proven by a delegation from the node and
one for public behaviors, which anyone with a fresh key can call) and its issuer: a full share
refuses only its own class (`ucan_replay_cache_full`, naming the share), and an issuer over its quota
within a share is refused alone (`rate_limited`). Without a share the cache is one pool, as before.

Pure: no clock, no I/O (callers pass `now`); persistence across restarts is the runtime's job.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from agora.codec import CID
from agora.errors import AgoraError

MAX_LIFETIME = 600.0
"""The longest `exp - now` an invocation may have (agora itself sends now + 300 s)."""


@dataclass(frozen=True, slots=True)
class ReplayShare:
    """A bounded part of the cache: at most `max_entries` live entries, at most `per_issuer` of one issuer."""

    max_entries: int
    per_issuer: int

    def __post_init__(self) -> None:
        if self.max_entries < 1 or self.per_issuer < 1:
            raise ValueError("a replay share needs max_entries >= 1 and per_issuer >= 1")


@dataclass(slots=True)
class _Entry:
    expiry: float
    share: str | None
    issuer: str | None


class ReplayCache:
    """CIDs of accepted invocations, each kept until its `exp + skew`. Thread-safe."""

    def __init__(
        self,
        max_entries: int = 500_000,
        max_lifetime: float = MAX_LIFETIME,
        skew: float = 60.0,
        shares: Mapping[str, ReplayShare] | None = None,
    ) -> None:
        if max_entries < 1 or max_lifetime <= 0 or skew < 0:
            raise ValueError("max_entries >= 1, max_lifetime > 0 and skew >= 0 are required")
        self.max_entries = max_entries
        self.max_lifetime = max_lifetime
        self.skew = skew
        self.shares: dict[str, ReplayShare] = dict(shares or {})
        self._entries: dict[bytes, _Entry] = {}
        self._heap: list[tuple[float, bytes]] = []
        self._in_share: dict[str, int] = {}
        self._by_issuer: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, cid: object) -> bool:
        return isinstance(cid, CID) and bytes(cid) in self._entries

    def share_size(self, share: str) -> int:
        """Live entries in `share` (expired ones not yet purged included)."""
        return self._in_share.get(share, 0)

    def issuer_entries(self, share: str, issuer: str) -> int:
        """How many entries `issuer` holds in `share`."""
        return self._by_issuer.get((share, issuer), 0)

    def _drop(self, key: bytes) -> None:
        entry = self._entries.pop(key)
        if entry.share is not None:
            self._in_share[entry.share] -= 1
            if entry.issuer is not None:
                k = (entry.share, entry.issuer)
                left = self._by_issuer[k] - 1
                if left:
                    self._by_issuer[k] = left
                else:
                    del self._by_issuer[k]

    def _purge(self, now: float) -> None:
        heap, entries = self._heap, self._entries
        while heap and heap[0][0] < now:
            expiry, key = heapq.heappop(heap)
            entry = entries.get(key)
            if entry is not None and entry.expiry == expiry:
                self._drop(key)

    def check_and_remember(
        self,
        cid: CID,
        exp: int | None,
        now: float,
        skew: float | None = None,
        *,
        share: str | None = None,
        issuer: str | None = None,
        max_lifetime: float | None = None,
    ) -> None:
        """Raise `ucan_replayed` if `cid` is still remembered; otherwise remember it until `exp + skew`.

        `skew` defaults to the cache's; the validator passes its own so both agree on the window.
        `share` (a key of `shares`) and `issuer` put the entry under that share's limits;
        `max_lifetime` lowers the cache's for this entry (public behaviors take short-lived tokens).
        """
        longest = self.max_lifetime if max_lifetime is None else min(max_lifetime, self.max_lifetime)
        if exp is None:
            raise AgoraError("ucan_lifetime_invalid", "the invocation has no exp, so a replay could never be ruled out")
        if exp - now > longest:
            raise AgoraError(
                "ucan_lifetime_invalid",
                f"the invocation expires {exp - now:.0f} s from now; at most {longest:.0f} s is accepted",
                details={"max_lifetime_s": longest},
            )
        limits = None
        if share is not None:
            limits = self.shares.get(share)
            if limits is None:
                raise ValueError(f"unknown replay share {share!r}")
        key = bytes(cid)
        expiry = float(exp) + (self.skew if skew is None else max(skew, 0.0))
        with self._lock:
            self._purge(now)  # amortized: pops only entries that have expired
            known = self._entries.get(key)
            if known is not None and known.expiry >= now:
                raise AgoraError("ucan_replayed", f"invocation {cid} was already accepted")
            if len(self._entries) >= self.max_entries:
                raise AgoraError(
                    "ucan_replay_cache_full",
                    f"{len(self._entries)} live invocations remembered (max {self.max_entries})",
                    details={"share": "all"},
                )
            if limits is not None and share is not None:
                held = self._in_share.get(share, 0)
                if held >= limits.max_entries:
                    raise AgoraError(
                        "ucan_replay_cache_full",
                        f"the {share} share holds {held} live invocations (max {limits.max_entries})",
                        details={"share": share},
                    )
                if issuer is not None and self._by_issuer.get((share, issuer), 0) >= limits.per_issuer:
                    raise AgoraError(
                        "rate_limited",
                        f"{issuer} has {limits.per_issuer} live invocations here ({share}); wait for some to expire",
                        details={"share": share, "issuer": issuer},
                    )
                self._in_share[share] = held + 1
                if issuer is not None:
                    self._by_issuer[(share, issuer)] = self._by_issuer.get((share, issuer), 0) + 1
            self._entries[key] = _Entry(expiry, share if limits is not None else None, issuer)
            heapq.heappush(self._heap, (expiry, key))

    def forget(self, cid: CID) -> bool:
        """Drop `cid` (an invocation accepted here that was then not run, so a resend is no replay)."""
        with self._lock:
            if bytes(cid) not in self._entries:
                return False
            self._drop(bytes(cid))
            return True

    def purge(self, now: float) -> int:
        """Drop entries that can no longer be replayed; returns how many remain."""
        with self._lock:
            self._purge(now)
            return len(self._entries)


__all__ = ["MAX_LIFETIME", "ReplayCache", "ReplayShare"]
