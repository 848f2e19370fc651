"""Trust (pure, no I/O, the clock passed in): a provider's reputation from recorded evidence, and its penalty.

**Evidence** is one thing a requester saw a provider do, citing the signed thing it comes from (the usage
receipt's CID, the bid/award request id, the disagreement or dispute event). Each kind is good or bad with a
weight (`KINDS`): `success` (a completed unit with a verified receipt), `failure`, `timeout`,
`award_not_started` (the provider committed to an award, then the start failed), `late` (no bid before the
bid deadline it was asked to meet: latency against what the protocol promises), `dispute`, `disagreement`
(redundant execution: its outputs disagreed with the accepted ones), `slash` (the ledger slashed its stake on
proven misbehaviour).

**Score** (a Beta reputation, Josang & Ismail 2002): with `G` and `B` the decayed weights of the good and
bad records, `score = (a + G) / (a + b + G + B)`, where `a = prior × prior_weight` and
`b = (1 - prior) × prior_weight`. Each record's weight halves every `half_life_s`: old behaviour counts less
and, with no new evidence, the score drifts back to the prior. The score is always in [0, 1]; another good
record never lowers it (d score / dG = (b + B) / (...)² > 0); a bad one never raises it.

**The prior** (0.5, worth 2 records) is what a provider with no evidence scores. A newcomer must be able to
get work, so the prior is not 0 (with `trust` weighted in the soft score, a 0 would bury every newcomer under
any provider with one success, and a job's `min_trust` at or below the prior admits it). It is not high
either: one failure puts a provider below a newcomer, one success above it, so leaving and coming back under
a new identity never beats an honest record.

**Penalty with cooldown**: `penalty_failures` hard failures (`failure`, `timeout`, `award_not_started`,
`slash`) within `penalty_window_s` exclude the provider until `cooling_until`
(matching's `provider_cooling_down`). The n-th offence cools for `cooldown_s × cooldown_factor^(n-1)`
(at most `cooldown_max_s`); the count of offences starts again once a provider stayed clean for
`forgive_after_s` after its last cooldown. After a cooldown only new failures count toward the next one.
Everything is computed from the records, so the same evidence always gives the same answer, after a
restart too.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agora.errors import AgoraError

# kind -> (good?, weight)
KINDS: dict[str, tuple[bool, float]] = {
    "success": (True, 1.0),
    "failure": (False, 1.0),
    "timeout": (False, 1.0),
    "award_not_started": (False, 1.0),
    "late": (False, 0.5),
    "dispute": (False, 2.0),
    "disagreement": (False, 3.0),
    "slash": (False, 5.0),
}
HARD_FAILURES = frozenset({"failure", "timeout", "award_not_started", "slash"})  # what counts toward a penalty
CITES = frozenset(
    {"receipt", "bid", "award", "commit", "event", "job", "unit", "alloc", "contract", "dispute", "entry"}
)  # entry: a ledger entry's id (a slash)


@dataclass(frozen=True)
class TrustSettings:
    """How this node scores providers (docs/market.md "Trust")."""

    prior: float = 0.5  # what a provider with no evidence scores
    prior_weight: float = 2.0  # how many records the prior is worth
    half_life_s: float = 7 * 86400.0  # a record's weight halves every half_life_s
    penalty_failures: int = 3  # hard failures within penalty_window_s that exclude a provider
    penalty_window_s: float = 600.0
    cooldown_s: float = 300.0  # the first exclusion; each repeat offence multiplies it by cooldown_factor
    cooldown_factor: float = 2.0
    cooldown_max_s: float = 86400.0
    forgive_after_s: float = 86400.0  # clean this long after a cooldown: the offence count starts again
    latency_alpha: float = 0.3  # weight of a new bid round trip in the latency EWMA

    def __post_init__(self) -> None:
        def check(ok: bool, what: str) -> None:
            if not ok:
                raise AgoraError("invalid_argument", f"trust settings: {what}")

        check(0.0 < self.prior < 1.0, f"prior must be in (0, 1), got {self.prior}")
        for name in ("prior_weight", "half_life_s", "penalty_window_s", "cooldown_s", "cooldown_max_s"):
            v = getattr(self, name)
            check(math.isfinite(v) and v > 0, f"{name} must be > 0, got {v}")
        check(self.penalty_failures >= 1, f"penalty_failures must be >= 1, got {self.penalty_failures}")
        check(math.isfinite(self.cooldown_factor) and self.cooldown_factor >= 1, "cooldown_factor must be >= 1")
        check(math.isfinite(self.forgive_after_s) and self.forgive_after_s >= 0, "forgive_after_s must be >= 0")
        check(0.0 < self.latency_alpha <= 1.0, f"latency_alpha must be in (0, 1], got {self.latency_alpha}")


@dataclass(frozen=True)
class Evidence:
    """One recorded observation of a provider, citing the signed thing(s) it comes from."""

    provider: str
    kind: str
    at: float
    cites: Mapping[str, str] = field(default_factory=dict)  # receipt CID, bid / award request id, event, job...
    detail: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise AgoraError("invalid_argument", f"unknown evidence kind {self.kind!r}; known: {', '.join(KINDS)}")
        if not self.provider.startswith("did:"):
            raise AgoraError("did_invalid", f"evidence about {self.provider!r}: not a DID")
        if not math.isfinite(self.at):
            raise AgoraError("invalid_argument", "evidence time must be finite")
        unknown = set(self.cites) - CITES
        if unknown:
            raise AgoraError("invalid_argument", f"evidence cites unknown things: {', '.join(sorted(unknown))}")
        if not self.cites:
            raise AgoraError("invalid_argument", "evidence must cite what it comes from (receipt, award, event...)")

    @property
    def good(self) -> bool:
        return KINDS[self.kind][0]

    @property
    def id(self) -> str:
        """Same provider, kind and citations: the same record (recording it twice changes nothing)."""
        key = json.dumps([self.provider, self.kind, dict(sorted(self.cites.items()))], separators=(",", ":"))
        return "ev-" + hashlib.sha256(key.encode()).hexdigest()[:32]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.provider,
            "kind": self.kind,
            "good": self.good,
            "at": self.at,
            "cites": dict(self.cites),
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Evidence:
        return cls(
            provider=str(d["provider"]),
            kind=str(d["kind"]),
            at=float(d["at"]),
            cites={str(k): str(v) for k, v in dict(d.get("cites", {})).items()},
            detail=str(d.get("detail", "")),
        )


@dataclass(frozen=True)
class Penalty:
    """Where a provider stands with the reliability penalty at `now`."""

    cooling_until: float | None  # excluded until then (None: admitted)
    offences: int  # cooldowns in the current run of offences (starts again after forgive_after_s clean)
    recent_failures: int  # hard failures counting toward the next cooldown

    def cooling(self, now: float) -> bool:
        return self.cooling_until is not None and now < self.cooling_until


@dataclass(frozen=True)
class TrustReport:
    """A provider's score with its breakdown: what `agora trust show` and `job why` print."""

    provider: str
    score: float
    prior: float
    good: float  # decayed weight of the good records
    bad: float  # decayed weight of the bad records
    counts: Mapping[str, int]  # records per kind (not decayed)
    weights: Mapping[str, float]  # decayed weight per kind
    penalty: Penalty
    last_at: float | None
    latency_ms: float | None = None

    @property
    def known(self) -> bool:
        return bool(self.counts)

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        p = self.penalty
        cooling = p.cooling_until is not None and (now is None or now < p.cooling_until)
        return {
            "provider": self.provider,
            "score": round(self.score, 6),
            "prior": self.prior,
            "known": self.known,
            "good": round(self.good, 6),
            "bad": round(self.bad, 6),
            "counts": dict(self.counts),
            "weights": {k: round(v, 6) for k, v in self.weights.items()},
            "cooling_down": cooling,
            "cooling_until": p.cooling_until if cooling else None,
            "offences": p.offences,
            "recent_failures": p.recent_failures,
            "last_at": self.last_at,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 3),
        }


