"""A placement's candidate table, sliced from columns the world keeps for every provider.

`market.table.CandidateTable(ads)` turns ads into numpy columns, checking every value as it goes: for the 32
sampled ads of one placement that cost more than the vectorized match itself. But the world re-issues a
provider's ad only when its capacity or state changes, so `Columns` writes each ad's row once, when the ad is
first seen, with the values and the exactness checks `CandidateTable` applies, and `table(ads)` slices the
sample's rows into a `SampledTable`: a `CandidateTable` whose columns equal `CandidateTable(ads)`'s, value and
dtype (tests/unit/sim/test_columns.py compares them, and `match_table`'s decisions on both). A row the columns
cannot hold exactly (an integer past 2**53, a time that is not an integer) makes `table` fall back to
`CandidateTable(ads)`; a price that is not exact leaves `prices` to the base class, which refuses it as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from agora.errors import AgoraError
from agora.market.table import EXACT, CandidateTable, Ints
from agora.wire.market import CapacityAd

# CandidateTable's integer columns, in the order `_ints_of` reads them from an ad
INT_COLUMNS = (
    "iat",
    "expires",
    "cpu",
    "memory",
    "disk",
    "gpu",
    "vram",
    "total_cpu",
    "total_memory",
    "total_gpu",
    "valid_from",
    "valid_until",
    "max_duration",
)
PRICE_FIELDS = ("cpu_second", "memory_gib_second", "gpu_second", "minimum")
Prices = tuple[Ints, Ints, Ints, Ints, tuple[int, int, int]]


def _exact(v: Any) -> bool:
    """What `market.table` admits in an integer column (a time column too: the world's times are integers)."""
    return isinstance(v, int) and not isinstance(v, bool) and -EXACT < v < EXACT


def _ints_of(ad: CapacityAd) -> tuple[Any, ...]:
    f, t, o = ad.free, ad.offer.resources, ad.offer
    d = o.terms.max_duration_s
    return (
        ad.iat,
        ad.expires_at,
        f.cpu_millis,
        f.memory_bytes,
        f.disk_bytes,
        f.gpu_count,
        f.gpu_vram_bytes,
        t.cpu_millis,
        t.memory_bytes,
        t.gpu_count,
        o.valid_from,
        o.valid_until,
        0 if d is None else d,
    )


class Columns:
    """Every provider's row of the candidate table, written when its current ad is first seen."""

    def __init__(self, engines: Sequence[str]) -> None:
        self._engines = tuple(engines)
        self._row: dict[str, int] = {}
        self._ads: list[CapacityAd | None] = []
        self._size = 0
        self._ints: NDArray[np.int64] = np.zeros((len(INT_COLUMNS), 0), dtype=np.int64)
        self._has_max: NDArray[np.bool_] = np.zeros(0, dtype=np.bool_)
        self._bench: NDArray[np.float64] = np.zeros(0, dtype=np.float64)
        self._prices: dict[str, NDArray[np.int64]] = {
            e: np.zeros((len(PRICE_FIELDS), 0), dtype=np.int64) for e in self._engines
        }
        self._odd: set[int] = set()  # rows whose integers are not exact: tables with them are built from ads
        self._odd_price: dict[str, set[int]] = {e: set() for e in self._engines}

    def _grow(self) -> None:
        cap = max(64, 2 * self._ints.shape[1])
        self._ints = np.concatenate([self._ints, np.zeros((len(INT_COLUMNS), cap - self._ints.shape[1]), np.int64)], 1)
        self._has_max = np.concatenate([self._has_max, np.zeros(cap - len(self._has_max), np.bool_)])
        self._bench = np.concatenate([self._bench, np.zeros(cap - len(self._bench), np.float64)])
        for e, arr in self._prices.items():
            self._prices[e] = np.concatenate([arr, np.zeros((len(PRICE_FIELDS), cap - arr.shape[1]), np.int64)], 1)

    def _write(self, ad: CapacityAd) -> int:
        r = self._row.get(ad.provider)
        if r is None:
            r = self._row[ad.provider] = self._size
            self._size += 1
            self._ads.append(None)
            if r >= self._ints.shape[1]:
                self._grow()
        self._ads[r] = ad
        values = _ints_of(ad)
        if all(_exact(v) for v in values):
            self._ints[:, r] = values
            self._odd.discard(r)
        else:
            self._odd.add(r)
        self._has_max[r] = ad.offer.terms.max_duration_s is not None
        self._bench[r] = float(ad.benchmark_score or 0.0)
        for e in self._engines:
            s = ad.offer.price.schedule_for(e)
            prices = tuple(getattr(s, name) for name in PRICE_FIELDS)
            if all(_exact(v) for v in prices):
                self._prices[e][:, r] = prices
                self._odd_price[e].discard(r)
            else:
                self._odd_price[e].add(r)
        return r

    def table(self, ads: Sequence[CapacityAd]) -> CandidateTable:
        """`CandidateTable(ads)`, sliced from the rows (written first for any ad not seen yet)."""
        rows = []
        for ad in ads:
            r = self._row.get(ad.provider)
            if r is None or self._ads[r] is not ad:
                r = self._write(ad)
            rows.append(r)
        if self._odd and not self._odd.isdisjoint(rows):
            return CandidateTable(ads)
        return SampledTable(self, tuple(ads), np.array(rows, dtype=np.intp))

    def _sliced_prices(self, engine: str, idx: NDArray[np.intp]) -> Prices | None:
        cols = self._prices.get(engine)
        if cols is None or not self._odd_price[engine].isdisjoint(idx.tolist()):
            return None
        c, m, g, minimum = (cols[i, idx] for i in range(len(PRICE_FIELDS)))
        top = (int(c.max()), int(m.max()), int(g.max())) if len(idx) else (0, 0, 0)
        return c, m, g, minimum, top


class SampledTable(CandidateTable):
    """A `CandidateTable` whose columns are sliced from `Columns` instead of read from the ads one by one."""

    def __init__(self, columns: Columns, ads: tuple[CapacityAd, ...], idx: NDArray[np.intp]) -> None:
        # not CandidateTable.__init__: the same attributes, from rows written and checked when each ad was issued
        self.ads = ads
        self.providers = tuple(a.provider for a in ads)
        self.row = {p: i for i, p in enumerate(self.providers)}
        if len(self.row) != len(ads):
            raise AgoraError("invalid_argument", "two ads of one provider: the index keeps one per provider")
        n = self.n = len(ads)
        self.rank = np.empty(n, dtype=np.int64)
        self.rank[sorted(range(n), key=self.providers.__getitem__)] = np.arange(n, dtype=np.int64)
        self._memo = {}
        self.exact = True
        ints = columns._ints[:, idx]
        (
            self.iat,
            self.expires,
            self.cpu,
            self.memory,
            self.disk,
            self.gpu,
            self.vram,
            self.total_cpu,
            self.total_memory,
            self.total_gpu,
            self.valid_from,
            self.valid_until,
            self.max_duration,
        ) = (np.ascontiguousarray(ints[i]) for i in range(len(INT_COLUMNS)))
        self.has_max_duration = columns._has_max[idx]
        self.bench0 = columns._bench[idx]
        self._columns = columns
        self._idx = idx

    def prices(self, engine: str) -> Prices | None:
        got = self._columns._sliced_prices(engine, self._idx)
        return got if got is not None else super().prices(engine)


__all__ = ["Columns", "SampledTable"]
