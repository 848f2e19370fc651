"""A model offer: a model a provider serves, with its per-token prices, as a capacity ad carries it.

Kept apart from `wire.inference` (quotes, metering) because `wire.market`'s capacity ad carries offers
and `wire.inference` builds on `wire.market`'s signed-message base.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agora.errors import AgoraError

MODEL_KINDS = ("chat", "completion", "embeddings")
MAX_MODELS = 32
_MODEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}")


def price_of(tokens_in: int, tokens_out: int, price_in_1k: int, price_out_1k: int) -> int:
    """The price of a request in minor units: per 1,000 tokens, each direction rounded up."""
    return -(-tokens_in * price_in_1k // 1000) + -(-tokens_out * price_out_1k // 1000)


def valid_model_id(model: Any) -> bool:
    return isinstance(model, str) and _MODEL_RE.fullmatch(model) is not None


def _bad_offer(key: str, expected: str) -> AgoraError:
    return AgoraError("model_offer_invalid", f"model offer: {key!r} must be {expected}", details={"field": key})


@dataclass(frozen=True)
class ModelOffer:
    """A model a provider serves, as its capacity ad carries it (the runner stays the provider's business)."""

    model: str
    kind: str  # chat | completion | embeddings
    context: int  # context length in tokens
    price_in: int  # minor units per 1,000 input tokens
    price_out: int  # minor units per 1,000 output tokens
    max_concurrency: int = 1

    def __post_init__(self) -> None:
        if not valid_model_id(self.model):
            raise _bad_offer("model", "1-128 letters, digits or ._:/@+- (starting with a letter or digit)")
        if self.kind not in MODEL_KINDS:
            raise _bad_offer("kind", f"one of {', '.join(MODEL_KINDS)}")
        for key, low in (("context", 1), ("price_in", 0), ("price_out", 0), ("max_concurrency", 1)):
            v = getattr(self, key)
            if type(v) is not int or v < low:
                raise _bad_offer(key, f"an integer >= {low}")

    def price(self, tokens_in: int, tokens_out: int) -> int:
        return price_of(tokens_in, tokens_out, self.price_in, self.price_out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "kind": self.kind,
            "context": self.context,
            "price_in": self.price_in,
            "price_out": self.price_out,
            "max_concurrency": self.max_concurrency,
        }

    @classmethod
    def from_dict(cls, data: Any) -> ModelOffer:
        keys = {"model", "kind", "context", "price_in", "price_out", "max_concurrency"}
        if not isinstance(data, Mapping) or not set(data) <= keys or not {"model", "kind", "context"} <= set(data):
            raise _bad_offer("offer", f"a map with model, kind, context (and optionally {sorted(keys)})")
        return cls(
            data["model"],
            data["kind"],
            data["context"],
            data.get("price_in", 0),
            data.get("price_out", 0),
            data.get("max_concurrency", 1),
        )


def models_from_wire(value: Any) -> tuple[ModelOffer, ...]:
    """An ad's `models` list, checked (at most MAX_MODELS, one offer per model id)."""
    if not isinstance(value, list) or len(value) > MAX_MODELS:
        raise _bad_offer("models", f"a list of at most {MAX_MODELS} model offers")
    out = tuple(ModelOffer.from_dict(v) for v in value)
    if len({m.model for m in out}) != len(out):
        raise _bad_offer("models", "a list with one offer per model id")
    return out


__all__ = ["MAX_MODELS", "MODEL_KINDS", "ModelOffer", "models_from_wire", "price_of", "valid_model_id"]
