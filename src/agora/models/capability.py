"""What a machine has or a task needs, whether one fits the other, and capacity arithmetic (pure).

A `Capability` is used on both sides of a match: a machine's free capacity (`have`) and a task's
requirement (`need`). Hard dimensions decide `fits`; soft ones (price, trust, latency, benchmark score)
only order fitting machines (see `agora.resources.comparator.rank`).

`fits` never stops at the first failure: it returns a `Reason` for every failing dimension, because
"why was my job not placed?" must be answerable in one look, and counts per reason code across
candidates (the `why` view) are only honest when every failing dimension is counted.

Amounts are integers (bytes, milli-cores, GPUs) so that add/subtract are exact and capacity never
drifts; money is integer minor units.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from types import MappingProxyType
from typing import Any

from agora.errors import AgoraError

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB
# the most any amount of money (a price, a quote, a budget) can be: the ledger's MAX_AMOUNT; anything above
# is a typo or an attack, and a record holding it could not be stored (signed 64-bit integers)
MAX_MINOR_UNITS = 2**62

_ARCH_ALIASES = {
    "amd64": "x86_64",
    "x64": "x86_64",
    "x86-64": "x86_64",
    "arm64": "aarch64",
    "armv8": "aarch64",
    "armv8l": "aarch64",
    "i386": "x86",
    "i686": "x86",
}
_INT_FIELDS = ("cpu_millis", "memory_bytes", "disk_bytes", "gpu_count", "gpu_vram_bytes")
_QUANTITIES = ("cpu_millis", "memory_bytes", "disk_bytes", "gpu_count")  # what add/subtract move


def _invalid(field_name: str, message: str) -> AgoraError:
    return AgoraError("capability_invalid", f"{field_name}: {message}", details={"field": field_name})


def normalize_arch(arch: str) -> str:
    """One spelling per architecture, so `arm64` (Docker, macOS) and `aarch64` (Linux) match."""
    a = arch.strip().lower()
    return _ARCH_ALIASES.get(a, a)


def format_bytes(n: int) -> str:
    """Binary units, at most two decimals: 4 GiB, 1.5 GiB, 512 MiB, 100 B."""
    for unit, size in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size:
            return f"{_trim(n / size)} {unit}"
    return f"{n} B"


def format_cpu(millis: int) -> str:
    cores = _trim(millis / 1000, 3)
    return f"{cores} core" if millis == 1000 else f"{cores} cores"


def format_gpus(count: int) -> str:
    return f"{count} GPU" if count == 1 else f"{count} GPUs"


def _trim(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class PriceSchedule:
    """Prices in integer minor units per second of use; `minimum` is the least one allocation costs."""

    cpu_second: int = 0  # per full core-second
    memory_gib_second: int = 0
    gpu_second: int = 0
    minimum: int = 0

    def __post_init__(self) -> None:
        for name in ("cpu_second", "memory_gib_second", "gpu_second", "minimum"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise _invalid(f"price.{name}", f"must be a non-negative integer (minor units), got {v!r}")

    def cost(self, need: Capability, seconds: float) -> int:
        """Exact cost of running `need` for `seconds`, rounded up to a whole minor unit."""
        if not math.isfinite(seconds) or seconds < 0:
            raise _invalid("seconds", f"must be a non-negative number, got {seconds!r}")
        if isinstance(seconds, int):  # the same exact result in integer arithmetic (placement quotes: hot path)
            cpu = need.cpu_millis * self.cpu_second * GiB
            num = (
                cpu + need.memory_bytes * self.memory_gib_second * 1000 + need.gpu_count * self.gpu_second * 1000 * GiB
            )
            num *= seconds
            return max(self.minimum, -(-num // (1000 * GiB)))
        rate = (
            Fraction(need.cpu_millis * self.cpu_second, 1000)
            + Fraction(need.memory_bytes * self.memory_gib_second, GiB)
            + need.gpu_count * self.gpu_second
        )
        return max(self.minimum, math.ceil(rate * Fraction(seconds)))

    def to_dict(self) -> dict[str, int]:
        return {
            "cpu_second": self.cpu_second,
            "memory_gib_second": self.memory_gib_second,
            "gpu_second": self.gpu_second,
            "minimum": self.minimum,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriceSchedule:
        if not isinstance(data, Mapping):
            raise _invalid("price", f"expected an integer or a price schedule object, got {data!r}")
        unknown = set(data) - {"cpu_second", "memory_gib_second", "gpu_second", "minimum"}
        if unknown:
            raise _invalid("price", f"unknown fields {sorted(unknown)}")
        return cls(**{k: data[k] for k in data})


@dataclass(frozen=True)
class Capability:
    """Hard dimensions (cpu .. location) and soft ones (price .. benchmark_score); see module docstring.

    `gpu_vram_bytes` is per GPU and `gpu_model` names every GPU counted (a machine with mixed models
    advertises its smallest common denominator). `None` means "unknown" for a machine and "any" for
    a need. `price` is an int (minor units per core-second) or a `PriceSchedule`.
    """

    cpu_millis: int = 0
    memory_bytes: int = 0
    disk_bytes: int = 0
    gpu_count: int = 0
    gpu_model: str | None = None
    gpu_vram_bytes: int = 0
    arch: str | None = None
    executors: frozenset[str] = frozenset()
    labels: Mapping[str, str] = field(default_factory=dict)
    location: str | None = None
    price: int | PriceSchedule | None = None
    trust: float | None = None
    latency_ms: float | None = None
    benchmark_score: float | None = None

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise _invalid(name, f"must be a non-negative integer, got {v!r}")
        for name in ("gpu_model", "arch", "location"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, str) or not v.strip()):
                raise _invalid(name, f"must be a non-empty string or null, got {v!r}")
        if self.arch is not None:
            object.__setattr__(self, "arch", normalize_arch(self.arch))
        execs = self.executors
        if isinstance(execs, str) or not all(isinstance(e, str) and e for e in execs):
            raise _invalid("executors", f"must be a set of engine names, got {execs!r}")
        object.__setattr__(self, "executors", frozenset(execs))
        if not isinstance(self.labels, Mapping) or not all(
            isinstance(k, str) and k and isinstance(v, str) for k, v in self.labels.items()
        ):
            raise _invalid("labels", f"must map non-empty strings to strings, got {self.labels!r}")
        object.__setattr__(self, "labels", MappingProxyType(dict(sorted(self.labels.items()))))
        p = self.price
        if p is not None and not isinstance(p, PriceSchedule) and (isinstance(p, bool) or not isinstance(p, int)):
            raise _invalid("price", f"must be an integer (minor units per core-second) or a schedule, got {p!r}")
        if isinstance(p, int) and p < 0:
            raise _invalid("price", f"must not be negative, got {p}")
        self._check_float("trust", 0.0, 1.0)
        self._check_float("latency_ms", 0.0, math.inf)
        self._check_float("benchmark_score", 0.0, math.inf)

    def _check_float(self, name: str, low: float, high: float) -> None:
        v = getattr(self, name)
        if v is None:
            return
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not low <= v <= high:
            bounds = f"between {low:g} and {high:g}" if math.isfinite(high) else f">= {low:g}"
            raise _invalid(name, f"must be a number {bounds}, got {v!r}")
        object.__setattr__(self, name, float(v))

    def __hash__(self) -> int:
        return hash((self.cpu_millis, self.memory_bytes, self.disk_bytes, self.gpu_count, self.gpu_model,
                     self.arch, self.executors, tuple(self.labels.items()), self.location))  # fmt: skip

    @property
    def price_schedule(self) -> PriceSchedule | None:
        if isinstance(self.price, int):
            return PriceSchedule(cpu_second=self.price)
        return self.price

    def __sub__(self, need: Capability) -> Capability:
        return subtract(self, need)

    def __add__(self, other: Capability) -> Capability:
        return add(self, other)

    def describe(self) -> str:
        parts = [format_cpu(self.cpu_millis), f"{format_bytes(self.memory_bytes)} memory"]
        parts.append(f"{format_bytes(self.disk_bytes)} disk")
        if self.gpu_count or self.gpu_model:
            extra = [self.gpu_model] if self.gpu_model else []
            if self.gpu_vram_bytes:
                extra.append(format_bytes(self.gpu_vram_bytes))
            parts.append(format_gpus(self.gpu_count) + (f" ({', '.join(extra)})" if extra else ""))
        if self.arch:
            parts.append(self.arch)
        if self.executors:
            parts.append("executors: " + "/".join(sorted(self.executors)))
        if self.location:
            parts.append(f"in {self.location}")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON- and DAG-CBOR-friendly form (sorted lists, no sets); `None` fields are left out."""
        out: dict[str, Any] = {name: getattr(self, name) for name in _INT_FIELDS}
        out["executors"] = sorted(self.executors)
        out["labels"] = dict(self.labels)
        for name in ("gpu_model", "arch", "location", "trust", "latency_ms", "benchmark_score"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.price is not None:
            out["price"] = self.price.to_dict() if isinstance(self.price, PriceSchedule) else self.price
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Capability:
        if not isinstance(data, Mapping):
            raise _invalid("capability", f"expected an object, got {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise _invalid("capability", f"unknown fields {sorted(unknown)}")
        kwargs = dict(data)
        if "executors" in kwargs:
            ex = kwargs["executors"]
            if not isinstance(ex, list | tuple | set | frozenset):
                raise _invalid("executors", f"must be a list of engine names, got {ex!r}")
            kwargs["executors"] = frozenset(ex)
        if isinstance(kwargs.get("price"), Mapping):
            kwargs["price"] = PriceSchedule.from_dict(kwargs["price"])
        return cls(**kwargs)


WASM_MIN_CPU_MILLIS = 1000  # a wasm task runs a whole thread with no CPU-rate limit: it takes a core


def accounted(need: Capability, engine: str | None) -> Capability:
    """What a start of a task with this need takes on a provider: a wasm task takes at least a whole core.

    One rule for both sides: the provider's start and bid account it this way, and the requester's matching
    filters and quotes with it, so the quote a preview shows is the price the provider bids."""
    if engine == "wasm" and need.cpu_millis < WASM_MIN_CPU_MILLIS:
        return dataclasses.replace(need, cpu_millis=WASM_MIN_CPU_MILLIS)
    return need


@dataclass(frozen=True)
class Reason:
    """One failing dimension: a stable `code`, the amounts compared, by how much, and a sentence."""

    code: str
    dimension: str
    need: Any
    have: Any
    text: str
    shortfall: int | None = None  # need - have for quantities; None for mismatches

    def to_dict(self) -> dict[str, Any]:
        out = {"code": self.code, "dimension": self.dimension, "need": self.need, "have": self.have}
        out["text"] = self.text
        if self.shortfall is not None:
            out["shortfall"] = self.shortfall
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reason:
        try:
            return cls(
                code=str(data["code"]),
                dimension=str(data["dimension"]),
                need=data.get("need"),
                have=data.get("have"),
                text=str(data["text"]),
                shortfall=data.get("shortfall"),
            )
        except (KeyError, TypeError) as e:
            raise AgoraError("invalid_argument", f"malformed fit reason: {e}") from None


@dataclass(frozen=True)
class FitResult:
    ok: bool
    reasons: list[Reason] = field(default_factory=list)

    @property
    def codes(self) -> list[str]:
        return [r.code for r in self.reasons]

    @property
    def text(self) -> str:
        return "fits" if self.ok else "; ".join(r.text for r in self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "reasons": [r.to_dict() for r in self.reasons]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FitResult:
        reasons = [Reason.from_dict(r) for r in data.get("reasons", [])]
        return cls(ok=not reasons, reasons=reasons)


def _tokens(model: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", model.lower())


def gpu_model_matches(wanted: str, model: str | None) -> bool:
    """`A100` matches `NVIDIA A100-SXM4-80GB` but `A10` does not: the wanted words must appear in order."""
    if model is None:
        return False
    have = iter(_tokens(model))
    return all(tok in have for tok in _tokens(wanted))


def location_matches(wanted: str, location: str | None) -> bool:
    """Locations are hierarchical: `eu` matches `eu-west-1` and `eu/paris`, not `europa`."""
    if location is None:
        return False
    w, h = wanted.strip().lower(), location.strip().lower()
    return h == w or any(h.startswith(w + sep) for sep in "-/.:")


def _quantity(out: list[Reason], code: str, dim: str, need: int, have: int, unit: Any, suffix: str = ", free ") -> None:
    if need > have:
        out.append(Reason(code, dim, need, have, f"{code}: need {unit(need)}{suffix}{unit(have)}", need - have))


def fits(need: Capability, have: Capability) -> FitResult:
    """Every hard dimension of `need` against `have`; soft fields are left to ranking and market policy.

    GPU model and VRAM are only checked when `need.gpu_count > 0`: they describe the GPUs asked for.
    """
    reasons: list[Reason] = []
    _quantity(reasons, "insufficient_cpu", "cpu_millis", need.cpu_millis, have.cpu_millis, format_cpu)
    _quantity(reasons, "insufficient_memory", "memory_bytes", need.memory_bytes, have.memory_bytes, format_bytes)
    _quantity(reasons, "insufficient_disk", "disk_bytes", need.disk_bytes, have.disk_bytes, format_bytes)
    _quantity(reasons, "insufficient_gpu", "gpu_count", need.gpu_count, have.gpu_count, format_gpus)
    if need.gpu_count > 0:
        if need.gpu_model is not None and not gpu_model_matches(need.gpu_model, have.gpu_model):
            text = f"gpu_model_mismatch: need {need.gpu_model}, has {have.gpu_model or 'none'}"
            reasons.append(Reason("gpu_model_mismatch", "gpu_model", need.gpu_model, have.gpu_model, text))
        code, vn, vh = "insufficient_vram", need.gpu_vram_bytes, have.gpu_vram_bytes
        _quantity(reasons, code, "gpu_vram_bytes", vn, vh, format_bytes, " per GPU, has ")
    if need.arch is not None and need.arch != have.arch:
        text = f"arch_mismatch: need {need.arch}, has {have.arch or 'unknown'}"
        reasons.append(Reason("arch_mismatch", "arch", need.arch, have.arch, text))
    missing = sorted(need.executors - have.executors)
    if missing:
        text = "executor_unavailable: " + ", ".join(missing)
        reasons.append(Reason("executor_unavailable", "executors", missing, sorted(have.executors), text))
    wrong = {k: v for k, v in need.labels.items() if have.labels.get(k) != v}
    if wrong:
        seen = {k: have.labels[k] for k in wrong if k in have.labels}
        parts = [f"need {k}={v}, has " + (f"{k}={seen[k]}" if k in seen else "none") for k, v in wrong.items()]
        reasons.append(Reason("label_mismatch", "labels", wrong, seen, "label_mismatch: " + "; ".join(parts)))
    if need.location is not None and not location_matches(need.location, have.location):
        text = f"location_mismatch: need {need.location}, has {have.location or 'unknown'}"
        reasons.append(Reason("location_mismatch", "location", need.location, have.location, text))
    return FitResult(ok=not reasons, reasons=reasons)


def subtract(have: Capability, need: Capability) -> Capability:
    """`have` minus `need` on the quantities; raises `insufficient_capacity` (with every reason) if it does
    not fit, so free capacity can never go below zero or be handed to a task it cannot serve."""
    result = fits(need, have)
    if not result.ok:
        raise AgoraError(
            "insufficient_capacity",
            result.text,
            details={"reasons": [r.to_dict() for r in result.reasons]},
        )
    return replace(have, **{q: getattr(have, q) - getattr(need, q) for q in _QUANTITIES})


def add(have: Capability, other: Capability) -> Capability:
    """Quantities summed; everything else is kept from `have` (giving capacity back never changes what
    kind of machine it is)."""
    return replace(have, **{q: getattr(have, q) + getattr(other, q) for q in _QUANTITIES})


__all__ = [
    "Capability",
    "FitResult",
    "GiB",
    "KiB",
    "MiB",
    "PriceSchedule",
    "Reason",
    "TiB",
    "add",
    "fits",
    "format_bytes",
    "format_cpu",
    "format_gpus",
    "gpu_model_matches",
    "location_matches",
    "normalize_arch",
    "subtract",
]
