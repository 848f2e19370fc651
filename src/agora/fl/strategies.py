"""Aggregation strategies as small classes, the update checks, clipping with Gaussian noise, and the
update's byte form (what the receipt's hash names).

- `FedAvg`: the mean of the updates weighted by their example counts.
- `FedProx`: FedAvg on the server; the proximal term lives in the trainer (`proximal_mu`).
- `Median`: coordinate-wise median (robust to a minority of poisoned updates).
- `TrimmedMean`: coordinate-wise mean after dropping the `trim_ratio` largest and smallest values.

`check_update(update, like, max_norm)` refuses (`training_update_rejected`, `details.reason` one of
`shape`, `not_finite`, `norm`) an update whose arrays do not have the global model's shapes, hold a NaN or
an infinity, or whose distance from the global model exceeds `max_norm`. `clip_and_noise` bounds each
update's distance from the global model to `clip_norm` and, with `noise_multiplier > 0`, adds Gaussian
noise of standard deviation `noise_multiplier * clip_norm / n_updates` to the aggregate (the multiplier is
recorded in the run's status).

`encode`/`decode` are the update's bytes: an NPZ archive without pickles (arrays `p0..pN`), so the
sha256 in the signed receipt names exactly what the owner aggregates.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from agora.errors import AgoraError
from agora.fl.trainers import Array, Params, flatten

MAX_ARRAYS = 64


@dataclass(frozen=True)
class Update:
    params: Params
    examples: int


class Strategy:
    name: ClassVar[str] = ""

    def aggregate(self, updates: Sequence[Update]) -> Params:
        raise NotImplementedError


class FedAvg(Strategy):
    name = "fedavg"

    def aggregate(self, updates: Sequence[Update]) -> Params:
        total = sum(u.examples for u in updates)
        if not updates or total <= 0:
            raise AgoraError("training_too_few_updates", "nothing to aggregate")
        return [sum(u.params[i] * (u.examples / total) for u in updates) for i in range(len(updates[0].params))]  # type: ignore[misc]


class FedProx(FedAvg):
    name = "fedprox"


class Median(Strategy):
    name = "median"

    def aggregate(self, updates: Sequence[Update]) -> Params:
        if not updates:
            raise AgoraError("training_too_few_updates", "nothing to aggregate")
        return [np.median(np.stack([u.params[i] for u in updates]), axis=0) for i in range(len(updates[0].params))]


class TrimmedMean(Strategy):
    name = "trimmed_mean"

    def __init__(self, trim_ratio: float = 0.2) -> None:
        self.trim_ratio = trim_ratio

    def aggregate(self, updates: Sequence[Update]) -> Params:
        if not updates:
            raise AgoraError("training_too_few_updates", "nothing to aggregate")
        k = math.floor(len(updates) * self.trim_ratio)
        out: Params = []
        for i in range(len(updates[0].params)):
            stacked = np.sort(np.stack([u.params[i] for u in updates]), axis=0)
            out.append(stacked[k : len(updates) - k].mean(axis=0))
        return out


def strategy(name: str, *, trim_ratio: float = 0.2) -> Strategy:
    if name == "trimmed_mean":
        return TrimmedMean(trim_ratio)
    classes: dict[str, type[Strategy]] = {"fedavg": FedAvg, "fedprox": FedProx, "median": Median}
    if name not in classes:
        raise AgoraError("training_spec_invalid", f"no strategy {name!r}", details={"field": "training.strategy"})
    return classes[name]()


def _reject(reason: str, message: str) -> AgoraError:
    return AgoraError("training_update_rejected", message, details={"reason": reason})


def check_update(update: Params, like: Params, *, max_norm: float) -> float:
    """The update's distance from `like` (the global model), or `training_update_rejected` with the reason."""
    if len(update) != len(like) or any(u.shape != g.shape for u, g in zip(update, like, strict=False)):
        got = [tuple(u.shape) for u in update]
        raise _reject("shape", f"update shapes {got[:4]} are not the model's {[tuple(g.shape) for g in like][:4]}")
    for u in update:
        if not np.all(np.isfinite(u)):
            raise _reject("not_finite", "the update holds NaN or infinite values")
    norm = float(np.linalg.norm(flatten(update) - flatten(like)))
    if norm > max_norm:
        raise _reject("norm", f"the update moved the model by {norm:.3g}, above the bound {max_norm:.3g}")
    return norm


def clip(update: Params, like: Params, clip_norm: float) -> Params:
    """`update` moved back towards `like` so that its distance is at most `clip_norm`."""
    delta = [u - g for u, g in zip(update, like, strict=True)]
    norm = float(np.linalg.norm(flatten(delta)))
    scale = min(1.0, clip_norm / norm) if norm > 0 else 1.0
    return [g + d * scale for g, d in zip(like, delta, strict=True)]


def add_noise(params: Params, *, clip_norm: float, noise_multiplier: float, n: int, seed: int) -> Params:
    if noise_multiplier <= 0:
        return params
    rng = np.random.default_rng(seed)
    sd = noise_multiplier * clip_norm / max(n, 1)
    return [p + rng.normal(0.0, sd, p.shape) for p in params]


def encode(params: Sequence[Array]) -> bytes:
    buf = io.BytesIO()
    arrays: dict[str, Any] = {f"p{i}": np.asarray(p, dtype=np.float64) for i, p in enumerate(params)}
    np.savez(buf, **arrays)
    return buf.getvalue()


def decode(data: bytes) -> Params:
    """The arrays of an encoded update; anything else (pickles, too many arrays) is a `shape` rejection."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            names = sorted(z.files, key=lambda s: int(s[1:]) if s[1:].isdigit() else -1)
            if len(names) > MAX_ARRAYS or any(n != f"p{i}" for i, n in enumerate(names)):
                raise _reject("shape", "an update is arrays p0..pN")
            return [np.asarray(z[n], dtype=np.float64) for n in names]
    except (OSError, ValueError) as exc:
        raise _reject("shape", f"an update is an NPZ archive of arrays ({exc})") from None


__all__ = [
    "FedAvg",
    "FedProx",
    "Median",
    "Strategy",
    "TrimmedMean",
    "Update",
    "add_noise",
    "check_update",
    "clip",
    "decode",
    "encode",
    "strategy",
]
