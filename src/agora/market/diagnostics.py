"""The `why` of a placement: every candidate's verdict, counts per reason, and what would make it fit.

A `Decision` keeps every candidate considered (chosen ones first, then the other passing ones in order,
then the rejected ones with every reason), the counts per reason code (a candidate counts once per
code), and `what_would_fit`: for each rejected candidate whose reasons can all be relaxed by the
requester (quantities, budget, min_trust), the smallest change that would let it pass, e.g.
"raise the budget to 1,200" or "lower memory to 2 GiB". The best few are kept (fewest changes, then
smallest relative change, then DID), and `hint` joins them with "or".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agora.models.capability import Reason, format_bytes, format_cpu, format_gpus
from agora.resources.comparator import ScorePart

MAX_SUGGESTIONS = 3

# reason code -> (the requester's parameter, how to say the change); only these can be relaxed by the requester
_RELAX: dict[str, tuple[str, str]] = {
    "insufficient_cpu": ("cpu", "lower cpu to {}"),
    "insufficient_memory": ("memory", "lower memory to {}"),
    "insufficient_disk": ("disk", "lower disk to {}"),
    "insufficient_gpu": ("gpu", "lower gpu count to {}"),
    "insufficient_vram": ("gpu_vram", "lower gpu vram to {}"),
    "over_budget": ("budget", "raise the budget to {}"),
    "trust_below_min": ("min_trust", "lower min_trust to {}"),
}
_FORMAT: dict[str, Callable[[Any], str]] = {
    "cpu": format_cpu,
    "memory": format_bytes,
    "disk": format_bytes,
    "gpu": format_gpus,
    "gpu_vram": format_bytes,
    "budget": lambda v: f"{v:,}",
    "min_trust": lambda v: f"{v:g}",
}


@dataclass(frozen=True)
class Verdict:
    """One candidate: passed or not, every reason, its quote, score breakdown and place in the order."""

    provider: str
    ok: bool
    reasons: tuple[Reason, ...] = ()
    quote: int | None = None
    score: float = 0.0
    breakdown: Mapping[str, ScorePart] = field(default_factory=dict)
    position: int | None = None  # 1-based among passing candidates
    chosen: bool = False  # picked by matching: asked for a bid (not yet placed; see `round_outcomes`)

    @property
    def codes(self) -> list[str]:
        return [r.code for r in self.reasons]

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            # "asked" (to bid), never "placed": what became of the bid is `round_outcomes`' (a round's bids,
            # declines and placement), so only the provider the work went to reads as placed
            "verdict": "asked" if self.chosen else ("passed" if self.ok else "rejected"),
            "ok": self.ok,
            "quote": self.quote,
            "score": self.score,
            "position": self.position,
            "breakdown": {k: v.to_dict() for k, v in self.breakdown.items()},
            "reasons": [r.to_dict() for r in self.reasons],
        }


@dataclass(frozen=True)
class Change:
    param: str  # cpu | memory | disk | gpu | gpu_vram | budget | min_trust
    value: Any
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"param": self.param, "value": self.value, "text": self.text}


@dataclass(frozen=True)
class Suggestion:
    """Changes to the job that would let `provider` pass (every one of them is needed)."""

    provider: str
    changes: tuple[Change, ...]
    cost: float  # relative size of the change; smaller first

    @property
    def text(self) -> str:
        return " and ".join(c.text for c in self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "text": self.text, "changes": [c.to_dict() for c in self.changes]}


@dataclass(frozen=True)
class Decision:
    strategy: str
    chosen: tuple[str, ...]
    candidates: tuple[Verdict, ...]
    counts: Mapping[str, int]
    what_would_fit: tuple[Suggestion, ...] = ()

    @property
    def placed(self) -> bool:
        return bool(self.chosen)

    @property
    def passed(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.candidates if v.ok)

    @property
    def rejected(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.candidates if not v.ok)

    @property
    def hint(self) -> str | None:
        return " or ".join(s.text for s in self.what_would_fit) or None

    def verdict(self, provider: str) -> Verdict:
        for v in self.candidates:
            if v.provider == provider:
                return v
        raise KeyError(provider)

    def head(self, limit: int) -> tuple[Verdict, ...]:
        """The first `limit` candidates (what a `why` keeps when the market is large)."""
        return self.candidates[:limit]

    def _sizes(self) -> tuple[int, int]:
        """(considered, passed)."""
        return len(self.candidates), sum(1 for v in self.candidates if v.ok)

    def to_dict(self, limit: int | None = None) -> dict[str, Any]:
        """The whole decision; with `limit`, only the first `limit` candidates (counts and sizes are whole)."""
        considered, passed = self._sizes()
        candidates = self.candidates if limit is None else self.head(limit)
        return {
            "strategy": self.strategy,
            "chosen": list(self.chosen),
            "considered": considered,
            "passed": passed,
            "counts": dict(self.counts),
            "what_would_fit": [s.to_dict() for s in self.what_would_fit],
            "hint": self.hint,
            "candidates": [v.to_dict() for v in candidates],
        }


def round_outcomes(rnd: Mapping[str, Any], placed: Iterable[str] = ()) -> dict[str, Any]:
    """A placement round's record (`decision`, `bids`, `declines`, `failures`, `provider`) with each candidate's
    `outcome` and `outcome_text` filled in, exactly one of: `placed` ("placed here" — the round's provider and
    `placed`, e.g. a unit's replicas), `failed` (the award or start failed there), `bid` (bid, another won),
    `declined` (with its reasons), `asked` (asked to bid, no answer), `passed` (fits, not asked), `rejected`
    (with its reasons). A copy: the record is left as it is."""
    decision = dict(rnd.get("decision") or {})
    won = {p for p in (rnd.get("provider"), *placed) if p}
    bids = {str(b.get("provider")): b.get("price") for b in rnd.get("bids") or []}
    declines = {str(d.get("provider")): d for d in rnd.get("declines") or []}
    failures = {str(f.get("provider")): f for f in rnd.get("failures") or []}
    out = []
    for cand in decision.get("candidates") or []:
        p = str(cand.get("provider"))
        if p in won:
            price = rnd.get("price") if p == rnd.get("provider") else None
            kind, text = "placed", "placed here" + (f" at {price:,}" if isinstance(price, int) else "")
        elif p in failures:
            f = failures[p]
            kind, text = "failed", f"{f.get('stage', 'placement')} failed: {f.get('code', '')}"
        elif p in bids:
            price = bids[p]
            kind, text = "bid", "bid" + (f" {price:,}" if isinstance(price, int) else "") + ", not placed here"
        elif p in declines:
            reasons = declines[p].get("reasons") or []
            kind, text = "declined", "declined: " + "; ".join(str(r.get("code", "")) for r in reasons)
        elif cand.get("verdict") in ("asked", "chosen"):  # "chosen": a record written before "asked"
            kind, text = "asked", "asked to bid, no answer"
        elif cand.get("ok"):
            kind, text = "passed", "passed, not asked"
        else:
            codes = dict.fromkeys(str(r.get("code", "")) for r in cand.get("reasons") or [])
            kind, text = "rejected", "rejected: " + ", ".join(codes)
        out.append({**cand, "outcome": kind, "outcome_text": text})
    return {**rnd, "decision": {**decision, "candidates": out}} if decision else dict(rnd)


def count_reasons(verdicts: Iterable[Verdict]) -> dict[str, int]:
    """Rejections per reason code (a candidate counts once per code), most common first, then by code."""
    counts: dict[str, int] = {}
    for v in verdicts:
        for code in dict.fromkeys(r.code for r in v.reasons):
            counts[code] = counts.get(code, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def relax(code: str, value: Any) -> Change | None:
    """The change to the job that relaxes a reason `code` down (or up) to what the candidate has, `value`;
    None for a reason the requester cannot relax."""
    found = _RELAX.get(code)
    if found is None:
        return None
    param, template = found
    if param == "min_trust" and value is None:  # unknown trust passes no min_trust, however low
        return Change(param, None, "drop min_trust (the provider's trust is unknown)")
    return Change(param, value, template.format(_FORMAT[param](value)))


def _change(reason: Reason) -> tuple[Change, float] | None:
    param = _RELAX.get(reason.code, ("", ""))[0]
    value = reason.have
    if not param:
        return None
    if param == "min_trust":
        rel = 1.0 if value is None else float(reason.need) - float(value)
    elif isinstance(reason.need, int) and isinstance(value, int) and reason.need > 0:
        rel = abs(reason.need - value) / reason.need
    else:
        return None
    change = relax(reason.code, value)
    return None if change is None else (change, rel)


def suggest(verdict: Verdict) -> Suggestion | None:
    """The changes that would let this rejected candidate pass, or None if some reason cannot be relaxed."""
    if verdict.ok or not verdict.reasons:
        return None
    changes: list[Change] = []
    total = 0.0
    for reason in verdict.reasons:
        found = _change(reason)
        if found is None:
            return None
        changes.append(found[0])
        total += found[1]
    return Suggestion(verdict.provider, tuple(changes), total)


def what_would_fit(verdicts: Iterable[Verdict], limit: int = MAX_SUGGESTIONS) -> tuple[Suggestion, ...]:
    """The `limit` smallest distinct suggestions: fewest changes, then smallest relative change, then DID."""
    found = [s for v in verdicts if (s := suggest(v)) is not None]
    found.sort(key=lambda s: (len(s.changes), s.cost, s.provider))
    out: list[Suggestion] = []
    seen: set[str] = set()
    for s in found:
        if s.text not in seen:
            seen.add(s.text)
            out.append(s)
        if len(out) >= limit:
            break
    return tuple(out)


__all__ = [
    "Change",
    "Decision",
    "Suggestion",
    "Verdict",
    "count_reasons",
    "relax",
    "round_outcomes",
    "suggest",
    "what_would_fit",
]
