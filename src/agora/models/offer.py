"""What a provider sells: resource offers (and, later, data-set offers), as pure validated data.

A `ResourceOffer` is what a provider's operator publishes: the resources it sells (the node's detected
capability minus an operator reserve, see `offered_resources`), a price schedule in integer minor units
(`PriceTerms`: per cpu-second, per GiB-second of memory, per GPU-second, a per-job minimum, and per-engine
schedules that replace the base one for that engine), terms (`OfferTerms`: max duration, engines accepted,
who may ask for bids) and a validity window.

`DataOffer` is the second kind (data sets for federated learning): it has its own fields and validation
already so that `offer_from_dict` dispatches on `kind` and a later issue only adds behaviour.

Validation never stops at the first problem: `offer_from_dict` collects every field error (path,
expected, got) and raises one `offer_invalid` whose `details.field` names the first bad field and
`details.errors` lists them all, so an operator fixes an offer in one round.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeGuard

from agora.errors import AgoraError
from agora.models.capability import MAX_MINOR_UNITS, Capability, PriceSchedule, subtract

OFFER_KINDS = ("resources", "data")
ACCESS_MODES = ("open", "allowlist", "min_trust")
MAX_ALLOWLIST = 1024
MAX_ENGINE_TERMS = 16
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_ENGINE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_DID_PREFIX = "did:"


class _Problems:
    """Field errors of one offer, raised together as one `offer_invalid`."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, path: str, expected: str, got: Any = None) -> None:
        self.items.append({"path": path, "expected": expected, "got": _show(got)})

    def raise_if_any(self) -> None:
        if not self.items:
            return
        first = self.items[0]
        text = "; ".join(f"{p['path']}: expected {p['expected']}, got {p['got']!r}" for p in self.items[:5])
        more = f" (+{len(self.items) - 5} more)" if len(self.items) > 5 else ""
        raise AgoraError(
            "offer_invalid",
            text + more,
            hint=f"Fix `{first['path']}`: {first['expected']}.",
            details={"field": first["path"], "errors": list(self.items)},
        )


def _show(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= 80 else value[:77] + "..."
    return f"a {type(value).__name__}"


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_did(v: Any) -> bool:
    return isinstance(v, str) and v.startswith(_DID_PREFIX) and 8 <= len(v) <= 256


def _mapping(p: _Problems, path: str, value: Any, known: tuple[str, ...]) -> Mapping[str, Any] | None:
    if not isinstance(value, Mapping):
        p.add(path, "an object", value)
        return None
    for key in value:
        if key not in known:
            p.add(f"{path}.{key}" if path else str(key), f"no such field; known fields: {', '.join(known)}", key)
    return value


def _schedule(p: _Problems, path: str, value: Any) -> PriceSchedule | None:
    m = _mapping(p, path, value, ("cpu_second", "memory_gib_second", "gpu_second", "minimum"))
    if m is None:
        return None
    ok = True
    for name in ("cpu_second", "memory_gib_second", "gpu_second", "minimum"):
        v = m.get(name, 0)
        if not _is_int(v) or v < 0:
            p.add(f"{path}.{name}", "a non-negative integer (minor units)", v)
            ok = False
        elif v > MAX_MINOR_UNITS:
            p.add(f"{path}.{name}", f"at most {MAX_MINOR_UNITS:,} minor units", v)
            ok = False
    if not ok or set(m) - {"cpu_second", "memory_gib_second", "gpu_second", "minimum"}:
        return None
    return PriceSchedule(**{k: m[k] for k in m})


@dataclass(frozen=True)
class PriceTerms:
    """The base schedule, and per-engine schedules that replace it for jobs on that engine."""

    base: PriceSchedule = field(default_factory=PriceSchedule)
    engines: Mapping[str, PriceSchedule] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "engines", MappingProxyType(dict(sorted(self.engines.items()))))

    def schedule_for(self, engine: str | None) -> PriceSchedule:
        return self.engines.get(engine, self.base) if engine is not None else self.base

    def quote(self, need: Capability, seconds: float, engine: str | None) -> int:
        """The price of running `need` on `engine` for `seconds`, in minor units (rounded up)."""
        return self.schedule_for(engine).cost(need, seconds)

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base.to_dict(), "engines": {k: v.to_dict() for k, v in self.engines.items()}}

    @classmethod
    def parse(cls, p: _Problems, path: str, value: Any) -> PriceTerms | None:
        m = _mapping(p, path, value, ("base", "engines"))
        if m is None:
            return None
        base = _schedule(p, f"{path}.base", m.get("base", {}))
        engines: dict[str, PriceSchedule] = {}
        raw = m.get("engines", {})
        if not isinstance(raw, Mapping) or len(raw) > MAX_ENGINE_TERMS:
            p.add(f"{path}.engines", f"an object of at most {MAX_ENGINE_TERMS} engine -> schedule", raw)
            raw = {}
        for name, sched in raw.items():
            if not isinstance(name, str) or not _ENGINE_RE.match(name):
                p.add(f"{path}.engines", "engine names like wasm, process, docker", name)
                continue
            s = _schedule(p, f"{path}.engines.{name}", sched)
            if s is not None:
                engines[name] = s
        return cls(base, engines) if base is not None else None


