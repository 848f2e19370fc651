"""Admission limits of the runtime: no caller, known or unknown, can deny service to the others.

Every accepted invocation costs an entry in the replay cache until it expires, and that cache is
bounded (a cache that forgot live entries would re-open replays). So the cache is split:

- the **granted** share holds invocations proven by a delegation from this node (the operator chose
  these callers), and the public calls of issuers that currently hold such entries; its quota is per
  principal the node delegated to (the audience of the chain's root), so re-delegating to fresh keys
  does not multiply it;
- the **public** share holds public behaviors (ping, info...) from everyone else: any fresh key can call
  them, so fresh keys together get only this bounded share, and each key at most `public_per_issuer`
  live entries in it.

A full share refuses only its own class (`ucan_replay_cache_full`); an issuer over its quota is refused
alone (`rate_limited`). Public behaviors are also rate limited per issuer (a token bucket, after the
signature is verified, so nobody can spend another's budget), and take only short-lived invocations
(`public_max_lifetime`), so a flood's entries drain within minutes. A refusal by the rate limit names
when the issuer's next token is back (`details.retry_after_s`), so a polite caller (`agora node ping`)
paces itself instead of failing. Every limit hit is recorded
(`LimitLog`): the node's `/health` says which limit was hit, and is degraded while a shared limit
(a full share) refuses others.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from agora.ucan import MAX_LIFETIME, ReplayShare

GRANTED = "granted"
PUBLIC = "public"
SHARED_LIMITS = frozenset({"replay_share_full"})  # limits that refuse callers other than the offender


@dataclass(frozen=True)
class AdmissionSettings:
    """Bounds of the replay cache and of public behaviors (defaults sized for a busy public node)."""

    max_lifetime: float = MAX_LIFETIME  # longest exp - now of any invocation
    public_max_lifetime: float = 120.0  # longest exp - now of a public invocation
    granted_entries: int = 400_000  # replay-cache entries for invocations proven by a delegation
    granted_per_issuer: int = 20_000
    public_entries: int = 100_000  # replay-cache entries for everyone else's public calls
    public_per_issuer: int = 2_000
    public_rate: float = 20.0  # public calls per second and issuer (token bucket refill)
    public_burst: float = 100.0  # agora node ping --count 100 fits
    rate_issuers: int = 100_000  # issuers whose bucket is remembered (LRU: a forgotten one starts full)
    report_window: float = 60.0  # how long a limit hit keeps /health degraded

    def __post_init__(self) -> None:
        if not 0 < self.public_max_lifetime <= self.max_lifetime:
            raise ValueError("0 < public_max_lifetime <= max_lifetime is required")
        if self.public_rate <= 0 or self.public_burst < 1 or self.rate_issuers < 1 or self.report_window <= 0:
            raise ValueError("public_rate > 0, public_burst >= 1, rate_issuers >= 1 and report_window > 0")

    def shares(self) -> dict[str, ReplayShare]:
        return {
            GRANTED: ReplayShare(self.granted_entries, self.granted_per_issuer),
            PUBLIC: ReplayShare(self.public_entries, self.public_per_issuer),
        }

    @property
    def total_entries(self) -> int:
        return self.granted_entries + self.public_entries


class RateLimiter:
    """One token bucket per key, `rate` tokens a second up to `burst`; the `max_keys` most recent kept."""

    def __init__(self, rate: float, burst: float, max_keys: int) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, key: str, now: float) -> bool:
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return allowed

    def retry_after(self, key: str, now: float) -> float:
        """Seconds from `now` until `key` has a whole token again (0: it has one now). A refused caller
        is told this (`rate_limited`, `details.retry_after_s`), so a well-behaved one paces itself."""
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
        return max(0.0, (1.0 - tokens) / self.rate)

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass
class _Hits:
    count: int
    last_at: float
    detail: str


class LimitLog:
    """Which limits refused something, how often, and when last: what /health reports."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._hits: dict[str, _Hits] = {}

    def hit(self, limit: str, detail: str, now: float) -> None:
        h = self._hits.get(limit)
        if h is None:
            self._hits[limit] = _Hits(1, now, detail)
        else:
            h.count, h.last_at, h.detail = h.count + 1, now, detail

    def report(self, now: float) -> dict[str, dict[str, Any]]:
        """Every limit ever hit: total refusals, the last one's time and message, and whether it is recent."""
        return {
            name: {
                "refused": h.count,
                "last_at": h.last_at,
                "last": h.detail,
                "recent": now - h.last_at <= self.window,
            }
            for name, h in sorted(self._hits.items())
        }

    def degraded(self, now: float) -> list[str]:
        """Reasons to report the node degraded: shared limits hit within the window."""
        return [
            f"{name}: {h.detail}"
            for name, h in sorted(self._hits.items())
            if name in SHARED_LIMITS and now - h.last_at <= self.window
        ]


__all__ = ["GRANTED", "PUBLIC", "SHARED_LIMITS", "AdmissionSettings", "LimitLog", "RateLimiter"]
