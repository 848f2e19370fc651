"""Placement strategies: small classes that weight the soft score and order the passing candidates.

Every strategy sees the same `Scored` candidates (all passed every hard constraint) and returns a sort
key; `match` appends the provider DID as the last tie-break, so the order never depends on input order.

- `balanced`: the weighted score (quality, cost, trust, latency, affinity), cheaper first on a tie.
- `cheapest`: the lowest quote first; the score breaks ties.
- `fastest`: the highest benchmark score first, then the lowest latency; the score breaks ties.
- `binpack`: the fullest node after placement first (keeps whole nodes free for big jobs).
- `spread`: the emptiest node after placement first (spreads load and failure risk).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from agora.errors import AgoraError
from agora.resources.comparator import Weights


@dataclass(frozen=True)
class Scored:
    """What a strategy may look at for one passing candidate."""

    provider: str
    score: float
    quote: int
    benchmark_score: float | None
    latency_ms: float | None
    utilization: float  # 0..1: how full the offered resources would be with this job placed


class Strategy(Protocol):
    name: ClassVar[str]
    weights: ClassVar[Weights]

    def key(self, s: Scored) -> tuple[Any, ...]: ...


def _score(s: Scored) -> float:
    return -round(s.score, 12)  # float noise must not break ties that should fall to the DID


class Balanced:
    name: ClassVar[str] = "balanced"
    weights: ClassVar[Weights] = Weights()

    def key(self, s: Scored) -> tuple[Any, ...]:
        return (_score(s), s.quote)


class Cheapest:
    name: ClassVar[str] = "cheapest"
    weights: ClassVar[Weights] = Weights(quality=0.25, cost=1.0, trust=0.5, latency=0.25)

    def key(self, s: Scored) -> tuple[Any, ...]:
        return (s.quote, _score(s))


class Fastest:
    name: ClassVar[str] = "fastest"
    weights: ClassVar[Weights] = Weights(quality=1.0, cost=0.25, trust=0.5, latency=0.5)

    def key(self, s: Scored) -> tuple[Any, ...]:
        latency = s.latency_ms if s.latency_ms is not None else float("inf")
        return (-(s.benchmark_score or 0.0), latency, _score(s))


class Binpack:
    name: ClassVar[str] = "binpack"
    weights: ClassVar[Weights] = Weights()

    def key(self, s: Scored) -> tuple[Any, ...]:
        return (-round(s.utilization, 9), _score(s))


class Spread:
    name: ClassVar[str] = "spread"
    weights: ClassVar[Weights] = Weights()

    def key(self, s: Scored) -> tuple[Any, ...]:
        return (round(s.utilization, 9), _score(s))


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (Balanced(), Cheapest(), Fastest(), Binpack(), Spread())}


def strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise AgoraError(
            "invalid_argument", f"unknown placement strategy {name!r}; known: {', '.join(STRATEGIES)}"
        ) from None


__all__ = ["STRATEGIES", "Balanced", "Binpack", "Cheapest", "Fastest", "Scored", "Spread", "Strategy", "strategy"]
