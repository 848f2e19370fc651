"""The fast path of matching (pure, no I/O): `match_table`, the same decision as `match` over a `CandidateTable`.

`match(job, ads, ...)` walks every ad in Python and builds every reason's sentence: ~74 decisions/s at 1,000
ads. `CandidateTable(ads)` (`table.py`) turns the ads into columns once (free quantities, times, offer terms, prices per
engine, benchmark scores, DID ranks) and `match_table(job, table, policy, now=...)` decides with numpy over
whole columns: one boolean mask per reason code (so the counts per reason are exact), the soft score of the
passing rows, the strategy's top k by `argpartition` plus an exact sort of the few rows that can tie (ties
fall to the DID as in `match`), and `what_would_fit`. What depends on a categorical value of the job rather
than a number (its executors, arch, labels, location, gpu model, an engine's offer terms and prices, an
access policy, a constraint or affinity) is computed once per value and kept with the table.

The result is a `Decision` equal to `match`'s for the same inputs (a hypothesis test compares them):
`strategy`, `chosen`, `counts` and `what_would_fit` are computed at once; `candidates` (every verdict, with
its reasons' sentences and score breakdown) is built the first time it is read, from the same masks and
scores and with `hard_filter` for the reasons of a rejected ad, so the texts are the reference's own.
`head(limit)` / `to_dict(limit=...)` (the placer's `why` keeps 50) and `passed` build only what they return;
a whole `why` costs what `match` costs, but a placement no longer pays for 1,000 sentences to ask 3 bids.

Anything the columns cannot hold exactly (an integer past 2**53, a price schedule whose cost could overflow
int64), a `MatchPolicy` or `JobNeed` field this module does not know (added later, set to a non-default
value), or a strategy not listed in `_PRIMARY` is not guessed at: the decision falls back to `match` (for the
strategy: the filter stays vectorized and the order is sorted in Python). The fallbacks are correct, only slower.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from agora.errors import AgoraError
from agora.market.diagnostics import MAX_SUGGESTIONS, Decision, Suggestion, Verdict, relax
from agora.market.matching import JobNeed, MatchPolicy, _matches, hard_filter, match
from agora.market.strategies import Balanced, Binpack, Cheapest, Fastest, Scored, Spread, Strategy, strategy
from agora.market.table import EXACT, CandidateTable, Floats, Ints, Mask, memo_key
from agora.models.capability import GiB, gpu_model_matches, location_matches
from agora.resources.comparator import COMPONENTS, ScorePart, Weights

_INT64 = 2**63
_COST_UNIT = 1000 * GiB  # PriceSchedule.cost: numerator over (1000 * GiB), rounded up
_MANY = frozenset({"policy_refused", "label_missing", "constraint_failed"})  # codes a row may fail more than once

# the first element of each built-in strategy's key as a column (sign, slack for the key's rounding): every
# row whose column is within `slack` of the k-th smallest may tie with it once rounded, and is sorted exactly
_PRIMARY: dict[type, tuple[str, float, float]] = {
    Balanced: ("score", -1.0, 1e-11),
    Cheapest: ("quote", 1.0, 0.0),
    Fastest: ("bench", -1.0, 0.0),
    Binpack: ("util", -1.0, 1e-8),
    Spread: ("util", 1.0, 1e-8),
}
# the MatchPolicy fields read here; `default_trust` (the prior of a provider with no evidence) and `cooling_down`
# (provider -> excluded until) are read with getattr: the trust work adds them to MatchPolicy
_KNOWN_POLICY = frozenset(
    {
        "k",
        "stale_after_s",
        "trust",
        "latency_ms",
        "requester_trust",
        "weights",
        "affinity_weight",
        "default_trust",
        "cooling_down",
        "stakes",
    }
)
_KNOWN_JOB = frozenset(
    {
        "need",
        "engine",
        "duration_s",
        "requester",
        "constraints",
        "affinities",
        "max_price",
        "budget",
        "min_trust",
        "min_stake",
        "strategy",
    }
)


def _defaults(cls: Any, known: frozenset[str]) -> tuple[tuple[str, Any], ...]:
    """The fields of `cls` this module does not read, with their defaults (a non-default value: fall back)."""
    out = []
    for f in dataclasses.fields(cls):
        if f.name in known:
            continue
        if f.default is not dataclasses.MISSING:
            out.append((f.name, f.default))
        elif f.default_factory is not dataclasses.MISSING:
            out.append((f.name, f.default_factory()))
        else:
            out.append((f.name, dataclasses.MISSING))  # required: never the default
    return tuple(out)


_OTHER_POLICY = _defaults(MatchPolicy, _KNOWN_POLICY)
_OTHER_JOB = _defaults(JobNeed, _KNOWN_JOB)


def _unknown_set(obj: Any, others: tuple[tuple[str, Any], ...]) -> bool:
    return any(getattr(obj, name) != default for name, default in others)


# ---- the decision -------------------------------------------------------------------------------------


class TableDecision(Decision):
    """A `Decision` whose candidates are built when first read (see the module doc); equal to the `Decision`
    `match` returns for the same inputs."""

    def __init__(
        self,
        *,
        strategy: str,
        chosen: tuple[str, ...],
        counts: Mapping[str, int],
        what_would_fit: tuple[Suggestion, ...],
        build: Callable[[], tuple[Verdict, ...]],
        head: Callable[[int], tuple[Verdict, ...]],
        sizes: tuple[int, int],
    ) -> None:
        object.__setattr__(self, "strategy", strategy)
        object.__setattr__(self, "chosen", chosen)
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "what_would_fit", what_would_fit)
        object.__setattr__(self, "_build", build)
        object.__setattr__(self, "_head", head)
        object.__setattr__(self, "_size", sizes)
        object.__setattr__(self, "_candidates", None)

    @property
    def candidates(self) -> tuple[Verdict, ...]:
        got: tuple[Verdict, ...] | None = self.__dict__["_candidates"]
        if got is None:
            got = self.__dict__["_build"]()
            object.__setattr__(self, "_candidates", got)
        return got

    def head(self, limit: int) -> tuple[Verdict, ...]:
        """The first `limit` candidates, built alone (the rest stay unbuilt) unless all are built already."""
        got: tuple[Verdict, ...] | None = self.__dict__["_candidates"]
        return got[:limit] if got is not None else self.__dict__["_head"](limit)

    def _sizes(self) -> tuple[int, int]:
        return self.__dict__["_size"]  # type: ignore[no-any-return]

    @property
    def passed(self) -> tuple[Verdict, ...]:
        """The passing candidates in order, built without the rejected ones' sentences."""
        return self.head(self._sizes()[1])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Decision):
            return NotImplemented
        return (self.strategy, self.chosen, self.candidates, dict(self.counts), self.what_would_fit) == (
            other.strategy,
            other.chosen,
            other.candidates,
            dict(other.counts),
            other.what_would_fit,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"TableDecision(strategy={self.strategy!r}, chosen={self.chosen!r}, counts={dict(self.counts)!r}, "
            f"considered={self._sizes()[0]}, passed={self._sizes()[1]})"
        )


