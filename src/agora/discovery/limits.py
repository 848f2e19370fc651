"""Bounds on what strangers can make a node do: a token bucket for the events they cause (pure, clock-driven)."""

from __future__ import annotations

from dataclasses import dataclass, field

from agora.clock import SYSTEM_CLOCK, Clock


@dataclass
class EventBudget:
    """At most `burst` events at once, refilled at `rate` per second; `take()` says whether one may be spent."""

    burst: float = 64.0
    rate: float = 1.0
    clock: Clock = SYSTEM_CLOCK
    _tokens: float = field(default=-1.0, init=False)
    _at: float = field(default=0.0, init=False)

    def take(self) -> bool:
        now = self.clock.now()
        if self._tokens < 0:  # first use: a full bucket
            self._tokens, self._at = self.burst, now
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


__all__ = ["EventBudget"]