@dataclass(frozen=True)
class AccessPolicy:
    """Who may ask this offer for bids: anyone (`open`), the DIDs of `allow` (`allowlist`), or requesters
    whose trust (as this provider sees it) is at least `min_trust`."""

    mode: str = "open"
    allow: frozenset[str] = frozenset()
    min_trust: float | None = None

    def admits(self, requester: str, trust: float | None) -> bool:
        if self.mode == "allowlist":
            return requester in self.allow
        if self.mode == "min_trust":
            return trust is not None and self.min_trust is not None and trust >= self.min_trust
        return True

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode}
        if self.mode == "allowlist":
            out["allow"] = sorted(self.allow)
        if self.mode == "min_trust":
            out["min_trust"] = self.min_trust
        return out

    @classmethod
    def parse(cls, p: _Problems, path: str, value: Any) -> AccessPolicy | None:
        m = _mapping(p, path, value, ("mode", "allow", "min_trust"))
        if m is None:
            return None
        mode = m.get("mode", "open")
        if mode not in ACCESS_MODES:
            p.add(f"{path}.mode", f"one of {', '.join(ACCESS_MODES)}", mode)
            return None
        allow: frozenset[str] = frozenset()
        min_trust: float | None = None
        if mode == "allowlist":
            raw = m.get("allow")
            if not isinstance(raw, list | tuple) or not raw or len(raw) > MAX_ALLOWLIST:
                p.add(f"{path}.allow", f"a non-empty list of at most {MAX_ALLOWLIST} DIDs (mode allowlist)", raw)
                return None
            bad = [d for d in raw if not _is_did(d)]
            if bad:
                p.add(f"{path}.allow", "DIDs like did:key:z6Mk...", bad[0])
                return None
            allow = frozenset(raw)
        elif "allow" in m:
            p.add(f"{path}.allow", "no allowlist unless mode is allowlist", m["allow"])
        if mode == "min_trust":
            t = m.get("min_trust")
            if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or not 0 <= t <= 1:
                p.add(f"{path}.min_trust", "a number from 0 to 1 (mode min_trust)", t)
                return None
            min_trust = float(t)
        elif "min_trust" in m:
            p.add(f"{path}.min_trust", "no min_trust unless mode is min_trust", m["min_trust"])
        return cls(mode, allow, min_trust)


@dataclass(frozen=True)
class OfferTerms:
    """`max_duration_s` bounds one job (None: any); `engines` are those accepted (empty: every engine the
    node offers); `access` says who may ask for bids."""

    max_duration_s: int | None = None
    engines: frozenset[str] = frozenset()
    access: AccessPolicy = field(default_factory=AccessPolicy)

    def accepts_engine(self, engine: str) -> bool:
        return not self.engines or engine in self.engines

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"engines": sorted(self.engines), "access": self.access.to_dict()}
        if self.max_duration_s is not None:
            out["max_duration_s"] = self.max_duration_s
        return out

    @classmethod
    def parse(cls, p: _Problems, path: str, value: Any) -> OfferTerms | None:
        m = _mapping(p, path, value, ("max_duration_s", "engines", "access"))
        if m is None:
            return None
        dur = m.get("max_duration_s")
        if dur is not None and (not _is_int(dur) or dur <= 0):
            p.add(f"{path}.max_duration_s", "a positive number of seconds, or null for no limit", dur)
            dur = None
        engines = m.get("engines", [])
        if not isinstance(engines, list | tuple) or not all(
            isinstance(e, str) and _ENGINE_RE.match(e) for e in engines
        ):
            p.add(f"{path}.engines", "a list of engine names like wasm, process, docker", engines)
            engines = []
        access = AccessPolicy.parse(p, f"{path}.access", m.get("access", {"mode": "open"}))
        return cls(dur, frozenset(engines), access or AccessPolicy())


