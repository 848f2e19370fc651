"""`TrustBook`: the requester's durable evidence about providers, and the scores it gives (`trust.py`).

Each `Evidence` is a document of the collection `trust_evidence` (id = a hash of provider, kind and what it
cites, so recording the same thing twice changes nothing), written together with a `trust.evidence` event in
one transaction. The latency estimate of each provider (an EWMA of the bid round trips this node measured)
is a document of `trust_latency`. Both live in the node's store (SQLite), so they survive a restart;
`load()` reads them back into memory at start, and every score is computed from those records with the
pure functions of `trust.py` at the time asked (no stored score to go stale).

Memory is bounded: at most `max_records` records per provider stay in memory (the newest; older ones have
decayed to almost nothing and are still in the store).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agora.clock import SYSTEM_CLOCK, Clock
from agora.ledger.trust import Evidence, TrustReport, TrustSettings, ewma, report
from agora.store import Store

EVIDENCE = "trust_evidence"
LATENCY = "trust_latency"
MAX_RECORDS = 1000  # per provider, in memory
LOAD_LIMIT = 1_000_000  # a bound for the start-up read
PAGE = 10_000  # the store's largest page


@dataclass(frozen=True)
class TrustView:
    """What matching needs, at one moment: scores of known providers, the prior for the others, the
    latency estimates and the providers cooling down (until when)."""

    trust: Mapping[str, float]
    prior: float
    latency_ms: Mapping[str, float]
    cooling_down: Mapping[str, float]


class TrustBook:
    def __init__(
        self,
        store: Store,
        *,
        clock: Clock = SYSTEM_CLOCK,
        settings: TrustSettings | None = None,
        max_records: int = MAX_RECORDS,
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings or TrustSettings()
        self.max_records = max_records
        self._records: dict[str, list[Evidence]] = {}
        self._ids: set[str] = set()
        self._latency: dict[str, float] = {}
        self._lock = asyncio.Lock()
        self._version = 0  # bumped by every change: the cached view is for one version and one second
        self._cached: tuple[tuple[int, int], TrustView] | None = None

    async def load(self) -> int:
        """Read the stored evidence and latency back (at start); returns how many records."""
        self._records.clear()
        self._ids.clear()
        self._latency.clear()
        self._version += 1
        n = 0
        for page in range(LOAD_LIMIT // PAGE):  # bounded paging, oldest first
            docs = await self.store.query(EVIDENCE, None, order_by="at", limit=PAGE, offset=page * PAGE)
            for d in docs:
                self._keep(Evidence.from_dict(d))
            n += len(docs)
            if len(docs) < PAGE:
                break
        for page in range(LOAD_LIMIT // PAGE):
            docs = await self.store.query(LATENCY, None, limit=PAGE, offset=page * PAGE)
            for d in docs:
                self._latency[str(d["provider"])] = float(d["ewma_ms"])
            if len(docs) < PAGE:
                break
        return n

    def _keep(self, ev: Evidence) -> None:
        self._version += 1
        self._ids.add(ev.id)
        rows = self._records.setdefault(ev.provider, [])
        rows.append(ev)
        if len(rows) > self.max_records:
            rows.sort(key=lambda r: r.at)
            del rows[: len(rows) - self.max_records]

    async def record(self, ev: Evidence) -> bool:
        """Keep `ev` (durably, with a `trust.evidence` event); False when the same record was already kept."""
        async with self._lock:
            if ev.id in self._ids:
                return False
            doc = ev.to_dict()
            async with self.store.transaction():
                if await self.store.get(EVIDENCE, ev.id) is not None:
                    self._ids.add(ev.id)
                    return False
                await self.store.put(EVIDENCE, ev.id, doc)
                await self.store.append_event("trust.evidence", ev.provider, doc)
            self._keep(ev)
            return True

    async def observe_latency(self, provider: str, ms: float) -> float:
        """One measured bid round trip of `provider`: the EWMA after it (kept durably)."""
        async with self._lock:
            value = ewma(self._latency.get(provider), max(0.0, float(ms)), self.settings.latency_alpha)
            self._latency[provider] = value
            self._version += 1
            await self.store.put(LATENCY, provider, {"provider": provider, "ewma_ms": value, "at": self.clock.now()})
            return value

    def records(self, provider: str) -> list[Evidence]:
        return sorted(self._records.get(provider, []), key=lambda r: (r.at, r.id))

    def providers(self) -> list[str]:
        return sorted(set(self._records) | set(self._latency))

    def report(self, provider: str, now: float | None = None) -> TrustReport:
        at = self.clock.now() if now is None else now
        return report(
            provider, self._records.get(provider, ()), at, self.settings, latency_ms=self._latency.get(provider)
        )

    def reports(self, now: float | None = None) -> list[TrustReport]:
        return [self.report(p, now) for p in self.providers()]

    def view(self, now: float | None = None, providers: Iterable[str] | None = None) -> TrustView:
        """Matching's inputs at `now` (for `providers`, else every provider with evidence; that one is
        computed at most once a second while nothing is recorded: every placement round reads it)."""
        at = self.clock.now() if now is None else now
        key = (self._version, math.floor(at))
        if providers is None and self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        trust: dict[str, float] = {}
        cooling: dict[str, float] = {}
        for p in self.providers() if providers is None else providers:
            if p not in self._records:
                continue
            r = self.report(p, at)
            trust[p] = r.score
            if r.penalty.cooling_until is not None:
                cooling[p] = r.penalty.cooling_until
        view = TrustView(trust, self.settings.prior, dict(self._latency), cooling)
        if providers is None:
            self._cached = (key, view)
        return view


__all__ = ["EVIDENCE", "LATENCY", "TrustBook", "TrustView"]
