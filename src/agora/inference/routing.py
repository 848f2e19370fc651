"""Choosing providers for a request: candidates, strategies, request-level controls, fallback.

**Candidates** are the model offers in verified capacity ads (`candidates_from_ads`), with what this node
measured of each provider (`ProviderStats`: throughput and time to first token, EWMA).

**Strategies** are small classes that order candidates (`STRATEGIES`): `cheapest` (estimated price for the
request), `fastest` (measured tokens/s, then TTFT; unmeasured providers after measured ones), `balanced`
(the sum of both ranks), `pinned` (exactly the `order` given).

**Controls** (`RoutingPolicy`, the names OpenRouter's users know): `order` (these providers first, in this
order), `only`, `ignore`, `allow_fallbacks` (false: the first choice only), `max_price` (an offer whose
estimate exceeds it is left out). Providers cooling down after repeated failures (trust's penalty) are
left out while another provider is eligible.

**Fallback** (`fallback`): each planned provider is tried at most once, in order; the next is tried on
429, 5xx/garbage, timeout, model-not-found or an unreachable runner; any other error (over budget, a prompt
over the context) is the request's own fault and ends routing at once. Every failure is reported
(`on_failure`), so the node feeds trust's reliability penalty; when all fail: `no_provider` listing the
attempts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from agora.errors import AgoraError
from agora.wire.market import CapacityAd
from agora.wire.model_offer import ModelOffer

FALLBACK_CODES = frozenset(
    {
        "inference_rate_limited",
        "runner_failed",
        "timeout",
        "model_not_found",
        "runner_unavailable",
        "unavailable",
        "metering_invalid",
        "quote_invalid",
    }
)
_ALPHA = 0.3
T = TypeVar("T")


@dataclass
class ProviderStats:
    """What this node measured of one provider (EWMA over its answers)."""

    tokens_per_s: float | None = None
    ttft_s: float | None = None
    successes: int = 0
    failures: int = 0

    def observe(self, tokens_out: int, duration_s: float, ttft_s: float) -> None:
        if duration_s > 0 and tokens_out > 0:
            tps = tokens_out / duration_s
            self.tokens_per_s = tps if self.tokens_per_s is None else (1 - _ALPHA) * self.tokens_per_s + _ALPHA * tps
        self.ttft_s = ttft_s if self.ttft_s is None else (1 - _ALPHA) * self.ttft_s + _ALPHA * ttft_s
        self.successes += 1


@dataclass(frozen=True)
class Candidate:
    provider: str
    offer: ModelOffer
    stats: ProviderStats = field(default_factory=ProviderStats, compare=False)

    def estimate(self, est_in: int, est_out: int) -> int:
        return self.offer.price(est_in, est_out)


def candidates_from_ads(
    ads: Iterable[CapacityAd], model: str, now: float, stats: dict[str, ProviderStats] | None = None
) -> list[Candidate]:
    """Every unexpired ad offering `model` (one candidate per provider)."""
    stats = stats if stats is not None else {}
    out = []
    for ad in ads:
        if ad.expires_at < now:
            continue
        for m in ad.models:
            if m.model == model:
                out.append(Candidate(ad.provider, m, stats.setdefault(ad.provider, ProviderStats())))
    return sorted(out, key=lambda c: c.provider)


def with_own_ad(ads: Iterable[CapacityAd], own: CapacityAd | None) -> list[CapacityAd]:
    """The market's ads with this node's own newest published ad in place of what the index showed of it
    (a snapshot read just after a publish, or one that missed the key, must not hide what this node offers).
    An index entry with a higher seq than `own` (a newer publish this view has not caught up with) stays."""
    out = list(ads)
    if own is None:
        return out
    mine = [a for a in out if a.provider == own.provider]
    if mine and max(a.seq for a in mine) >= own.seq:
        return out
    return sorted([a for a in out if a.provider != own.provider] + [own], key=lambda a: a.provider)


@dataclass(frozen=True)
class RoutingPolicy:
    strategy: str = "balanced"
    order: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    allow_fallbacks: bool = True
    max_price: int | None = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise AgoraError("invalid_argument", f"routing strategy must be one of {', '.join(STRATEGIES)}")
        if self.strategy == "pinned" and not self.order:
            raise AgoraError("invalid_argument", "the pinned strategy needs `order` (the providers to use)")
        if self.max_price is not None and (type(self.max_price) is not int or self.max_price < 0):
            raise AgoraError("invalid_argument", "max_price must be a non-negative integer (minor units)")


class Strategy(Protocol):
    name: str

    def rank(self, cands: Sequence[Candidate], est_in: int, est_out: int) -> list[Candidate]: ...


class Cheapest:
    name = "cheapest"

    def rank(self, cands: Sequence[Candidate], est_in: int, est_out: int) -> list[Candidate]:
        return sorted(cands, key=lambda c: (c.estimate(est_in, est_out), c.provider))


class Fastest:
    name = "fastest"

    def rank(self, cands: Sequence[Candidate], est_in: int, est_out: int) -> list[Candidate]:
        def key(c: Candidate) -> tuple[int, float, float, str]:
            s = c.stats
            if s.tokens_per_s is None:
                return (1, 0.0, 0.0, c.provider)
            return (0, -s.tokens_per_s, s.ttft_s or 0.0, c.provider)

        return sorted(cands, key=key)


class Balanced:
    name = "balanced"

    def rank(self, cands: Sequence[Candidate], est_in: int, est_out: int) -> list[Candidate]:
        by_price = {c.provider: i for i, c in enumerate(Cheapest().rank(cands, est_in, est_out))}
        by_speed = {c.provider: i for i, c in enumerate(Fastest().rank(cands, est_in, est_out))}
        return sorted(cands, key=lambda c: (by_price[c.provider] + by_speed[c.provider], by_price[c.provider]))


class Pinned:
    name = "pinned"

    def rank(self, cands: Sequence[Candidate], est_in: int, est_out: int) -> list[Candidate]:
        return list(cands)  # `plan` puts `order` first and, pinned, keeps nothing else


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (Cheapest(), Fastest(), Balanced(), Pinned())}


def plan(
    cands: Sequence[Candidate],
    policy: RoutingPolicy,
    est_in: int,
    est_out: int,
    *,
    cooling: Callable[[str], bool] = lambda _p: False,
) -> list[Candidate]:
    """The providers to try, in order (each once). Empty when none is eligible."""
    pool = [c for c in cands if c.provider not in policy.ignore and (not policy.only or c.provider in policy.only)]
    if policy.max_price is not None:
        pool = [c for c in pool if c.estimate(est_in, est_out) <= policy.max_price]
    warm = [c for c in pool if not cooling(c.provider)]
    pool = warm or pool  # a provider cooling down is used only when nothing else is eligible
    ranked = STRATEGIES[policy.strategy].rank(pool, est_in, est_out)
    if policy.order:
        pos = {p: i for i, p in enumerate(policy.order)}
        first = sorted((c for c in ranked if c.provider in pos), key=lambda c: pos[c.provider])
        rest = [] if policy.strategy == "pinned" else [c for c in ranked if c.provider not in pos]
        ranked = first + rest
    out: list[Candidate] = []
    for c in ranked:  # never the same provider twice
        if all(c.provider != o.provider for o in out):
            out.append(c)
    return out[:1] if not policy.allow_fallbacks else out


@dataclass
class Attempt:
    provider: str
    code: str
    message: str


async def fallback(
    planned: Sequence[Candidate],
    call: Callable[[Candidate], Awaitable[T]],
    *,
    on_failure: Callable[[Candidate, AgoraError], Awaitable[None]] | None = None,
    model: str = "",
) -> T:
    """`call` each planned provider once, in order, until one answers (see the module docstring)."""
    if not planned:
        raise AgoraError(
            "model_not_found", f"no eligible provider offers model {model!r} now", details={"model": model}
        )
    attempts: list[Attempt] = []
    for cand in planned:
        try:
            return await call(cand)
        except AgoraError as exc:
            attempts.append(Attempt(cand.provider, exc.code, exc.message))
            if on_failure is not None:
                await on_failure(cand, exc)
            if exc.code not in FALLBACK_CODES:
                raise
    raise AgoraError(
        "no_provider",
        f"all {len(attempts)} provider(s) of {model!r} failed",
        details={"attempts": [a.__dict__ for a in attempts]},
    )


__all__ = [
    "FALLBACK_CODES",
    "STRATEGIES",
    "Attempt",
    "Balanced",
    "Candidate",
    "Cheapest",
    "Fastest",
    "Pinned",
    "ProviderStats",
    "RoutingPolicy",
    "Strategy",
    "candidates_from_ads",
    "fallback",
    "plan",
    "with_own_ad",
]