def decay(age_s: float, half_life_s: float) -> float:
    """The weight left to a record `age_s` old (a record from the future counts in full)."""
    return float(0.5 ** (max(0.0, age_s) / half_life_s))


def score_of(good: float, bad: float, settings: TrustSettings) -> float:
    a = settings.prior * settings.prior_weight
    b = (1.0 - settings.prior) * settings.prior_weight
    return min(1.0, max(0.0, (a + good) / (a + b + good + bad)))


def penalty(records: Iterable[Evidence], now: float, settings: TrustSettings) -> Penalty:
    """Replay the hard failures in time order (see the module doc): the cooldown in force at `now`, if any."""
    failures = sorted(r.at for r in records if r.kind in HARD_FAILURES and r.at <= now)
    window: list[float] = []
    offences = 0
    until: float | None = None  # the end of the last cooldown
    for at in failures:
        if until is not None and at < until:
            continue  # failures of work already running when it was excluded: that offence is counted
        if until is not None and at - until >= settings.forgive_after_s:
            offences = 0
        window = [t for t in window if at - t < settings.penalty_window_s] + [at]
        if len(window) >= settings.penalty_failures:
            offences += 1
            length = min(settings.cooldown_max_s, settings.cooldown_s * settings.cooldown_factor ** (offences - 1))
            until = at + length
            window = []
    if until is not None and now - until >= settings.forgive_after_s:
        offences = 0
    recent = [t for t in window if now - t < settings.penalty_window_s]
    return Penalty(until if until is not None and now < until else None, offences, len(recent))


def report(
    provider: str,
    records: Iterable[Evidence],
    now: float,
    settings: TrustSettings,
    *,
    latency_ms: float | None = None,
) -> TrustReport:
    """`provider`'s score at `now` from its records (those of other providers are ignored)."""
    mine = [r for r in records if r.provider == provider]
    counts: dict[str, int] = {}
    weights: dict[str, float] = {}
    good = bad = 0.0
    for r in mine:
        w = KINDS[r.kind][1] * decay(now - r.at, settings.half_life_s)
        counts[r.kind] = counts.get(r.kind, 0) + 1
        weights[r.kind] = weights.get(r.kind, 0.0) + w
        if r.good:
            good += w
        else:
            bad += w
    return TrustReport(
        provider=provider,
        score=score_of(good, bad, settings),
        prior=settings.prior,
        good=good,
        bad=bad,
        counts=dict(sorted(counts.items())),
        weights=dict(sorted(weights.items())),
        penalty=penalty(mine, now, settings),
        last_at=max((r.at for r in mine), default=None),
        latency_ms=latency_ms,
    )


def ewma(previous: float | None, sample: float, alpha: float) -> float:
    """The latency estimate after one more sample (the first sample is taken as is)."""
    return sample if previous is None else alpha * sample + (1.0 - alpha) * previous


__all__ = [
    "CITES",
    "HARD_FAILURES",
    "KINDS",
    "Evidence",
    "Penalty",
    "TrustReport",
    "TrustSettings",
    "decay",
    "ewma",
    "penalty",
    "report",
    "score_of",
]
