"""`StakeView`: what the requester knows of its candidates' stake at the hub's ledger, for `placement.min_stake`.

A round of matching asks the hub once for every candidate it does not know recently (`Settlement.stakes`, one
batched call, never one per candidate) and keeps each answer for `max_age_s`: a provider that unstaked is
seen within that bound (the staleness a job accepts: the hub's ledger is the truth, matching only filters).
A hub that does not answer leaves those stakes unknown, and unknown never passes a `min_stake`
(`stake_below_min: need N, has unknown`): a job that asked for stake is not placed on a provider that may
have none. The cache is bounded (`max_entries`, the oldest answers dropped first).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from agora.clock import SYSTEM_CLOCK, Clock
from agora.errors import AgoraError
from agora.ledger.interfaces import Settlement

log = logging.getLogger("agora.orchestrator.stakes")

DEFAULT_MAX_AGE_S = 30.0
MAX_ENTRIES = 10_000
MAX_ASKED = 256  # DIDs in one call (the hub's limit, wire.ledger.MAX_STAKES)


class StakeView:
    def __init__(
        self,
        settlement: Settlement,
        *,
        clock: Clock = SYSTEM_CLOCK,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.settlement = settlement
        self.clock = clock
        self.max_age_s = max_age_s
        self.max_entries = max_entries
        self._known: dict[str, tuple[float, int]] = {}  # did -> (when asked, stake)
        self.calls = 0  # calls made to the hub (the batching is observable)

    async def of(self, dids: Iterable[str]) -> dict[str, int]:
        """The stake of each DID known now (fresh from the cache, else asked in one call); a DID the hub did
        not answer for is left out (unknown)."""
        now = self.clock.now()
        wanted = list(dict.fromkeys(dids))
        stale = [d for d in wanted if d not in self._known or now - self._known[d][0] > self.max_age_s]
        for start in range(0, len(stale), MAX_ASKED):
            batch = stale[start : start + MAX_ASKED]
            self.calls += 1
            try:
                found = await self.settlement.stakes(batch)
            except AgoraError as err:
                log.warning("stakes of %d candidates unknown: %s", len(batch), err)
                continue
            for did in batch:
                if did in found:
                    self._known.pop(did, None)
                    self._known[did] = (now, found[did])
        found = {d: self._known[d][1] for d in wanted if d in self._known and now - self._known[d][0] <= self.max_age_s}
        while len(self._known) > self.max_entries:  # the oldest answers go first
            self._known.pop(next(iter(self._known)))
        return found


__all__ = ["DEFAULT_MAX_AGE_S", "StakeView"]
