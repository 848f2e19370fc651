"""The candidate table (pure, no I/O): the capacity ads as numpy columns, built once per index change.

`CandidateTable(ads)` turns the ads into columns once (free quantities, times, offer terms, DID ranks,
benchmark scores) and keeps, per table, the columns that depend on a categorical value of a job rather
than a number (its executors, arch, labels, location, gpu model, an engine's offer terms and prices, an
access policy, a constraint or affinity): built the first time a job asks, reused by the next decisions.
`fastmatch.match_table` decides over it. `TableCache` keeps the table of the last list of ads (the placer's,
rebuilt when an ad object changes).

A value the columns cannot hold exactly (an integer past 2**53) marks the table `exact = False`, and
`match_table` then falls back to the reference `match`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from agora.errors import AgoraError
from agora.models.capability import PriceSchedule
from agora.wire.market import CapacityAd

Mask = NDArray[np.bool_]
Ints = NDArray[np.int64]
Floats = NDArray[np.float64]

EXACT = 2**53  # integers up to here convert to float64 exactly, so numpy compares and divides as Python does
_MEMO_LIMIT = 512  # categorical columns kept per table (a new one past this clears the memo)


def memo_key(value: Any) -> Hashable:
    """A memo key that keeps 1, 1.0 and True apart (constraints compare numbers and strings differently)."""
    if isinstance(value, tuple | list):
        return tuple(memo_key(v) for v in value)
    return (type(value).__name__, value)


def _ints(values: Iterable[float]) -> Ints:
    arr = list(values)
    if any(isinstance(v, bool) or not isinstance(v, int) or not -EXACT < v < EXACT for v in arr):
        raise OverflowError("not an exact column")
    return np.array(arr, dtype=np.int64)


def _times(values: Iterable[float]) -> NDArray[Any]:
    arr = list(values)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in arr):
        return _ints(arr)
    if any(isinstance(v, int) and not -EXACT < v < EXACT for v in arr):
        raise OverflowError("not an exact column")
    return np.array(arr, dtype=np.float64)


class CandidateTable:
    """The ads as columns (one row per ad, in the order given), for `match_table`. Immutable once built:
    build a new one when the index changes (`TableCache` does it for a caller that re-reads the index)."""

    def __init__(self, ads: Iterable[CapacityAd]) -> None:
        self.ads: tuple[CapacityAd, ...] = tuple(ads)
        self.providers: tuple[str, ...] = tuple(a.provider for a in self.ads)
        self.row: dict[str, int] = {}
        for i, p in enumerate(self.providers):
            if p in self.row:
                raise AgoraError("invalid_argument", f"two ads of {p}: the index keeps one per provider")
            self.row[p] = i
        n = self.n = len(self.ads)
        self.rank: Ints = np.empty(n, dtype=np.int64)  # each row's place in DID order: the last tie-break
        self.rank[sorted(range(n), key=self.providers.__getitem__)] = np.arange(n, dtype=np.int64)
        self._memo: dict[Hashable, Any] = {}
        self.exact = True
        try:
            free = [a.free for a in self.ads]
            total = [a.offer.resources for a in self.ads]
            self.iat = _ints(a.iat for a in self.ads)
            self.expires = _ints(a.expires_at for a in self.ads)
            self.cpu = _ints(f.cpu_millis for f in free)
            self.memory = _ints(f.memory_bytes for f in free)
            self.disk = _ints(f.disk_bytes for f in free)
            self.gpu = _ints(f.gpu_count for f in free)
            self.vram = _ints(f.gpu_vram_bytes for f in free)
            self.total_cpu = _ints(t.cpu_millis for t in total)
            self.total_memory = _ints(t.memory_bytes for t in total)
            self.total_gpu = _ints(t.gpu_count for t in total)
            self.valid_from = _times(a.offer.valid_from for a in self.ads)
            self.valid_until = _times(a.offer.valid_until for a in self.ads)
            durations = [a.offer.terms.max_duration_s for a in self.ads]
            self.has_max_duration: Mask = np.array([d is not None for d in durations], dtype=np.bool_)
            self.max_duration = _ints(0 if d is None else d for d in durations)
        except (OverflowError, TypeError):
            self.exact = False
        scores = [a.benchmark_score for a in self.ads]
        self.bench0: Floats = np.array([float(b or 0.0) for b in scores], dtype=np.float64)  # `score or 0.0`

    def memo(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """A column derived from a categorical value of the job, built once per table."""
        try:
            return self._memo[key]
        except KeyError:
            pass
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        value = self._memo[key] = build()
        return value

    def column(self, key: Hashable, per_ad: Callable[[CapacityAd], bool]) -> Mask:
        return self.memo(key, lambda: np.fromiter((per_ad(a) for a in self.ads), dtype=np.bool_, count=self.n))  # type: ignore[no-any-return]

    def prices(self, engine: str) -> tuple[Ints, Ints, Ints, Ints, tuple[int, int, int]] | None:
        """The price schedule each row's offer applies to `engine` as columns (cpu, memory, gpu, minimum) and
        the largest of each rate; None when a price is not exact in int64."""

        def build() -> tuple[Ints, Ints, Ints, Ints, tuple[int, int, int]] | None:
            s: list[PriceSchedule] = [a.offer.price.schedule_for(engine) for a in self.ads]
            try:
                cols = [_ints(getattr(x, name) for x in s) for name in ("cpu_second", "memory_gib_second")]
                cols += [_ints(x.gpu_second for x in s), _ints(x.minimum for x in s)]
            except OverflowError:
                return None
            tops = tuple(max((getattr(x, n) for x in s), default=0) for n in ("cpu_second", "memory_gib_second"))
            top = (tops[0], tops[1], max((x.gpu_second for x in s), default=0))
            return cols[0], cols[1], cols[2], cols[3], top

        return self.memo(("prices", engine), build)  # type: ignore[no-any-return]

    def numbers(self, values: Mapping[str, float]) -> tuple[Mask, Floats]:
        """A per-provider mapping of the requester (trust, latency) as (known, value) columns: O(len(values))."""
        known: Mask = np.zeros(self.n, dtype=np.bool_)
        out: Floats = np.zeros(self.n, dtype=np.float64)
        row = self.row
        for provider, v in values.items():
            i = row.get(provider)
            if i is not None:
                known[i] = True
                out[i] = v
        return known, out


class TableCache:
    """The table of the last list of ads seen: rebuilt only when the list holds other ad objects (the index
    returns the same verified `CapacityAd` objects until an ad changes)."""

    def __init__(self) -> None:
        self._ads: list[CapacityAd] = []
        self._table: CandidateTable | None = None

    def table(self, ads: Sequence[CapacityAd]) -> CandidateTable:
        t = self._table
        if t is None or len(ads) != len(self._ads) or any(a is not b for a, b in zip(ads, self._ads, strict=True)):
            t = self._table = CandidateTable(ads)
            self._ads = list(ads)
        return t


__all__ = ["CandidateTable", "TableCache"]
