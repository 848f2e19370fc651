"""Placement (pure, no I/O): which providers' capacity ads can take a job, and in what order.

`match(job, ads, policy, now)` runs every ad through the hard filter and keeps every failing dimension
(never stopping at the first), scores the ads that pass, orders them with the job's strategy and returns a
`Decision` with every candidate's verdict, the counts per reason and what would make a rejected one fit.

Hard filter, per ad (each failure is a `Reason` with a stable code and the amounts compared):

- `stale_ad`: the ad expired (`iat + ttl_s`) or is older than `policy.stale_after_s`;
- `fits(need, free)`: `insufficient_cpu|memory|disk|gpu|vram`, `gpu_model_mismatch`, `arch_mismatch`,
  `executor_unavailable` (with the provider's reason, e.g. "docker (no engine answers)"), `label_mismatch`,
  `location_mismatch`;
- `policy_refused`: the offer is outside its validity window, does not accept the engine, has a max
  duration below the job's, or does not let this requester ask for bids (allowlist, min_trust);
- `provider_cooling_down`: the requester excluded the provider for a while after repeated failures
  (`policy.cooling_down`, from its trust evidence: the reliability penalty of `agora.ledger.trust`);
- `trust_below_min`: the provider's trust (the requester's view, `policy.trust`, else `policy.default_trust`,
  the prior) is below the job's min_trust;
- the job's `constraints`: `label_missing` (a label the constraint reads is absent) or `constraint_failed`;
- `over_budget`: the offer's quote for this job is above min(max_price, budget), or above
  `MAX_MINOR_UNITS` whatever the budget (no ledger holds such an amount: an ad priced to overflow is
  refused here, its quote not kept).

Soft score of the ads that pass: the comparator's formula (`agora.resources.comparator`, the same
`Weights` and `ScorePart`: quality, cost, trust, latency, each in [0, 1] relative to the best passing ad)
plus an `affinity` part in [-1, 1] (the weights of the job's affinities that match, over the sum of their
absolute weights) when the job has affinities. Ties always fall to the provider DID, so the same inputs
give the same decision whatever their order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agora.errors import AgoraError
from agora.market.diagnostics import Decision, Verdict, count_reasons, what_would_fit
from agora.market.strategies import Scored, strategy
from agora.models.capability import MAX_MINOR_UNITS, Capability, Reason, accounted, fits
from agora.models.job import Affinity, Constraint, JobSpec, Scalar
from agora.resources.comparator import COMPONENTS, ScorePart, Weights
from agora.wire.market import CapacityAd

DEFAULT_DURATION_S = 3600  # quotes for a task without a timeout (a service) cover one hour
_MISSING: Any = object()


@dataclass(frozen=True)
class JobNeed:
    """What the matcher needs to know about one task of a job (see `from_spec`)."""

    need: Capability  # per replica; executors = {engine}
    engine: str
    duration_s: int  # what a quote covers: the task's timeout
    requester: str = ""
    constraints: tuple[Constraint, ...] = ()
    affinities: tuple[Affinity, ...] = ()
    max_price: int | None = None
    budget: int | None = None
    min_trust: float | None = None
    strategy: str = "balanced"
    min_stake: int | None = None  # minor units of stake a provider must hold (policy.stakes)

    def __post_init__(self) -> None:
        if self.engine not in self.need.executors:
            object.__setattr__(self, "need", Capability.from_dict({**self.need.to_dict(), "executors": [self.engine]}))
        if isinstance(self.duration_s, bool) or not isinstance(self.duration_s, int) or self.duration_s <= 0:
            raise AgoraError("invalid_argument", f"duration_s must be a positive integer, got {self.duration_s!r}")
        strategy(self.strategy)  # an unknown strategy fails here, not in the middle of a match

    @property
    def plain_need(self) -> bool:
        """Only cpu, memory, disk and the engine: `hard_filter` can check a fit without `fits`."""
        n = self.need
        return n.gpu_count == 0 and n.arch is None and not n.labels and n.location is None and len(n.executors) == 1

    @property
    def limit(self) -> int | None:
        """The most this job may cost: the lower of max_price and budget (None: no limit)."""
        limits = [x for x in (self.max_price, self.budget) if x is not None]
        return min(limits) if limits else None

    @classmethod
    def from_spec(cls, spec: JobSpec, task: str | None = None, *, requester: str = "") -> JobNeed:
        t = spec.task(task) if task is not None else spec.tasks[0]
        r = t.resources
        need = Capability(
            cpu_millis=r.cpu,
            memory_bytes=r.memory,
            disk_bytes=r.disk,
            gpu_count=r.gpu.count,
            gpu_model=r.gpu.model if r.gpu.count else None,
            gpu_vram_bytes=r.gpu.vram if r.gpu.count else 0,
            executors=frozenset({t.engine}),
        )
        return cls(
            need=accounted(need, t.engine),  # what the provider will take and bid for (a wasm task: a core)
            engine=t.engine,
            duration_s=t.timeout or DEFAULT_DURATION_S,
            requester=requester,
            constraints=spec.constraints,
            affinities=spec.affinities,
            max_price=spec.placement.max_price,
            budget=spec.payment.budget,
            min_trust=spec.placement.min_trust,
            strategy=spec.placement.strategy,
            min_stake=spec.placement.min_stake,
        )


@dataclass(frozen=True)
class MatchPolicy:
    """The requester's side of matching: how many to ask (`k`), its view of trust and latency per provider,
    how old an ad may be, and optional weights (None: the strategy's)."""

    k: int = 3
    stale_after_s: int = 300
    trust: Mapping[str, float] = field(default_factory=dict)
    latency_ms: Mapping[str, float] = field(default_factory=dict)
    requester_trust: float | None = None  # how providers rate this requester, when known (offer min_trust)
    default_trust: float | None = None  # the trust of a provider not in `trust` (the prior; None: unknown)
    cooling_down: Mapping[str, float] = field(default_factory=dict)  # provider -> excluded until (penalty)
    stakes: Mapping[str, int] = field(default_factory=dict)  # provider -> its stake at the hub (min_stake)
    weights: Weights | None = None
    affinity_weight: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise AgoraError("invalid_argument", f"k must be a positive integer, got {self.k!r}")


# ---- hard filter ------------------------------------------------------------------------------------


def _attribute(ad: CapacityAd, key: str) -> tuple[bool, Any]:
    """The value a constraint key reads on an ad; bare unknown keys read the node's labels."""
    cap = ad.free
    label = key[7:] if key.startswith("labels.") else None
    if label is None:
        match key:
            case "arch":
                return cap.arch is not None, cap.arch
            case "location":
                return cap.location is not None, cap.location
            case "gpu.model":
                return cap.gpu_model is not None, cap.gpu_model
            case "gpu.count":
                return True, cap.gpu_count
            case "gpu.vram":
                return True, cap.gpu_vram_bytes
            case "cpu":
                return True, cap.cpu_millis
            case "memory":
                return True, cap.memory_bytes
            case "disk":
                return True, cap.disk_bytes
            case "provider" | "node":
                return True, ad.provider
            case "version":
                return True, ad.version
            case "benchmark":
                return ad.benchmark_score is not None, ad.benchmark_score
            case _:
                label = key
    return label in cap.labels, cap.labels.get(label)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _equal(have: Any, want: Scalar) -> bool:
    if _is_number(have) and _is_number(want):
        return bool(have == want)
    return str(have) == str(want)


def _holds(op: str, have: Any, want: Any) -> bool:
    if op == "exists":
        return True
    if op == "==":
        return _equal(have, want)
    if op == "!=":
        return not _equal(have, want)
    if op == "in":
        return any(_equal(have, w) for w in want)
    if op == "not_in":
        return not any(_equal(have, w) for w in want)
    if _is_number(have) and _is_number(want):
        return bool(have >= want) if op == ">=" else bool(have <= want)
    return False


def _show(value: Any) -> str:
    if isinstance(value, tuple | list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def _matches(ad: CapacityAd, key: str, op: str, want: Any) -> tuple[bool, bool, Any]:
    """(holds, present, value) of one `key op want` on an ad; an absent key satisfies only != and not_in."""
    present, have = _attribute(ad, key)
    if not present:
        return op in ("!=", "not_in"), False, None
    return _holds(op, have, want), True, have


def _constraint_reason(ad: CapacityAd, c: Constraint) -> Reason | None:
    holds, present, have = _matches(ad, c.key, c.op, c.value)
    if holds:
        return None
    wanted = f"{c.key} {c.op}" + ("" if c.op == "exists" else f" {_show(c.value)}")
    if not present:
        label = c.key[7:] if c.key.startswith("labels.") else c.key
        return Reason("label_missing", c.key, c.to_dict(), None, f"label_missing: need {wanted}, node has no {label}")
    text = f"constraint_failed: need {wanted}, has {_show(have)}"
    return Reason("constraint_failed", c.key, c.to_dict(), have, text)


def _policy(ad: CapacityAd, job: JobNeed, policy: MatchPolicy, now: float) -> list[Reason]:
    out: list[Reason] = []
    offer = ad.offer
    terms = offer.terms

    def refuse(what: str, need: Any, have: Any) -> None:
        out.append(Reason("policy_refused", "offer", need, have, f"policy_refused: {what}"))

    if not offer.is_valid_at(now):
        refuse(
            f"offer {offer.offer_id} is valid from {offer.valid_from} until {offer.valid_until}",
            now,
            [offer.valid_from, offer.valid_until],
        )
    if not terms.accepts_engine(job.engine):
        refuse(f"the offer does not accept engine {job.engine}", job.engine, sorted(terms.engines))
    if terms.max_duration_s is not None and job.duration_s > terms.max_duration_s:
        refuse(
            f"max duration {terms.max_duration_s} s < the job's {job.duration_s} s",
            job.duration_s,
            terms.max_duration_s,
        )
    if not terms.access.admits(job.requester, policy.requester_trust):
        access = terms.access
        what = (
            "requester not on the offer's allowlist"
            if access.mode == "allowlist"
            else (f"the offer asks requester trust >= {access.min_trust:g}")
        )
        refuse(what, job.requester, access.mode)
    return out


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _executor_text(reason: Reason, ad: CapacityAd) -> Reason:
    parts = []
    for name in reason.need:
        state = ad.executors.get(name)
        why = "not offered" if state is None else (state.reason or "unavailable")
        parts.append(f"{name} ({why})")
    return Reason(
        reason.code,
        reason.dimension,
        reason.need,
        reason.have,
        "executor_unavailable: " + ", ".join(parts),
        reason.shortfall,
    )


def hard_filter(ad: CapacityAd, job: JobNeed, policy: MatchPolicy, now: float) -> tuple[list[Reason], int | None]:
    """Every reason `ad` cannot take `job` (empty: it passes) and its quote (None when not computable)."""
    reasons: list[Reason] = []
    age = now - ad.iat
    if now >= ad.expires_at or age > policy.stale_after_s:
        text = f"stale_ad: issued {age:.0f} s ago, " + (
            f"expired {now - ad.expires_at:.0f} s ago"
            if now >= ad.expires_at
            else f"older than {policy.stale_after_s} s"
        )
        reasons.append(Reason("stale_ad", "ad", policy.stale_after_s, int(age), text))
    need, free = job.need, ad.free
    quick = (  # the common shape (quantities and an engine) that fits: no need to build a FitResult
        job.plain_need
        and need.cpu_millis <= free.cpu_millis
        and need.memory_bytes <= free.memory_bytes
        and need.disk_bytes <= free.disk_bytes
        and job.engine in free.executors
    )
    if not quick:
        for r in fits(need, free).reasons:
            reasons.append(_executor_text(r, ad) if r.code == "executor_unavailable" else r)
    reasons.extend(_policy(ad, job, policy, now))
    until = policy.cooling_down.get(ad.provider)
    if until is not None and now < until:
        text = f"provider_cooling_down: until {_utc(until)} ({until - now:.0f} s), after repeated failures"
        reasons.append(Reason("provider_cooling_down", "trust", until, now, text))
    if job.min_trust is not None:
        trust = policy.trust.get(ad.provider, policy.default_trust)
        if trust is None or trust < job.min_trust:
            shown = "unknown" if trust is None else f"{trust:g}"
            text = f"trust_below_min: need {job.min_trust:g}, has {shown}"
            reasons.append(Reason("trust_below_min", "trust", job.min_trust, trust, text))
    if job.min_stake is not None:
        stake = policy.stakes.get(ad.provider)
        if stake is None or stake < job.min_stake:
            shown = "unknown" if stake is None else f"{stake:,}"
            text = f"stake_below_min: need {job.min_stake:,}, has {shown}"
            reasons.append(Reason("stake_below_min", "stake", job.min_stake, stake, text))
    for c in job.constraints:
        failed = _constraint_reason(ad, c)
        if failed is not None:
            reasons.append(failed)
    quote = ad.offer.price.quote(job.need, job.duration_s, job.engine)
    if quote > MAX_MINOR_UNITS:  # an absurd price (or job): no amount can pay it, no record can hold it
        text = f"over_budget: quote above {MAX_MINOR_UNITS:,}, more than any amount can be"
        reasons.append(Reason("over_budget", "price", MAX_MINOR_UNITS, None, text))
        return reasons, None
    limit = job.limit
    if limit is not None and quote > limit:
        name = "budget" if job.budget is not None and job.budget == limit else "max_price"
        text = f"over_budget: quote {quote:,} > {name} {limit:,}"
        reasons.append(Reason("over_budget", "price", limit, quote, text, quote - limit))
    return reasons, quote


# ---- soft score -------------------------------------------------------------------------------------


def _utilization(ad: CapacityAd, need: Capability) -> float:
    total = ad.offer.resources
    parts = []
    for t, f, n in (
        (total.cpu_millis, ad.free.cpu_millis, need.cpu_millis),
        (total.memory_bytes, ad.free.memory_bytes, need.memory_bytes),
        (total.gpu_count, ad.free.gpu_count, need.gpu_count),
    ):
        if t > 0:
            parts.append(min(1.0, max(0.0, (t - f + n) / t)))
    return sum(parts) / len(parts) if parts else 0.0


def _affinity(ad: CapacityAd, affinities: tuple[Affinity, ...]) -> tuple[int, float]:
    total = sum(abs(a.weight) for a in affinities)
    got = sum(a.weight for a in affinities if _matches(ad, a.key, a.op, a.value)[0])
    return got, (got / total if total else 0.0)


def _score(
    passing: list[tuple[CapacityAd, int]], job: JobNeed, policy: MatchPolicy, weights: Weights
) -> list[tuple[CapacityAd, int, float, dict[str, ScorePart]]]:
    """The comparator's formula (see agora.resources.comparator) over the passing ads, plus affinity."""
    best_quality = max((ad.benchmark_score or 0.0 for ad, _ in passing), default=0.0)
    cheapest = min((q for _, q in passing), default=0)
    latencies = [lat for ad, _ in passing if (lat := policy.latency_ms.get(ad.provider)) is not None]
    best_latency = min(latencies, default=0.0)
    w = {name: float(getattr(weights, name)) for name in COMPONENTS}
    if job.affinities:
        w["affinity"] = policy.affinity_weight
    total_weight = sum(w.values())
    out = []
    for ad, quote in passing:
        trust = policy.trust.get(ad.provider, policy.default_trust)
        latency = policy.latency_ms.get(ad.provider)
        values: dict[str, tuple[Any, float]] = {
            "quality": (ad.benchmark_score, (ad.benchmark_score or 0.0) / best_quality if best_quality > 0 else 0.0),
            "cost": (quote, 1.0 if quote == 0 else cheapest / quote),
            "trust": (trust, trust or 0.0),
            "latency": (latency, (best_latency + 1.0) / (latency + 1.0) if latency is not None else 0.0),
        }
        if job.affinities:
            values["affinity"] = _affinity(ad, job.affinities)
        breakdown = {name: ScorePart(value, s, w[name], w[name] * s) for name, (value, s) in values.items()}
        score = sum(p.weighted for p in breakdown.values()) / total_weight if total_weight > 0 else 0.0
        out.append((ad, quote, score, breakdown))
    return out


# ---- the decision -----------------------------------------------------------------------------------


def match(job: JobNeed, ads: Iterable[CapacityAd], policy: MatchPolicy | None = None, *, now: float) -> Decision:
    """Every ad's verdict for `job`, the best `policy.k` chosen (in the strategy's order), counts per reason
    and what would make a rejected ad fit. Pure: the same inputs give the same decision."""
    pol = policy or MatchPolicy()
    strat = strategy(job.strategy)
    weights = pol.weights or strat.weights
    seen: set[str] = set()
    passing: list[tuple[CapacityAd, int]] = []
    rejected: list[Verdict] = []
    for ad in ads:
        if ad.provider in seen:
            raise AgoraError("invalid_argument", f"two ads of {ad.provider}: the index keeps one per provider")
        seen.add(ad.provider)
        reasons, quote = hard_filter(ad, job, pol, now)
        if reasons:
            rejected.append(Verdict(ad.provider, False, tuple(reasons), quote))
        else:
            passing.append((ad, quote or 0))
    scored = _score(passing, job, pol, weights)
    keyed = []
    for ad, quote, score, breakdown in scored:
        s = Scored(
            ad.provider, score, quote, ad.benchmark_score, pol.latency_ms.get(ad.provider), _utilization(ad, job.need)
        )
        keyed.append(((*strat.key(s), ad.provider), ad.provider, quote, score, breakdown))
    keyed.sort(key=lambda t: t[0])
    ordered = [
        Verdict(provider, True, (), quote, score, breakdown, position=i, chosen=i <= pol.k)
        for i, (_, provider, quote, score, breakdown) in enumerate(keyed, start=1)
    ]
    rejected.sort(key=lambda v: (len(v.reasons), v.provider))
    return Decision(
        strategy=strat.name,
        chosen=tuple(v.provider for v in ordered[: pol.k]),
        candidates=(*ordered, *rejected),
        counts=count_reasons(rejected),
        what_would_fit=what_would_fit(rejected),
    )


__all__ = ["DEFAULT_DURATION_S", "JobNeed", "MatchPolicy", "hard_filter", "match"]