def offered_resources(detected: Capability, reserve: Capability) -> Capability:
    """What a provider can sell: its detected capability minus the operator's reserve (raises
    `offer_invalid` naming the dimension when the reserve is larger than the machine)."""
    try:
        return subtract(detected, reserve)
    except AgoraError as exc:
        reasons = exc.details.get("reasons", [])
        dim = reasons[0]["dimension"] if reasons else "reserve"
        expected = "at most the detected amount"
        raise AgoraError(
            "offer_invalid",
            f"reserve: larger than the machine ({exc.message})",
            hint="Lower the operator reserve below what the node detected.",
            details={"field": f"reserve.{dim}", "errors": [{"path": f"reserve.{dim}", "expected": expected}]},
        ) from None


def _header(p: _Problems, m: Mapping[str, Any]) -> tuple[str, str, int, int]:
    offer_id, provider = m.get("offer_id"), m.get("provider")
    if not isinstance(offer_id, str) or not _ID_RE.match(offer_id):
        p.add("offer_id", "an id of 1-128 letters, digits, '.', '_', ':' or '-'", offer_id)
    if not _is_did(provider):
        p.add("provider", "the provider's DID (did:key:z6Mk...)", provider)
    start, until = m.get("valid_from"), m.get("valid_until")
    if not _is_int(start) or start < 0:
        p.add("valid_from", "seconds since the epoch (integer)", start)
    if not _is_int(until) or until < 0:
        p.add("valid_until", "seconds since the epoch (integer)", until)
    elif _is_int(start) and until <= start:
        p.add("valid_until", f"later than valid_from ({start})", until)
    return str(offer_id), str(provider), start if _is_int(start) else 0, until if _is_int(until) else 0


@dataclass(frozen=True)
class ResourceOffer:
    offer_id: str
    provider: str
    resources: Capability
    price: PriceTerms
    terms: OfferTerms
    valid_from: int
    valid_until: int

    kind = "resources"
    FIELDS = ("kind", "offer_id", "provider", "resources", "price", "terms", "valid_from", "valid_until")

    def __post_init__(self) -> None:
        # constructing directly goes through the same checks as from_dict
        _parse(self.to_dict())

    def is_valid_at(self, now: float) -> bool:
        return self.valid_from <= now < self.valid_until

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "offer_id": self.offer_id,
            "provider": self.provider,
            "resources": self.resources.to_dict(),
            "price": self.price.to_dict(),
            "terms": self.terms.to_dict(),
            "valid_from": self.valid_from,
            "valid_until": self.valid_until,
        }

    @classmethod
    def from_dict(cls, data: Any) -> ResourceOffer:
        offer = offer_from_dict(data)
        if not isinstance(offer, ResourceOffer):
            raise AgoraError("offer_invalid", "kind: expected resources", details={"field": "kind"})
        return offer


@dataclass(frozen=True)
class DataOffer:
    """A data set offered for federated learning (the data never leaves the provider): tags, size,
    licence and a price per training round. Matching and bidding for it come with the FL issue."""

    offer_id: str
    provider: str
    tags: frozenset[str]
    size_bytes: int
    licence: str
    price_per_round: int
    valid_from: int
    valid_until: int

    kind = "data"
    FIELDS = (
        "kind",
        "offer_id",
        "provider",
        "tags",
        "size_bytes",
        "licence",
        "price_per_round",
        "valid_from",
        "valid_until",
    )

    def __post_init__(self) -> None:
        _parse(self.to_dict())

    def is_valid_at(self, now: float) -> bool:
        return self.valid_from <= now < self.valid_until

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "offer_id": self.offer_id,
            "provider": self.provider,
            "tags": sorted(self.tags),
            "size_bytes": self.size_bytes,
            "licence": self.licence,
            "price_per_round": self.price_per_round,
            "valid_from": self.valid_from,
            "valid_until": self.valid_until,
        }


Offer = ResourceOffer | DataOffer


_CAPABILITY_FIELDS = tuple(Capability.__dataclass_fields__)
_QUANTITY_FIELDS = ("cpu_millis", "memory_bytes", "disk_bytes", "gpu_count", "gpu_vram_bytes")
_JOB_WORDS = {
    "cpu": "cpu_millis (1000 = one core)",
    "memory": "memory_bytes (1073741824 = 1 GiB)",
    "disk": "disk_bytes (1073741824 = 1 GiB)",
    "gpu": "gpu_count",
}
MAX_QUANTITY = 1 << 62  # like a job's quantities: anything above is a typo, and it keeps records in 64 bits


