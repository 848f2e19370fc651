"""Matching a training intent against data offers (pure): every failing reason per offer, counts, choice.

For each data offer in the verified data ads (one provider's offers in one ad), the hard filter lists
every reason it cannot serve the intent, never stopping at the first:

    stale_ad              the provider's data ad is past iat + ttl
    offer_expired         the offer is outside its validity window
    data_tags_missing     the offer lacks some of the intent's data_tags (named)
    schema_mismatch       features / label / classes differ (named by `schema_problems`)
    custom_code_refused   the intent brings a custom trainer and the offer accepts built-in ones only
    over_budget           price per update above max_price_per_update, or one provider's rounds above
                          the whole budget

The passing offers are ranked cheapest first, then most rows, then provider DID (deterministic), one
offer per provider, and chosen while the running cost (price x rounds) stays within the budget, up to
`max_providers`. Fewer than `min_providers` chosen is no match, with the counts per reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agora.models.dataset import DatasetOffer, schema_problems
from agora.models.training import TrainingSpec
from agora.wire.fl import DataAd


@dataclass(frozen=True)
class DataVerdict:
    provider: str
    offer_id: str
    reasons: tuple[tuple[str, str], ...]  # (code, text)
    cost: int = 0

    @property
    def passed(self) -> bool:
        return not self.reasons

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "offer_id": self.offer_id,
            "passed": self.passed,
            "cost": self.cost,
            "reasons": [{"code": c, "text": t} for c, t in self.reasons],
        }


@dataclass(frozen=True)
class TrainingDecision:
    verdicts: tuple[DataVerdict, ...]
    chosen: tuple[DatasetOffer, ...]
    counts: dict[str, int] = field(default_factory=dict)
    total_cost: int = 0

    @property
    def matched(self) -> bool:
        return bool(self.chosen)

    def to_dict(self) -> dict[str, Any]:
        return {
            "matched": self.matched,
            "considered": len(self.verdicts),
            "chosen": [{"provider": o.provider, "offer_id": o.offer_id} for o in self.chosen],
            "total_cost": self.total_cost,
            "counts": dict(self.counts),
            "verdicts": [v.to_dict() for v in self.verdicts],
        }


def judge(offer: DatasetOffer, spec: TrainingSpec, *, budget: int | None, now: float, ad_expires: float) -> DataVerdict:
    reasons: list[tuple[str, str]] = []
    if now >= ad_expires:
        reasons.append(("stale_ad", "the provider's data ad has expired"))
    if not offer.is_valid_at(now):
        reasons.append(("offer_expired", "the offer is outside its validity window"))
    missing = sorted(set(spec.data_tags) - offer.tags)
    if missing:
        reasons.append(("data_tags_missing", f"missing tags: {', '.join(missing)}"))
    problems = schema_problems(spec.schema, offer.schema)
    if problems:
        reasons.append(("schema_mismatch", "; ".join(problems)))
    if spec.trainer == "custom" and not offer.custom_code:
        reasons.append(("custom_code_refused", "the offer runs built-in trainers only"))
    cost = offer.price_per_update * spec.rounds
    if spec.max_price_per_update is not None and offer.price_per_update > spec.max_price_per_update:
        reasons.append(("over_budget", f"{offer.price_per_update} per update, limit {spec.max_price_per_update}"))
    elif budget is not None and cost > budget:
        reasons.append(("over_budget", f"{cost} for {spec.rounds} rounds, budget {budget}"))
    return DataVerdict(offer.provider, offer.offer_id, tuple(reasons), cost)


def match_training(
    spec: TrainingSpec,
    ads: Iterable[DataAd],
    *,
    budget: int | None,
    now: float,
    exclude: frozenset[str] = frozenset(),
    one_per_provider: bool = True,
) -> TrainingDecision:
    """Judge every offer of every ad (see the module doc); `exclude`: providers never chosen (the owner);
    `one_per_provider=False`: several data sets of one provider may each serve (a single-machine run)."""
    verdicts: list[DataVerdict] = []
    passing: list[tuple[DataVerdict, DatasetOffer]] = []
    for ad in sorted(ads, key=lambda a: a.provider):
        if ad.provider in exclude:
            continue
        for offer in sorted(ad.offers, key=lambda o: o.offer_id):
            v = judge(offer, spec, budget=budget, now=now, ad_expires=ad.expires_at)
            verdicts.append(v)
            if v.passed:
                passing.append((v, offer))
    counts: dict[str, int] = {}
    for v in verdicts:
        for code, _ in v.reasons:
            counts[code] = counts.get(code, 0) + 1
    passing.sort(key=lambda vo: (vo[1].price_per_update, -vo[1].rows, vo[1].provider, vo[1].offer_id))
    chosen: list[DatasetOffer] = []
    seen: set[str] = set()
    total = 0
    for v, offer in passing:
        if (one_per_provider and offer.provider in seen) or len(chosen) >= spec.max_providers:
            continue
        if budget is not None and total + v.cost > budget:
            counts["over_budget"] = counts.get("over_budget", 0) + 1
            continue
        chosen.append(offer)
        seen.add(offer.provider)
        total += v.cost
    if len(chosen) < spec.min_providers:
        counts["too_few_providers"] = 1
        return TrainingDecision(tuple(verdicts), (), counts, 0)
    return TrainingDecision(tuple(verdicts), tuple(chosen), counts, total)


__all__ = ["DataVerdict", "TrainingDecision", "judge", "match_training"]
