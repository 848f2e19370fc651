"""The training part of a `kind: training` intent: the model, the data it needs, the rounds and the money.

    trainer        softmax | mlp | custom (a Python file with Flower NumPyClient's get_parameters/fit/evaluate)
    hyper          learning_rate, local_epochs, batch_size, hidden (mlp), proximal_mu (FedProx), seed
    strategy       fedavg | fedprox | median | trimmed_mean (trim_ratio)
    schema         the columns the model reads (`DatasetSchema`: features, label, classes)
    data_tags      every tag an offer must carry
    min_providers / max_providers, rounds, round_deadline_s, min_fit (updates a round needs to close)
    max_price_per_update, clip_norm + noise_multiplier (optional DP), max_update_norm (the norm check)

Pure data; `training_from_dict` collects every field error into one `training_spec_invalid`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agora.models.dataset import DatasetSchema, _Problems, _schema

TRAINERS = ("softmax", "mlp", "custom")
STRATEGIES = ("fedavg", "fedprox", "median", "trimmed_mean")
TRAINING_FIELDS = (
    "trainer",
    "hyper",
    "strategy",
    "trim_ratio",
    "schema",
    "data_tags",
    "min_providers",
    "max_providers",
    "rounds",
    "round_deadline_s",
    "min_fit",
    "max_price_per_update",
    "clip_norm",
    "noise_multiplier",
    "max_update_norm",
    "custom_code",
)
HYPER_FIELDS = ("learning_rate", "local_epochs", "batch_size", "hidden", "proximal_mu", "seed")
MAX_ROUNDS = 1000
MAX_PROVIDERS = 256
MAX_DEADLINE_S = 24 * 3600
MAX_CUSTOM_CODE = 256 * 1024


@dataclass(frozen=True)
class Hyper:
    learning_rate: float = 0.1
    local_epochs: int = 1
    batch_size: int = 32
    hidden: int = 32
    proximal_mu: float = 0.0
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in HYPER_FIELDS}


@dataclass(frozen=True)
class TrainingSpec:
    trainer: str
    schema: DatasetSchema
    data_tags: tuple[str, ...]
    hyper: Hyper = field(default_factory=Hyper)
    strategy: str = "fedavg"
    trim_ratio: float = 0.2
    min_providers: int = 1
    max_providers: int = 5
    rounds: int = 3
    round_deadline_s: float = 60.0
    min_fit: int = 1
    max_price_per_update: int | None = None
    clip_norm: float | None = None
    noise_multiplier: float = 0.0
    max_update_norm: float = 1e3
    custom_code: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "trainer": self.trainer,
            "hyper": self.hyper.to_dict(),
            "strategy": self.strategy,
            "trim_ratio": self.trim_ratio,
            "schema": self.schema.to_dict(),
            "data_tags": list(self.data_tags),
            "min_providers": self.min_providers,
            "max_providers": self.max_providers,
            "rounds": self.rounds,
            "round_deadline_s": self.round_deadline_s,
            "min_fit": self.min_fit,
            "max_price_per_update": self.max_price_per_update,
            "clip_norm": self.clip_norm,
            "noise_multiplier": self.noise_multiplier,
            "max_update_norm": self.max_update_norm,
            "custom_code": self.custom_code,
        }


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def training_from_dict(data: Any) -> TrainingSpec:
    """A validated `TrainingSpec`, or one `training_spec_invalid` listing every bad field."""
    p = _Problems("training_spec_invalid", "training")
    if not isinstance(data, Mapping):
        p.add("training", "an object (trainer, schema, data_tags, rounds, ...)", data)
        p.raise_if_any()
    assert isinstance(data, Mapping)
    for key in data:
        if key not in TRAINING_FIELDS:
            p.add(f"training.{key}", f"no such field; known fields: {', '.join(TRAINING_FIELDS)}", key)
    trainer = data.get("trainer", "softmax")
    if trainer not in TRAINERS:
        p.add("training.trainer", f"one of {', '.join(TRAINERS)}", trainer)
    code = data.get("custom_code", "")
    if not isinstance(code, str) or len(code) > MAX_CUSTOM_CODE:
        p.add("training.custom_code", f"the trainer's Python source, at most {MAX_CUSTOM_CODE} bytes", code)
    elif trainer == "custom" and not code.strip():
        p.add("training.custom_code", "the custom trainer's source (trainer: custom)", code)
    strategy = data.get("strategy", "fedavg")
    if strategy not in STRATEGIES:
        p.add("training.strategy", f"one of {', '.join(STRATEGIES)}", strategy)
    trim = data.get("trim_ratio", 0.2)
    if not _num(trim) or not 0 <= trim < 0.5:
        p.add("training.trim_ratio", "a number from 0 to below 0.5", trim)
    schema = _schema(p, data.get("schema"), "training.schema")
    tags = data.get("data_tags", [])
    if not isinstance(tags, list | tuple) or not all(isinstance(t, str) and t for t in tags) or len(tags) > 64:
        p.add("training.data_tags", "a list of at most 64 tags", tags)
    hyper = _hyper(p, data.get("hyper", {}))
    ints = {
        "min_providers": (1, MAX_PROVIDERS, 1),
        "max_providers": (1, MAX_PROVIDERS, 5),
        "rounds": (1, MAX_ROUNDS, 3),
        "min_fit": (1, MAX_PROVIDERS, 1),
    }
    got: dict[str, int] = {}
    for key, (low, high, default) in ints.items():
        v = data.get(key, default)
        if not _int(v) or not low <= v <= high:
            p.add(f"training.{key}", f"an integer from {low} to {high}", v)
        else:
            got[key] = v
    if {"min_providers", "max_providers"} <= got.keys() and got["min_providers"] > got["max_providers"]:
        p.add("training.min_providers", f"at most max_providers ({got['max_providers']})", got["min_providers"])
    if {"min_fit", "max_providers"} <= got.keys() and got["min_fit"] > got["max_providers"]:
        p.add("training.min_fit", f"at most max_providers ({got['max_providers']})", got["min_fit"])
    deadline = data.get("round_deadline_s", 60.0)
    if not _num(deadline) or not 0 < deadline <= MAX_DEADLINE_S:
        p.add("training.round_deadline_s", f"seconds, above 0 and at most {MAX_DEADLINE_S}", deadline)
    price = data.get("max_price_per_update")
    if price is not None and (not _int(price) or price < 0):
        p.add("training.max_price_per_update", "an integer >= 0 (minor units)", price)
    clip = data.get("clip_norm")
    if clip is not None and (not _num(clip) or clip <= 0):
        p.add("training.clip_norm", "a positive number", clip)
    noise = data.get("noise_multiplier", 0.0)
    if not _num(noise) or noise < 0 or (noise > 0 and clip is None):
        p.add("training.noise_multiplier", "a number >= 0 (above 0 only with clip_norm)", noise)
    max_norm = data.get("max_update_norm", 1e3)
    if not _num(max_norm) or max_norm <= 0:
        p.add("training.max_update_norm", "a positive number", max_norm)
    p.raise_if_any()
    assert schema is not None and hyper is not None and isinstance(tags, list | tuple)
    return TrainingSpec(
        trainer=str(trainer),
        schema=schema,
        data_tags=tuple(tags),
        hyper=hyper,
        strategy=str(strategy),
        trim_ratio=float(trim),
        round_deadline_s=float(deadline),
        max_price_per_update=price,
        clip_norm=float(clip) if clip is not None else None,
        noise_multiplier=float(noise),
        max_update_norm=float(max_norm),
        custom_code=str(code),
        **got,
    )


def _hyper(p: _Problems, value: Any) -> Hyper | None:
    if not isinstance(value, Mapping):
        p.add("training.hyper", f"an object ({', '.join(HYPER_FIELDS)})", value)
        return None
    ok = True
    for key in value:
        if key not in HYPER_FIELDS:
            p.add(f"training.hyper.{key}", f"no such field; known fields: {', '.join(HYPER_FIELDS)}", key)
            ok = False
    d = Hyper()
    lr = value.get("learning_rate", d.learning_rate)
    if not _num(lr) or not 0 < lr <= 100:
        p.add("training.hyper.learning_rate", "a number above 0, at most 100", lr)
        ok = False
    mu = value.get("proximal_mu", d.proximal_mu)
    if not _num(mu) or mu < 0:
        p.add("training.hyper.proximal_mu", "a number >= 0", mu)
        ok = False
    limits = {"local_epochs": (1, 1000), "batch_size": (1, 1 << 20), "hidden": (1, 4096), "seed": (0, 2**31)}
    ints: dict[str, int] = {}
    for key, (low, high) in limits.items():
        v = value.get(key, getattr(d, key))
        if not _int(v) or not low <= v <= high:
            p.add(f"training.hyper.{key}", f"an integer from {low} to {high}", v)
            ok = False
        else:
            ints[key] = v
    if not ok:
        return None
    return Hyper(learning_rate=float(lr), proximal_mu=float(mu), **ints)


__all__ = ["HYPER_FIELDS", "STRATEGIES", "TRAINERS", "TRAINING_FIELDS", "Hyper", "TrainingSpec", "training_from_dict"]
