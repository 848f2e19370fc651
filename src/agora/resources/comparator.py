"""Which machines fit a need, and in what order (pure, no I/O).

`rank` filters with the hard dimensions (`fits`, which names every failing dimension) and orders the
fitting machines by a weighted sum of soft preferences. Each preference is scored in [0, 1] relative
to the best fitting candidate, so the weights mean the same thing whatever the units:

    quality = benchmark_score / best benchmark_score          (unknown score: 0)
    cost    = cheapest cost / cost                            (price None = free; 0/0 = 1)
    trust   = trust                                           (unknown: 0)
    latency = (best latency_ms + 1) / (latency_ms + 1)        (unknown: 0; +1 ms keeps 0 ms finite)
    score   = sum(weight * part) / sum(weights)               (all weights 0: score 0)

The cost of a machine is its price for running `need` for `cost_seconds` (default one hour), so a
per-core price and a full `PriceSchedule` compare on the same footing. Ties break on lower cost, then
machine id, so the order never depends on input order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agora.errors import AgoraError
from agora.models.capability import Capability, FitResult, Reason, fits

COMPONENTS = ("quality", "cost", "trust", "latency")


@dataclass(frozen=True)
class Weights:
    quality: float = 1.0
    cost: float = 1.0
    trust: float = 1.0
    latency: float = 1.0

    def __post_init__(self) -> None:
        for name in COMPONENTS:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise AgoraError("invalid_argument", f"weight {name} must be a finite number >= 0, got {v!r}")

    def to_dict(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in COMPONENTS}


@dataclass(frozen=True)
class ScorePart:
    """One soft preference of one machine: the raw figure, its [0, 1] score, weight and contribution."""

    value: float | int | None
    score: float
    weight: float
    weighted: float

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "score": self.score, "weight": self.weight, "weighted": self.weighted}


@dataclass(frozen=True)
class Ranked:
    """A candidate in `rank`'s answer; `position` is 1-based among fitting machines, None for the others."""

    machine_id: str
    capability: Capability
    fit: FitResult
    score: float = 0.0
    cost: int | None = None
    breakdown: Mapping[str, ScorePart] = field(default_factory=dict)
    position: int | None = None

    @property
    def ok(self) -> bool:
        return self.fit.ok

    @property
    def reasons(self) -> list[Reason]:
        return self.fit.reasons

    def to_dict(self) -> dict[str, Any]:
        return {
            "machine_id": self.machine_id,
            "ok": self.ok,
            "score": self.score,
            "cost": self.cost,
            "position": self.position,
            "breakdown": {k: v.to_dict() for k, v in self.breakdown.items()},
            "reasons": [r.to_dict() for r in self.reasons],
        }


def _pairs(machines: Mapping[str, Capability] | Iterable[tuple[str, Capability]]) -> list[tuple[str, Capability]]:
    pairs = list(machines.items()) if isinstance(machines, Mapping) else list(machines)
    seen: set[str] = set()
    for mid, cap in pairs:
        if not isinstance(mid, str) or not isinstance(cap, Capability):
            raise AgoraError("invalid_argument", f"rank takes (machine id, Capability) pairs, got {mid!r}")
        if mid in seen:
            raise AgoraError("invalid_argument", f"machine id {mid!r} appears twice")
        seen.add(mid)
    return pairs


def _ratio(best: float, value: float) -> float:
    """best/value for lower-is-better figures, with 0/0 = 1 (two free machines are equally cheap)."""
    if value == 0:
        return 1.0
    return best / value


def rank(
    need: Capability,
    machines: Mapping[str, Capability] | Iterable[tuple[str, Capability]],
    weights: Weights | None = None,
    *,
    cost_seconds: float = 3600.0,
) -> list[Ranked]:
    """Fitting machines best first (with their score breakdown), then every non-fitting machine with its
    reasons (fewest reasons first, then by id), so a caller can both place and explain."""
    w = weights or Weights()
    fitting: list[tuple[str, Capability, FitResult, int]] = []
    rejected: list[Ranked] = []
    for mid, cap in _pairs(machines):
        result = fits(need, cap)
        if result.ok:
            schedule = cap.price_schedule
            fitting.append((mid, cap, result, schedule.cost(need, cost_seconds) if schedule else 0))
        else:
            rejected.append(Ranked(mid, cap, result))

    best_quality = max((c.benchmark_score or 0.0 for _, c, _, _ in fitting), default=0.0)
    cheapest = min((cost for *_, cost in fitting), default=0)
    latencies = [c.latency_ms for _, c, _, _ in fitting if c.latency_ms is not None]
    best_latency = min(latencies, default=0.0)
    total_weight = sum(getattr(w, n) for n in COMPONENTS)

    ranked: list[Ranked] = []
    for mid, cap, result, cost in fitting:
        parts = {
            "quality": (
                cap.benchmark_score,
                (cap.benchmark_score or 0.0) / best_quality if best_quality > 0 else 0.0,
            ),
            "cost": (cost, _ratio(cheapest, cost)),
            "trust": (cap.trust, cap.trust or 0.0),
            "latency": (
                cap.latency_ms,
                (best_latency + 1.0) / (cap.latency_ms + 1.0) if cap.latency_ms is not None else 0.0,
            ),
        }
        breakdown = {
            name: ScorePart(value, s, float(getattr(w, name)), getattr(w, name) * s)
            for name, (value, s) in parts.items()
        }
        score = sum(p.weighted for p in breakdown.values()) / total_weight if total_weight > 0 else 0.0
        ranked.append(Ranked(mid, cap, result, score=score, cost=cost, breakdown=breakdown))

    # round away float noise so that equal scores tie (and fall to the deterministic tie-breaks)
    ranked.sort(key=lambda r: (-round(r.score, 12), r.cost or 0, r.machine_id))
    ordered = [
        Ranked(r.machine_id, r.capability, r.fit, r.score, r.cost, r.breakdown, position=i)
        for i, r in enumerate(ranked, start=1)
    ]
    rejected.sort(key=lambda r: (len(r.reasons), r.machine_id))
    return ordered + rejected


def reason_counts(ranked: Iterable[Ranked]) -> dict[str, int]:
    """How many candidates each reason code rejected (a machine counts once per code), most common first."""
    counts: dict[str, int] = {}
    for r in ranked:
        for code in dict.fromkeys(r.fit.codes):
            counts[code] = counts.get(code, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


__all__ = ["COMPONENTS", "Ranked", "ScorePart", "Weights", "rank", "reason_counts"]