def _resources(p: _Problems, value: Any) -> Capability | None:
    if not isinstance(value, Mapping):
        p.add("resources", "an object (a capability: cpu_millis, memory_bytes, ...)", value)
        return None
    before = len(p.items)
    for key, says in _JOB_WORDS.items():  # a job spec's words, written by someone who just wrote a job
        if key in value:
            p.add(f"resources.{key}", f"{says} (an offer counts in integers, not a job spec's quantities)", value[key])
    _mapping(p, "resources", {k: v for k, v in value.items() if k not in _JOB_WORDS}, _CAPABILITY_FIELDS)
    for name in _QUANTITY_FIELDS:
        v = value.get(name, 0)
        if not _is_int(v) or v < 0:
            p.add(f"resources.{name}", "a non-negative integer", v)
        elif v > MAX_QUANTITY:
            p.add(f"resources.{name}", f"at most {MAX_QUANTITY:,}", v)
    if len(p.items) > before:
        return None
    try:
        cap = Capability.from_dict(value)
    except AgoraError as exc:
        field_name = exc.details.get("field", "")
        path = "resources" if field_name in ("", "capability") else f"resources.{field_name}"
        expected = re.sub(r"^must (be )?", "", exc.message.removeprefix(f"{field_name}: ")).split(", got ")[0]
        p.add(path, expected, value.get(field_name) if field_name in value else None)
        return None
    if cap.price is not None or cap.trust is not None:
        p.add("resources", "no price or trust here: prices go in `price`, trust is the requester's view", None)
    if cap.cpu_millis == 0 and cap.memory_bytes == 0 and cap.gpu_count == 0:
        p.add("resources", "something to sell: cpu_millis, memory_bytes or gpu_count above 0", None)
    return cap


def offer_from_dict(data: Any) -> Offer:
    """Validate and build an offer of either kind; raises one `offer_invalid` listing every problem."""
    kind, kwargs = _parse(data)
    if kind == "data":
        return DataOffer(**kwargs)
    return ResourceOffer(**kwargs)


def _parse(data: Any) -> tuple[str, dict[str, Any]]:
    p = _Problems()
    kind = data.get("kind") if isinstance(data, Mapping) else None
    if kind not in OFFER_KINDS:
        p.add("kind", f"one of {', '.join(OFFER_KINDS)}", kind if isinstance(data, Mapping) else data)
        p.raise_if_any()
    assert isinstance(data, Mapping)
    fields = DataOffer.FIELDS if kind == "data" else ResourceOffer.FIELDS
    m = _mapping(p, "", data, fields)
    assert m is not None
    offer_id, provider, start, until = _header(p, m)
    head = {"offer_id": offer_id, "provider": provider, "valid_from": start, "valid_until": until}
    if kind == "data":
        tags, size, licence, price = m.get("tags"), m.get("size_bytes"), m.get("licence"), m.get("price_per_round")
        if not isinstance(tags, list | tuple | frozenset) or not all(isinstance(t, str) and t for t in tags):
            p.add("tags", "a list of non-empty strings", tags)
            tags = []
        if not _is_int(size) or size < 0:
            p.add("size_bytes", "a non-negative integer", size)
        if not isinstance(licence, str) or not licence.strip():
            p.add("licence", "a licence name (e.g. CC-BY-4.0)", licence)
        if not _is_int(price) or price < 0:
            p.add("price_per_round", "a non-negative integer (minor units)", price)
        p.raise_if_any()
        return kind, {**head, "tags": frozenset(tags), "size_bytes": size, "licence": licence, "price_per_round": price}
    resources = _resources(p, m.get("resources"))
    price_terms = PriceTerms.parse(p, "price", m.get("price", {}))
    terms = OfferTerms.parse(p, "terms", m.get("terms", {}))
    if resources is not None and terms is not None and terms.engines and resources.executors:
        missing = sorted(terms.engines - resources.executors)
        if missing:
            p.add("terms.engines", f"engines the node offers ({', '.join(sorted(resources.executors))})", missing[0])
    if price_terms is not None and terms is not None and terms.engines:
        extra = sorted(set(price_terms.engines) - terms.engines)
        if extra:
            p.add(f"price.engines.{extra[0]}", "a price only for engines the terms accept", extra[0])
    p.raise_if_any()
    return "resources", {**head, "resources": resources, "price": price_terms, "terms": terms}


__all__ = [
    "ACCESS_MODES",
    "OFFER_KINDS",
    "AccessPolicy",
    "DataOffer",
    "Offer",
    "OfferTerms",
    "PriceTerms",
    "ResourceOffer",
    "offer_from_dict",
    "offered_resources",
]