def _fallback(job: JobNeed, table: CandidateTable, pol: MatchPolicy) -> bool:
    return not table.exact or _unknown_set(pol, _OTHER_POLICY) or _unknown_set(job, _OTHER_JOB)


def match_table(job: JobNeed, table: CandidateTable, policy: MatchPolicy | None = None, *, now: float) -> Decision:
    """`match(job, table.ads, policy, now=now)`, computed over the table's columns (see the module doc)."""
    pol = policy or MatchPolicy()
    strat = strategy(job.strategy)
    if _fallback(job, table, pol) or not (-EXACT < now < EXACT):
        return match(job, table.ads, pol, now=now)
    fails = _hard_filter(job, table, pol, now)
    if fails is None:
        return match(job, table.ads, pol, now=now)
    masks, quote, singles = fails
    codes = list(masks)
    failing = np.stack([masks[c] for c in codes]) if table.n else np.zeros((len(codes), 0), dtype=np.bool_)
    rejected: Mask = np.logical_or.reduce(failing, axis=0)
    passing = np.flatnonzero(~rejected)
    scores = _Scores(job, table, pol, strat.weights if pol.weights is None else pol.weights, passing, quote)
    chosen_rows = _top(strat, scores, pol.k)
    counts = {c: n for c, n in zip(codes, failing.sum(axis=1).tolist(), strict=True) if n}
    counts = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    cache: dict[int, Verdict] = {}

    def rejected_verdict(i: int) -> Verdict:
        v = cache.get(i)
        if v is None:
            reasons, q = hard_filter(table.ads[i], job, pol, now)
            if not reasons:
                raise AgoraError("internal", f"the table and hard_filter disagree on {table.providers[i]}")
            v = cache[i] = Verdict(table.providers[i], False, tuple(reasons), q)
        return v

    def build() -> tuple[Verdict, ...]:
        order = _sorted(strat, scores, range(len(passing)))
        ok = [scores.verdict(j, position, position <= pol.k) for position, j in enumerate(order, start=1)]
        bad = [rejected_verdict(int(i)) for i in np.flatnonzero(rejected)]
        bad.sort(key=lambda v: (len(v.reasons), v.provider))
        return (*ok, *bad)

    def head(limit: int) -> tuple[Verdict, ...]:
        """The first `limit` of build()'s order: the passing by the strategy, then the rejected by their
        number of reasons (one per failing check: a policy term or a constraint each count) and DID."""
        if limit <= 0:
            return ()
        firsts = _top(strat, scores, limit)
        ok = [scores.verdict(j, position, position <= pol.k) for position, j in enumerate(firsts, start=1)]
        rest = limit - len(ok)
        if rest <= 0:
            return tuple(ok)
        rows = np.flatnonzero(rejected)
        plain = [i for i, code in enumerate(codes) if code not in _MANY]
        count = failing[plain].sum(axis=0) + sum(singles, np.zeros(table.n, dtype=np.int64))
        first = rows[np.lexsort((table.rank[rows], count[rows]))[:rest]]
        return (*ok, *(rejected_verdict(int(i)) for i in first))

    return TableDecision(
        strategy=strat.name,
        chosen=tuple(table.providers[passing[j]] for j in chosen_rows),
        counts=counts,
        what_would_fit=_what_would_fit(job, table, pol, masks, failing, counts, quote, rejected),
        build=build,
        head=head,
        sizes=(table.n, len(passing)),
    )


