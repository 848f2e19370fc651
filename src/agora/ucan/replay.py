"""The replay cache: remembers every accepted invocation's CID until it could no longer be accepted.

An invocation is accepted until `exp + skew`, so its CID is kept exactly that long; after that the
validator rejects it as expired anyway and the entry can go. Memory is bounded: expired entries are
evicted first (a min-heap on expiry makes that cheap), and when the cache is full of live entries it
refuses new invocations (`ucan_replay_cache_full`, retryable) instead of forgetting a live one,
because forgetting would silently re-open a replay window. For the same reason an invocation
without `exp`, or one that lives longer than `max_lifetime`, is refused (`ucan_lifetime_invalid`):
no bounded cache could remember it for as long as it stays valid.
"""

from __future__ import annotations

import heapq
import threading

from agora.codec import CID
from agora.errors import AgoraError


class ReplayCache:
    """CIDs of accepted invocations, each kept until its `exp + skew`. Thread-safe."""

    def __init__(self, max_entries: int = 500_000, max_lifetime: float = 3600.0, skew: float = 60.0) -> None:
        if max_entries < 1 or max_lifetime <= 0 or skew < 0:
            raise ValueError("max_entries >= 1, max_lifetime > 0 and skew >= 0 are required")
        self.max_entries = max_entries
        self.max_lifetime = max_lifetime
        self.skew = skew
        self._until: dict[bytes, float] = {}
        self._heap: list[tuple[float, bytes]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._until)

    def __contains__(self, cid: object) -> bool:
        return isinstance(cid, CID) and bytes(cid) in self._until

    def _purge(self, now: float) -> None:
        heap, until = self._heap, self._until
        while heap and heap[0][0] < now:
            expiry, key = heapq.heappop(heap)
            if until.get(key) == expiry:
                del until[key]

    def check_and_remember(self, cid: CID, exp: int | None, now: float, skew: float | None = None) -> None:
        """Raise `ucan_replayed` if `cid` is still remembered; otherwise remember it until `exp + skew`.

        `skew` defaults to the cache's; the validator passes its own so both agree on the window.
        """
        if exp is None:
            raise AgoraError("ucan_lifetime_invalid", "the invocation has no exp, so a replay could never be ruled out")
        if exp - now > self.max_lifetime:
            raise AgoraError(
                "ucan_lifetime_invalid",
                f"the invocation expires {exp - now:.0f} s from now; at most {self.max_lifetime:.0f} s is accepted",
            )
        key = bytes(cid)
        expiry = float(exp) + (self.skew if skew is None else max(skew, 0.0))
        with self._lock:
            self._purge(now)  # amortized: pops only entries that have expired
            known = self._until.get(key)
            if known is not None and known >= now:
                raise AgoraError("ucan_replayed", f"invocation {cid} was already accepted")
            if len(self._until) >= self.max_entries:
                raise AgoraError(
                    "ucan_replay_cache_full",
                    f"{len(self._until)} live invocations remembered (max {self.max_entries})",
                )
            self._until[key] = expiry
            heapq.heappush(self._heap, (expiry, key))

    def purge(self, now: float) -> int:
        """Drop entries that can no longer be replayed; returns how many remain."""
        with self._lock:
            self._purge(now)
            return len(self._until)


__all__ = ["ReplayCache"]