def _hard_filter(
    job: JobNeed, t: CandidateTable, pol: MatchPolicy, now: float
) -> tuple[dict[str, Mask], Ints, list[Mask]] | None:
    """One mask per reason code, in hard_filter's order, every row's quote, and one mask per check of the
    codes in `_MANY` (each failing one is a Reason of its own). None: the quotes are not exact."""
    need = job.need
    masks: dict[str, Mask] = {}
    masks["stale_ad"] = (now >= t.expires) | ((now - t.iat) > pol.stale_after_s)
    masks["insufficient_cpu"] = need.cpu_millis > t.cpu
    masks["insufficient_memory"] = need.memory_bytes > t.memory
    masks["insufficient_disk"] = need.disk_bytes > t.disk
    masks["insufficient_gpu"] = need.gpu_count > t.gpu
    if need.gpu_count > 0:
        model = need.gpu_model
        if model is not None:
            masks["gpu_model_mismatch"] = t.column(
                ("gpu_model", model), lambda a: not gpu_model_matches(model, a.free.gpu_model)
            )
        masks["insufficient_vram"] = need.gpu_vram_bytes > t.vram
    arch = need.arch
    if arch is not None:
        masks["arch_mismatch"] = t.column(("arch", arch), lambda a: arch != a.free.arch)
    executors = need.executors
    masks["executor_unavailable"] = t.column(("executors", executors), lambda a: bool(executors - a.free.executors))
    labels = need.labels
    if labels:
        masks["label_mismatch"] = t.column(
            ("labels", tuple(sorted(labels.items()))),
            lambda a: any(a.free.labels.get(k) != v for k, v in labels.items()),
        )
    location = need.location
    if location is not None:
        masks["location_mismatch"] = t.column(
            ("location", location), lambda a: not location_matches(location, a.free.location)
        )
    engine, requester, rtrust = job.engine, job.requester, pol.requester_trust
    singles: list[Mask] = [
        ~((t.valid_from <= now) & (now < t.valid_until)),
        t.column(("engine_refused", engine), lambda a: not a.offer.terms.accepts_engine(engine)),
        t.has_max_duration & (job.duration_s > t.max_duration),
        t.column(
            ("access_refused", requester, memo_key(rtrust)),
            lambda a: not a.offer.terms.access.admits(requester, rtrust),
        ),
    ]
    masks["policy_refused"] = singles[0] | singles[1] | singles[2] | singles[3]
    cooling: Mapping[str, float] | None = getattr(pol, "cooling_down", None)
    if cooling:
        known, until = t.numbers(cooling)
        masks["provider_cooling_down"] = known & (now < until)
    if job.min_trust is not None:
        known, trust = _trust(t, pol)
        masks["trust_below_min"] = ~known | (trust < job.min_trust)
    if job.min_stake is not None:  # a stake the hub did not report is unknown: it never passes
        known, stake = t.numbers(pol.stakes)
        masks["stake_below_min"] = ~known | (stake < job.min_stake)
    missing: Mask = np.zeros(t.n, dtype=np.bool_)
    failed: Mask = np.zeros(t.n, dtype=np.bool_)
    for c in job.constraints:
        holds, present = _constraint(t, c.key, c.op, c.value)
        missing |= ~holds & ~present
        failed |= ~holds & present
        singles.append(~holds)
    if job.constraints:
        masks["label_missing"] = missing
        masks["constraint_failed"] = failed
    quote = _quote(job, t)
    if quote is None:
        return None
    limit = job.limit
    if limit is not None:
        masks["over_budget"] = quote > limit
    return masks, quote, singles


def _trust_of(pol: MatchPolicy, provider: str) -> float | None:
    """matching's view of a provider's trust: its evidence, else the prior (`default_trust`, when set)."""
    return pol.trust.get(provider, getattr(pol, "default_trust", None))


def _trust(t: CandidateTable, pol: MatchPolicy) -> tuple[Mask, Floats]:
    """`_trust_of` as (known, value) columns."""
    known, trust = t.numbers(pol.trust)
    prior: float | None = getattr(pol, "default_trust", None)
    if prior is not None:
        trust = np.where(known, trust, float(prior))
        known = np.ones(t.n, dtype=np.bool_)
    return known, trust


def _constraint(t: CandidateTable, key: str, op: str, value: Any) -> tuple[Mask, Mask]:
    def build() -> tuple[Mask, Mask]:
        got = [_matches(a, key, op, value) for a in t.ads]
        holds = np.fromiter((g[0] for g in got), dtype=np.bool_, count=t.n)
        present = np.fromiter((g[1] for g in got), dtype=np.bool_, count=t.n)
        return holds, present

    return t.memo(("constraint", key, op, memo_key(value)), build)  # type: ignore[no-any-return]


def _quote(job: JobNeed, t: CandidateTable) -> Ints | None:
    """PriceSchedule.cost over the rows in exact int64 arithmetic (None when it could overflow or lose bits)."""
    prices = t.prices(job.engine)
    if prices is None:
        return None
    cs, ms, gs, minimum, (top_c, top_m, top_g) = prices
    need, seconds = job.need, job.duration_s
    a, b, c = need.cpu_millis * GiB * seconds, need.memory_bytes * 1000 * seconds, need.gpu_count * _COST_UNIT * seconds
    if a * top_c + b * top_m + c * top_g >= _INT64 or max(a, b, c) >= _INT64:
        return None
    num = a * cs + b * ms + c * gs
    quote: Ints = np.maximum(minimum, -((-num) // _COST_UNIT))
    if t.n and int(quote.max()) >= EXACT:
        return None
    return quote


class _Scores:
    """The soft score of the passing rows (index j: row `rows[j]`), the comparator's formula as in
    matching._score, operation for operation so the floats are the same."""

    def __init__(
        self, job: JobNeed, t: CandidateTable, pol: MatchPolicy, weights: Weights, rows: Ints, quote: Ints
    ) -> None:
        self.job, self.t, self.pol, self.rows = job, t, pol, rows
        self.quote: Ints = quote[rows]
        self.bench: Floats = t.bench0[rows]
        n = len(rows)
        best_quality = float(self.bench.max()) if n else 0.0
        self.s_quality: Floats = self.bench / best_quality if best_quality > 0 else np.zeros(n)
        cheapest = int(self.quote.min()) if n else 0
        q = self.quote.astype(np.float64)
        self.s_cost: Floats = np.divide(float(cheapest), q, out=np.ones(n), where=self.quote != 0)
        known_t, trust = _trust(t, pol)
        known_t, trust = known_t[rows], trust[rows]
        self.s_trust: Floats = np.where(known_t & (trust != 0), trust, 0.0)  # `trust or 0.0`
        known_l, latency = t.numbers(pol.latency_ms)
        self.known_latency: Mask = known_l[rows]
        self.latency: Floats = latency[rows]
        best_latency = float(self.latency[self.known_latency].min()) if self.known_latency.any() else 0.0
        self.s_latency: Floats = np.where(self.known_latency, (best_latency + 1.0) / (self.latency + 1.0), 0.0)
        w: dict[str, float] = {name: float(getattr(weights, name)) for name in COMPONENTS}
        self.affinity_got: Ints | None = None
        if job.affinities:
            w["affinity"] = pol.affinity_weight
            total = sum(abs(a.weight) for a in job.affinities)
            got = np.zeros(n, dtype=np.int64)
            for a in job.affinities:
                holds, _ = _constraint(t, a.key, a.op, a.value)
                got += np.where(holds[rows], a.weight, 0)
            self.affinity_got = got
            self.s_affinity: Floats = got / total if total else np.zeros(n)
        self.w = w
        total_weight = sum(w.values())
        acc = w["quality"] * self.s_quality + w["cost"] * self.s_cost
        acc = acc + w["trust"] * self.s_trust + w["latency"] * self.s_latency
        if job.affinities:
            acc = acc + w["affinity"] * self.s_affinity
        self.score: Floats = acc / total_weight if total_weight > 0 else np.zeros(n)
        self._util: Floats | None = None

    @property
    def util(self) -> Floats:
        """matching._utilization of the passing rows (binpack, spread)."""
        if self._util is None:
            t, rows, need = self.t, self.rows, self.job.need
            acc: Floats = np.zeros(len(rows))
            parts: Ints = np.zeros(len(rows), dtype=np.int64)
            for total, free, n in (
                (t.total_cpu, t.cpu, need.cpu_millis),
                (t.total_memory, t.memory, need.memory_bytes),
                (t.total_gpu, t.gpu, need.gpu_count),
            ):
                tot, fr = total[rows], free[rows]
                has = tot > 0
                u = np.divide(
                    (tot - fr + n).astype(np.float64), tot.astype(np.float64), out=np.zeros(len(rows)), where=has
                )
                acc = acc + np.where(has, np.minimum(1.0, np.maximum(0.0, u)), 0.0)
                parts += has
            self._util = np.divide(acc, parts, out=np.zeros(len(rows)), where=parts > 0)
        return self._util

    def column(self, name: str) -> NDArray[Any]:
        match name:
            case "score":
                return self.score
            case "quote":
                return self.quote
            case "bench":
                return self.bench
            case _:
                return self.util

    def scored(self, j: int) -> Scored:
        ad = self.t.ads[self.rows[j]]
        util = float(self.util[j]) if self._util is not None else 0.0
        return Scored(
            ad.provider,
            float(self.score[j]),
            int(self.quote[j]),
            ad.benchmark_score,
            self.pol.latency_ms.get(ad.provider),
            util,
        )

    def verdict(self, j: int, position: int, chosen: bool) -> Verdict:
        ad = self.t.ads[self.rows[j]]
        p = ad.provider
        quote = int(self.quote[j])
        values: dict[str, tuple[Any, float]] = {
            "quality": (ad.benchmark_score, float(self.s_quality[j])),
            "cost": (quote, float(self.s_cost[j])),
            "trust": (_trust_of(self.pol, p), float(self.s_trust[j])),
            "latency": (self.pol.latency_ms.get(p), float(self.s_latency[j])),
        }
        if self.affinity_got is not None:
            values["affinity"] = (int(self.affinity_got[j]), float(self.s_affinity[j]))
        w = self.w
        breakdown = {name: ScorePart(value, s, w[name], w[name] * s) for name, (value, s) in values.items()}
        return Verdict(p, True, (), quote, float(self.score[j]), breakdown, position=position, chosen=chosen)


def _needs_util(strat: Strategy) -> bool:
    return isinstance(strat, Binpack | Spread) or type(strat) not in _PRIMARY


def _sorted(strat: Strategy, scores: _Scores, js: Iterable[int]) -> list[int]:
    """Passing indexes in the strategy's exact order (its key, then the DID)."""
    if _needs_util(strat):
        _ = scores.util
    keyed = [((*strat.key(s), s.provider), j) for j in js for s in (scores.scored(j),)]
    keyed.sort(key=lambda kj: kj[0])
    return [j for _, j in keyed]


def _top(strat: Strategy, scores: _Scores, k: int) -> list[int]:
    """The first k passing indexes in the strategy's order: argpartition on the key's first element, then an
    exact sort of every row that may tie with the k-th."""
    n = len(scores.rows)
    primary = _PRIMARY.get(type(strat))
    if primary is None or n <= k:
        return _sorted(strat, scores, range(n))[:k]
    name, sign, slack = primary
    col = sign * scores.column(name).astype(np.float64) if name != "quote" else scores.quote
    kth = np.partition(col, k - 1)[k - 1]
    near = np.flatnonzero(col <= kth + slack) if slack else np.flatnonzero(col <= kth)
    return _sorted(strat, scores, (int(j) for j in near))[:k]


def _what_would_fit(
    job: JobNeed,
    t: CandidateTable,
    pol: MatchPolicy,
    masks: Mapping[str, Mask],
    failing: NDArray[np.bool_],
    counts: Mapping[str, int],
    quote: Ints,
    rejected: Mask,
) -> tuple[Suggestion, ...]:
    """diagnostics.what_would_fit over the rejected rows: only rows whose every reason can be relaxed, in
    the order (number of changes, relative size, DID); sentences built for the first few only, from the
    columns (`diagnostics.relax`), with the relative size summed in hard_filter's order as `suggest` does."""
    need = job.need
    quantities = [
        ("insufficient_cpu", need.cpu_millis, t.cpu),
        ("insufficient_memory", need.memory_bytes, t.memory),
        ("insufficient_disk", need.disk_bytes, t.disk),
        ("insufficient_gpu", need.gpu_count, t.gpu),
    ]
    if need.gpu_count > 0:
        quantities.append(("insufficient_vram", need.gpu_vram_bytes, t.vram))
    limit = job.limit
    relaxed = {code for code, wanted, _ in quantities if wanted > 0} | {"trust_below_min"}
    if limit is not None and limit > 0:
        relaxed.add("over_budget")
    fixed = [i for i, code in enumerate(masks) if code not in relaxed]  # a reason the requester cannot relax
    relaxable: Mask = rejected & ~failing[fixed].any(axis=0) if fixed else rejected
    rows = np.flatnonzero(relaxable)
    if not len(rows):
        return ()
    changes: Ints = np.zeros(len(rows), dtype=np.int64)
    cost: Floats = np.zeros(len(rows))
    parts: list[tuple[str, Mask, NDArray[Any]]] = []  # per row: (code, failing, the value a change would set)
    for code, wanted, have in quantities:  # hard_filter's order (cpu, memory, disk, gpu, vram): cost sums in it
        if code in relaxed and counts.get(code):
            m, h = masks[code][rows], have[rows]
            cost = cost + np.where(m, np.abs(wanted - h).astype(np.float64) / float(wanted), 0.0)
            changes += m
            parts.append((code, m, h))
    if counts.get("trust_below_min") and job.min_trust is not None:
        m = masks["trust_below_min"][rows]
        known, trust = _trust(t, pol)
        known, trust = known[rows], trust[rows]
        cost = cost + np.where(m, np.where(known, float(job.min_trust) - trust, 1.0), 0.0)
        changes += m
        parts.append(("trust_below_min", m, np.where(known, trust, np.nan)))  # unknown: nan, never merged
    if "over_budget" in relaxed and counts.get("over_budget") and limit is not None:
        m, q = masks["over_budget"][rows], quote[rows]
        cost = cost + np.where(m, np.abs(limit - q).astype(np.float64) / float(limit), 0.0)
        changes += m
        parts.append(("over_budget", m, q))
    order = np.lexsort((t.rank[rows], cost, changes))
    ch, co = changes[order], cost[order]
    starts = np.flatnonzero(np.concatenate(([True], (ch[1:] != ch[:-1]) | (co[1:] != co[:-1])))).tolist()
    # rows with the same failing codes and values say the same sentence: only the first (by DID) is said
    keys = [(m[order], np.where(m[order], h[order], 0)) for _, m, h in parts]
    repeats: Mask = np.ones(max(len(order) - 1, 0), dtype=np.bool_)  # row has the key of the row before
    for f, h in keys:
        repeats &= (f[1:] == f[:-1]) & (h[1:] == h[:-1])
    out: list[Suggestion] = []
    seen: set[str] = set()
    for b0, b1 in zip(starts, [*starts[1:], len(order)], strict=True):  # blocks of one (changes, cost)
        if b1 - b0 == 1 or repeats[b0 : b1 - 1].all():  # the usual case: one key in the block
            firsts = [b0]
        else:
            firsts = _firsts(b0, [(f[b0:b1].tolist(), h[b0:b1].tolist()) for f, h in keys])
        for pos in firsts:
            j = int(order[pos])
            provider = t.providers[int(rows[j])]
            said = [
                relax(code, _trust_of(pol, provider) if code == "trust_below_min" else int(h[j]))
                for code, m, h in parts
                if m[j]
            ]
            s = Suggestion(provider, tuple(c for c in said if c is not None), float(cost[j]))
            if s.text not in seen:
                seen.add(s.text)
                out.append(s)
                if len(out) >= MAX_SUGGESTIONS:
                    return tuple(out)
    return tuple(out)


def _firsts(start: int, keys: list[tuple[list[Any], list[Any]]]) -> list[int]:
    """The position of the first row of each distinct key (failing codes and values) in a block."""
    out, said = [], set()
    for pos in range(len(keys[0][0]) if keys else 1):
        key = tuple(h[pos] if f[pos] else None for f, h in keys)
        if key not in said:
            said.add(key)
            out.append(start + pos)
    return out


__all__ = ["TableDecision", "match_table"]
