"""Scenario files: a YAML document, validated like a job spec (every problem with its field path at once).

A scenario names the world (providers, requesters, job mix, churn), how long it runs and what is measured.
Quantities that vary between actors are *distributions*: a plain number (a constant) or a mapping with one
of `uniform: [low, high]`, `normal: [mean, sd]`, `exponential: mean`, `choice: [values]` (with an optional
`weights: [...]`), and optional `min`/`max` clamps. Durations are seconds or strings with a unit
(`90s`, `10m`, `2h`, `1d`). `docs/simulator.md` lists every field with its default.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from agora.errors import AgoraError

PAYMENT_MODES = ("pay_before", "pay_after")
ARRIVAL_PROCESSES = ("poisson", "burst", "diurnal")
ENGINES = ("wasm", "process", "docker")
STRATEGIES = ("balanced", "cheapest", "fastest", "binpack", "spread")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


class _Problems:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.items.append((path, message))

    def raise_if_any(self, what: str) -> None:
        if self.items:
            text = "; ".join(f"{p}: {m}" for p, m in self.items[:20])
            raise AgoraError(
                "scenario_invalid",
                f"{what}: {text}",
                details={"problems": [{"field": p, "message": m} for p, m in self.items]},
            )


@dataclass(frozen=True)
class Dist:
    """One distribution of a number (see the module doc)."""

    kind: str  # const | uniform | normal | exponential | choice
    params: tuple[float, ...] = ()
    weights: tuple[float, ...] = ()
    low: float | None = None
    high: float | None = None

    def draw(self, rng: random.Random) -> float:
        match self.kind:
            case "const":
                v = self.params[0]
            case "uniform":
                v = rng.uniform(self.params[0], self.params[1])
            case "normal":
                v = rng.gauss(self.params[0], self.params[1])
            case "exponential":
                v = rng.expovariate(1.0 / self.params[0]) if self.params[0] > 0 else 0.0
            case _:
                v = rng.choices(self.params, weights=self.weights or None)[0]
        if self.low is not None:
            v = max(self.low, v)
        if self.high is not None:
            v = min(self.high, v)
        return v

    def draw_int(self, rng: random.Random, minimum: int = 0) -> int:
        return max(minimum, round(self.draw(rng)))

    def mean(self) -> float:
        match self.kind:
            case "const" | "exponential":
                return self.params[0]
            case "uniform":
                return (self.params[0] + self.params[1]) / 2
            case "normal":
                return self.params[0]
            case _:
                w = self.weights or tuple(1.0 for _ in self.params)
                return sum(p * x for p, x in zip(self.params, w, strict=True)) / sum(w)


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _dist(p: _Problems, path: str, v: Any, *, low: float = 0.0, high: float | None = None) -> Dist:
    """A distribution whose draws are clamped to [low, high]."""
    if _num(v):
        if v < low or (high is not None and v > high):
            p.add(path, f"must be within [{low:g}, {'inf' if high is None else f'{high:g}'}], got {v!r}")
        return Dist("const", (float(v),), low=low, high=high)
    if not isinstance(v, Mapping):
        p.add(path, f"a number or a distribution (uniform, normal, exponential, choice), got {v!r}")
        return Dist("const", (low,))
    kinds = [k for k in ("uniform", "normal", "exponential", "choice") if k in v]
    unknown = sorted(set(v) - {"uniform", "normal", "exponential", "choice", "weights", "min", "max"})
    for k in unknown:
        p.add(f"{path}.{k}", "no such field; known: uniform, normal, exponential, choice, weights, min, max")
    if len(kinds) != 1:
        p.add(path, "exactly one of uniform, normal, exponential, choice")
        return Dist("const", (low,))
    kind = kinds[0]
    raw = v[kind]
    lo = v.get("min", low)
    hi = v.get("max", high)
    for name, b in (("min", lo), ("max", hi)):
        if b is not None and not _num(b):
            p.add(f"{path}.{name}", f"a number, got {b!r}")
            return Dist("const", (low,))
    lo = max(low, lo) if lo is not None else low
    if kind == "exponential":
        if not _num(raw) or raw <= 0:
            p.add(f"{path}.exponential", f"a positive mean, got {raw!r}")
            return Dist("const", (low,))
        return Dist("exponential", (float(raw),), low=lo, high=hi)
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw or not all(_num(x) for x in raw):
        p.add(f"{path}.{kind}", f"a list of numbers, got {raw!r}")
        return Dist("const", (low,))
    params = tuple(float(x) for x in raw)
    if kind in ("uniform", "normal") and len(params) != 2:
        p.add(f"{path}.{kind}", f"two numbers ({'low, high' if kind == 'uniform' else 'mean, sd'}), got {raw!r}")
        return Dist("const", (low,))
    if kind == "uniform" and params[0] > params[1]:
        p.add(f"{path}.uniform", f"low must be <= high, got {raw!r}")
    if kind == "normal" and params[1] < 0:
        p.add(f"{path}.normal", f"sd must be >= 0, got {raw!r}")
    weights: tuple[float, ...] = ()
    if "weights" in v:
        w = v["weights"]
        ok = isinstance(w, Sequence) and not isinstance(w, str) and all(_num(x) and x >= 0 for x in w)
        if kind != "choice" or not ok or len(w) != len(params) or not sum(w) > 0:
            p.add(f"{path}.weights", "non-negative numbers, one per choice, not all 0 (choice only)")
        else:
            weights = tuple(float(x) for x in w)
    if kind == "choice" and any(x < low or (high is not None and x > high) for x in params):
        p.add(f"{path}.choice", f"every value must be within [{low:g}, {'inf' if high is None else f'{high:g}'}]")
    return Dist(kind, params, weights, lo, hi)


def duration_s(p: _Problems, path: str, v: Any, *, minimum: float = 0.0) -> float:
    if _num(v) and v >= minimum:
        return float(v)
    if isinstance(v, str) and (m := _DURATION.match(v)):
        out = float(m.group(1)) * _UNITS[m.group(2) or "s"]
        if out >= minimum:
            return out
    p.add(path, f"a duration >= {minimum:g} s (seconds, or a number with s, m, h or d), got {v!r}")
    return max(minimum, 1.0)


def _section(p: _Problems, path: str, doc: Mapping[str, Any], key: str, known: tuple[str, ...]) -> Mapping[str, Any]:
    v = doc.get(key, {})
    if v is None:
        v = {}
    if not isinstance(v, Mapping):
        p.add(f"{path}{key}", f"an object, got {v!r}")
        return {}
    for k in v:
        if k not in known:
            p.add(f"{path}{key}.{k}", f"no such field; known fields: {', '.join(known)}")
    return v


def _choice(p: _Problems, path: str, v: Any, allowed: Sequence[str]) -> str:
    if v not in allowed:
        p.add(path, f"one of {', '.join(allowed)}, got {v!r}")
        return allowed[0]
    return str(v)


def _int(p: _Problems, path: str, v: Any, low: int, high: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
        p.add(path, f"an integer within [{low}, {high}], got {v!r}")
        return low
    return v


def _share(p: _Problems, path: str, v: Any) -> float:
    if not _num(v) or not 0.0 <= v <= 1.0:
        p.add(path, f"a share within [0, 1], got {v!r}")
        return 0.0
    return float(v)


@dataclass(frozen=True)
class Providers:
    count: int
    cores: Dist
    memory_gib: Dist
    benchmark: Dist
    price: Dist  # minor units per core-second
    latency_ms: Dist
    reliability: Dist  # probability a run completes (else it fails midway)
    engines: tuple[str, ...]
    dishonest: float  # share of providers that return wrong results
    detect: float  # probability a wrong result of a job without redundancy is caught (spot check)


@dataclass(frozen=True)
class Arrivals:
    process: str
    rate_per_hour: float
    every_s: float = 3600.0  # burst: a burst every
    size: int = 0  # burst: jobs per burst
    amplitude: float = 0.0  # diurnal: rate * (1 + amplitude * sin(2 pi t / day))


@dataclass(frozen=True)
class Requesters:
    count: int
    funds: int
    arrivals: Arrivals


@dataclass(frozen=True)
class Jobs:
    cores: Dist
    memory_gib: Dist
    duration_s: Dist
    deadline_s: float
    max_price: Dist | None  # minor units per job; None: no limit
    engines: tuple[str, ...]
    engine_weights: tuple[float, ...]
    redundancy: Dist
    strategy: str


@dataclass(frozen=True)
class Churn:
    join_per_hour: float = 0.0
    leave_per_hour: float = 0.0
    crash_per_hour: float = 0.0
    partition_per_hour: float = 0.0
    partition_s: float = 600.0


@dataclass(frozen=True)
class Matching:
    k: int = 3  # providers asked for a bid per replica
    sample: int = 32  # candidates drawn from the capacity buckets per placement (0: scan every provider)
    retry_every_s: float = 60.0  # how often the pending queue is tried again
    retry_batch: int = 200  # at most this many pending jobs per try


@dataclass(frozen=True)
class ModelProviders:
    count: int
    price_in: Dist  # minor units per 1,000 input tokens
    price_out: Dist  # minor units per 1,000 output tokens
    tokens_per_s: Dist
    ttft_ms: Dist
    latency_ms: Dist  # network round trip
    reliability: Dist  # probability a run answers
    hang_share: float  # share of failures that hang until the requester's run timeout
    max_concurrency: Dist
    context: int
    dishonest: float  # share whose metering records bill more output tokens than the answer had
    inflate: float  # by this factor


@dataclass(frozen=True)
class InferenceRequesters:
    count: int
    funds: int
    arrivals: Arrivals


@dataclass(frozen=True)
class InferenceRequests:
    prompt_tokens: Dist
    max_tokens: Dist
    output_share: Dist  # share of max_tokens the answer has
    max_price: Dist | None


@dataclass(frozen=True)
class Inference:
    strategies: tuple[tuple[str, float], ...]  # routing strategy -> share of requesters
    payment: str
    run_timeout_s: float
    providers: ModelProviders
    requesters: InferenceRequesters
    requests: InferenceRequests


@dataclass(frozen=True)
class DataProviders:
    count: int
    price_per_update: Dist
    rows: Dist
    fit_s: Dist
    stragglers: float  # share of providers whose fits take `slowdown` times longer
    slowdown: float
    dropout: float  # probability a fit dies (the trainer process ends)
    dishonest: float  # share of providers sending bad updates
    bad_rate: float  # probability a dishonest provider's update is bad


@dataclass(frozen=True)
class Fl:
    providers: DataProviders
    owners: InferenceRequesters
    spec: Any  # agora.models.training.TrainingSpec
    budget: int | None


@dataclass(frozen=True)
class Scenario:
    name: str
    seed: int
    duration_s: float
    sample_every_s: float
    payment: str
    requester_default: float  # pay_after: share of finished jobs the requester never pays for
    providers: Providers
    requesters: Requesters
    jobs: Jobs
    churn: Churn
    matching: Matching
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)
    inference: Inference | None = None
    fl: Fl | None = None

    @property
    def compute(self) -> bool:
        """Whether the scenario has a compute market (providers or job arrivals): its metrics and plots."""
        a = self.requesters.arrivals
        return self.providers.count > 0 or a.rate_per_hour > 0 or (a.process == "burst" and a.size > 0)


TOP = (
    "name",
    "seed",
    "duration",
    "sample_every",
    "payment",
    "providers",
    "requesters",
    "jobs",
    "churn",
    "matching",
    "inference",
    "fl",
)
ROUTING = ("cheapest", "fastest", "balanced")


def _arrivals(p: _Problems, path: str, parent: Mapping[str, Any], rate: float) -> Arrivals:
    arr = _section(p, f"{path}.", parent, "arrivals", ("process", "rate_per_hour", "amplitude"))
    process = _choice(p, f"{path}.arrivals.process", arr.get("process", "poisson"), ("poisson", "diurnal"))
    r = arr.get("rate_per_hour", rate)
    if not _num(r) or r < 0:
        p.add(f"{path}.arrivals.rate_per_hour", f"a non-negative number, got {r!r}")
        r = 0.0
    return Arrivals(
        process=process,
        rate_per_hour=float(r),
        amplitude=_share(p, f"{path}.arrivals.amplitude", arr.get("amplitude", 0.0)),
    )


def _inference(p: _Problems, doc: Mapping[str, Any]) -> Inference | None:
    if doc.get("inference") is None:
        return None
    top = ("strategy", "payment", "run_timeout", "providers", "requesters", "requests")
    inf = _section(p, "", doc, "inference", top)
    st = inf.get("strategy", "balanced")
    strategies: tuple[tuple[str, float], ...] = (("balanced", 1.0),)
    if isinstance(st, str):
        strategies = ((_choice(p, "inference.strategy", st, ROUTING), 1.0),)
    elif isinstance(st, Mapping) and st and all(k in ROUTING and _num(w) and w >= 0 for k, w in st.items()):
        if sum(st.values()) > 0:
            strategies = tuple((str(k), float(w)) for k, w in st.items())
        else:
            p.add("inference.strategy", "weights not all 0")
    else:
        p.add("inference.strategy", f"one of {', '.join(ROUTING)}, or a mapping strategy -> share, got {st!r}")
    pr = _section(
        p,
        "inference.",
        inf,
        "providers",
        (
            "count",
            "price_in",
            "price_out",
            "tokens_per_s",
            "ttft_ms",
            "latency_ms",
            "reliability",
            "hang_share",
            "max_concurrency",
            "context",
            "dishonest",
            "inflate",
        ),
    )
    inflate = pr.get("inflate", 1.5)
    if not _num(inflate) or not 1.0 < inflate <= 100.0:
        p.add("inference.providers.inflate", f"a factor within (1, 100], got {inflate!r}")
        inflate = 1.5
    providers = ModelProviders(
        count=_int(p, "inference.providers.count", pr.get("count", 20), 1, 100_000),
        price_in=_dist(p, "inference.providers.price_in", pr.get("price_in", {"uniform": [1, 10]}), high=1e9),
        price_out=_dist(p, "inference.providers.price_out", pr.get("price_out", {"uniform": [2, 30]}), high=1e9),
        tokens_per_s=_dist(
            p, "inference.providers.tokens_per_s", pr.get("tokens_per_s", {"uniform": [20, 200]}), low=1
        ),
        ttft_ms=_dist(p, "inference.providers.ttft_ms", pr.get("ttft_ms", {"uniform": [100, 1500]})),
        latency_ms=_dist(p, "inference.providers.latency_ms", pr.get("latency_ms", {"uniform": [5, 150]})),
        reliability=_dist(p, "inference.providers.reliability", pr.get("reliability", 0.98), high=1.0),
        hang_share=_share(p, "inference.providers.hang_share", pr.get("hang_share", 0.3)),
        max_concurrency=_dist(
            p, "inference.providers.max_concurrency", pr.get("max_concurrency", {"choice": [1, 2, 4]}), low=1, high=1024
        ),
        context=_int(p, "inference.providers.context", pr.get("context", 4096), 16, 10_000_000),
        dishonest=_share(p, "inference.providers.dishonest", pr.get("dishonest", 0.0)),
        inflate=float(inflate),
    )
    rq = _section(p, "inference.", inf, "requesters", ("count", "funds", "arrivals"))
    requesters = InferenceRequesters(
        count=_int(p, "inference.requesters.count", rq.get("count", 10), 1, 100_000),
        funds=_int(p, "inference.requesters.funds", rq.get("funds", 10**9), 0, 10**15),
        arrivals=_arrivals(p, "inference.requesters", rq, 600.0),
    )
    rs = _section(p, "inference.", inf, "requests", ("prompt_tokens", "max_tokens", "output_share", "max_price"))
    mp = rs.get("max_price")
    requests = InferenceRequests(
        prompt_tokens=_dist(
            p, "inference.requests.prompt_tokens", rs.get("prompt_tokens", {"exponential": 300, "max": 3000}), low=1
        ),
        max_tokens=_dist(
            p, "inference.requests.max_tokens", rs.get("max_tokens", {"choice": [64, 256, 512]}), low=1, high=1_000_000
        ),
        output_share=_dist(
            p, "inference.requests.output_share", rs.get("output_share", {"uniform": [0.3, 1.0]}), high=1.0
        ),
        max_price=None if mp is None else _dist(p, "inference.requests.max_price", mp),
    )
    return Inference(
        strategies=strategies,
        payment=_choice(p, "inference.payment", inf.get("payment", "pay_after"), PAYMENT_MODES),
        run_timeout_s=duration_s(p, "inference.run_timeout", inf.get("run_timeout", 60), minimum=1.0),
        providers=providers,
        requesters=requesters,
        requests=requests,
    )


def _fl(p: _Problems, doc: Mapping[str, Any]) -> Fl | None:
    if doc.get("fl") is None:
        return None
    f = _section(p, "", doc, "fl", ("providers", "owners", "training", "budget"))
    pr = _section(
        p,
        "fl.",
        f,
        "providers",
        ("count", "price_per_update", "rows", "fit_s", "stragglers", "slowdown", "dropout", "dishonest", "bad_rate"),
    )
    slowdown = pr.get("slowdown", 10)
    if not _num(slowdown) or not 1 <= slowdown <= 1000:
        p.add("fl.providers.slowdown", f"a factor within [1, 1000], got {slowdown!r}")
        slowdown = 10
    providers = DataProviders(
        count=_int(p, "fl.providers.count", pr.get("count", 30), 1, 100_000),
        price_per_update=_dist(p, "fl.providers.price_per_update", pr.get("price_per_update", {"uniform": [5, 50]})),
        rows=_dist(p, "fl.providers.rows", pr.get("rows", {"uniform": [500, 5000]}), low=1),
        fit_s=_dist(p, "fl.providers.fit_s", pr.get("fit_s", {"exponential": 15, "min": 1}), low=0.1),
        stragglers=_share(p, "fl.providers.stragglers", pr.get("stragglers", 0.1)),
        slowdown=float(slowdown),
        dropout=_share(p, "fl.providers.dropout", pr.get("dropout", 0.02)),
        dishonest=_share(p, "fl.providers.dishonest", pr.get("dishonest", 0.0)),
        bad_rate=_share(p, "fl.providers.bad_rate", pr.get("bad_rate", 0.5)),
    )
    ow = _section(p, "fl.", f, "owners", ("count", "funds", "arrivals"))
    owners = InferenceRequesters(
        count=_int(p, "fl.owners.count", ow.get("count", 5), 1, 100_000),
        funds=_int(p, "fl.owners.funds", ow.get("funds", 10**9), 0, 10**15),
        arrivals=_arrivals(p, "fl.owners", ow, 2.0),
    )
    training = f.get("training", {}) or {}
    spec: Any = None
    if not isinstance(training, Mapping):
        p.add("fl.training", f"an object (the training spec's fields: rounds, min_fit, ...), got {training!r}")
    else:
        from agora.sim.fl import parse_training

        defaults = {"rounds": 5, "min_fit": 2, "min_providers": 2, "max_providers": 5, "round_deadline_s": 60}
        try:
            spec = parse_training({**defaults, **training})
        except AgoraError as exc:
            for prob in exc.details.get("errors", []) or [{"path": "training", "expected": exc.message}]:
                where = str(prob.get("path", "training")).removeprefix("training")
                p.add(f"fl.training{where}", f"expected {prob.get('expected')}, got {prob.get('got')!r}")
    budget = f.get("budget")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 0):
        p.add("fl.budget", f"a non-negative integer (minor units per run) or null, got {budget!r}")
        budget = None
    return Fl(providers=providers, owners=owners, spec=spec, budget=budget)


def parse(doc: Any) -> Scenario:
    """A validated `Scenario` from a decoded YAML document, or `scenario_invalid` listing every problem."""
    p = _Problems()
    if not isinstance(doc, Mapping):
        p.add("", f"a scenario is an object, got {type(doc).__name__}")
        p.raise_if_any("scenario")
        raise AssertionError("unreachable")
    for k in doc:
        if k not in TOP:
            p.add(str(k), f"no such field; known fields: {', '.join(TOP)}")
    name = doc.get("name", "scenario")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        p.add("name", f"1-64 letters, digits, '_', '.', '-', got {name!r}")
        name = "scenario"
    seed = _int(p, "seed", doc.get("seed", 0), 0, 2**63 - 1)
    dur = duration_s(p, "duration", doc.get("duration", "1d"), minimum=1.0)
    sample = duration_s(p, "sample_every", doc.get("sample_every", "1h"), minimum=1.0)
    if dur / sample > 10_000:
        p.add("sample_every", f"at most 10,000 samples per run ({dur:g} s / {sample:g} s)")
    pay = doc.get("payment", {}) or {}
    if isinstance(pay, str):
        pay = {"mode": pay}
    if not isinstance(pay, Mapping):
        p.add("payment", "a mode (pay_before | pay_after) or {mode, requester_default}")
        pay = {}
    for k in pay:
        if k not in ("mode", "requester_default"):
            p.add(f"payment.{k}", "no such field; known fields: mode, requester_default")
    mode = _choice(p, "payment.mode", pay.get("mode", "pay_before"), PAYMENT_MODES)
    default = _share(p, "payment.requester_default", pay.get("requester_default", 0.0))

    known = ("count", "cores", "memory_gib", "benchmark", "price", "latency_ms", "reliability", "engines")
    pr = _section(p, "", doc, "providers", (*known, "dishonest", "detect"))
    engines = pr.get("engines", list(ENGINES))
    if not isinstance(engines, list) or not engines or any(e not in ENGINES for e in engines):
        p.add("providers.engines", f"a non-empty list of {', '.join(ENGINES)}, got {engines!r}")
        engines = list(ENGINES)
    other_markets = bool(doc.get("inference") or doc.get("fl"))
    providers = Providers(
        # no compute providers only when the scenario simulates a model or data market instead
        count=_int(p, "providers.count", pr.get("count", 100), 0 if other_markets else 1, 1_000_000),
        cores=_dist(p, "providers.cores", pr.get("cores", {"choice": [4, 8, 16]}), low=1, high=1024),
        memory_gib=_dist(p, "providers.memory_gib", pr.get("memory_gib", {"choice": [8, 16, 64]}), low=1, high=65536),
        benchmark=_dist(p, "providers.benchmark", pr.get("benchmark", {"normal": [1.0, 0.2]}), low=0.01),
        price=_dist(p, "providers.price", pr.get("price", 5), low=0, high=1e9),
        latency_ms=_dist(p, "providers.latency_ms", pr.get("latency_ms", {"uniform": [5, 150]}), low=0),
        reliability=_dist(p, "providers.reliability", pr.get("reliability", 0.99), low=0.0, high=1.0),
        engines=tuple(str(e) for e in engines),
        dishonest=_share(p, "providers.dishonest", pr.get("dishonest", 0.0)),
        detect=_share(p, "providers.detect", pr.get("detect", 0.5)),
    )
    rq = _section(p, "", doc, "requesters", ("count", "funds", "arrivals"))
    arr = _section(p, "requesters.", rq, "arrivals", ("process", "rate_per_hour", "every", "size", "amplitude"))
    process = _choice(p, "requesters.arrivals.process", arr.get("process", "poisson"), ARRIVAL_PROCESSES)
    rate = arr.get("rate_per_hour", 60)
    if not _num(rate) or rate < 0:
        p.add("requesters.arrivals.rate_per_hour", f"a non-negative number, got {rate!r}")
        rate = 0.0
    arrivals = Arrivals(
        process=process,
        rate_per_hour=float(rate),
        every_s=duration_s(p, "requesters.arrivals.every", arr.get("every", "1h"), minimum=1.0),
        size=_int(p, "requesters.arrivals.size", arr.get("size", 0), 0, 1_000_000),
        amplitude=_share(p, "requesters.arrivals.amplitude", arr.get("amplitude", 0.0)),
    )
    requesters = Requesters(
        count=_int(p, "requesters.count", rq.get("count", 20), 1, 1_000_000),
        funds=_int(p, "requesters.funds", rq.get("funds", 10**9), 0, 10**15),
        arrivals=arrivals,
    )
    jb = _section(
        p,
        "",
        doc,
        "jobs",
        ("cores", "memory_gib", "duration", "deadline", "max_price", "engines", "redundancy", "strategy"),
    )
    eng = jb.get("engines", {"wasm": 1, "process": 1})
    if not isinstance(eng, Mapping) or not eng or any(e not in ENGINES or not _num(w) or w < 0 for e, w in eng.items()):
        p.add("jobs.engines", f"a mapping engine -> weight over {', '.join(ENGINES)}, got {eng!r}")
        eng = {"wasm": 1}
    max_price = jb.get("max_price")
    jobs = Jobs(
        cores=_dist(p, "jobs.cores", jb.get("cores", {"choice": [1, 2, 4]}), low=1, high=1024),
        memory_gib=_dist(p, "jobs.memory_gib", jb.get("memory_gib", {"choice": [1, 2, 4]}), low=0, high=65536),
        duration_s=_dist(p, "jobs.duration", jb.get("duration", {"exponential": 600, "min": 10}), low=1),
        deadline_s=duration_s(p, "jobs.deadline", jb.get("deadline", "2h"), minimum=1.0),
        max_price=None if max_price is None else _dist(p, "jobs.max_price", max_price, low=0),
        engines=tuple(str(e) for e in eng),
        engine_weights=tuple(float(w) for w in eng.values()),
        redundancy=_dist(p, "jobs.redundancy", jb.get("redundancy", 1), low=1, high=5),
        strategy=_choice(p, "jobs.strategy", jb.get("strategy", "balanced"), STRATEGIES),
    )
    ch = _section(
        p, "", doc, "churn", ("join_per_hour", "leave_per_hour", "crash_per_hour", "partition_per_hour", "partition")
    )
    rates = {}
    for k in ("join_per_hour", "leave_per_hour", "crash_per_hour", "partition_per_hour"):
        v = ch.get(k, 0.0)
        if not _num(v) or v < 0:
            p.add(f"churn.{k}", f"a non-negative number, got {v!r}")
            v = 0.0
        rates[k] = float(v)
    churn = Churn(**rates, partition_s=duration_s(p, "churn.partition", ch.get("partition", "10m"), minimum=1.0))
    mt = _section(p, "", doc, "matching", ("k", "sample", "retry_every", "retry_batch"))
    matching = Matching(
        k=_int(p, "matching.k", mt.get("k", 3), 1, 64),
        sample=_int(p, "matching.sample", mt.get("sample", 32), 0, 100_000),
        retry_every_s=duration_s(p, "matching.retry_every", mt.get("retry_every", 60), minimum=1.0),
        retry_batch=_int(p, "matching.retry_batch", mt.get("retry_batch", 200), 1, 100_000),
    )
    inference = _inference(p, doc)
    fl = _fl(p, doc)
    p.raise_if_any("scenario")
    return Scenario(
        name=str(name),
        seed=seed,
        duration_s=dur,
        sample_every_s=sample,
        payment=mode,
        requester_default=default,
        providers=providers,
        requesters=requesters,
        jobs=jobs,
        churn=churn,
        matching=matching,
        raw=dict(doc),
        inference=inference,
        fl=fl,
    )


def load(text: str) -> Scenario:
    """Parse YAML text into a validated scenario."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AgoraError("scenario_invalid", f"scenario: not valid YAML ({exc})") from None
    return parse(doc)


def with_param(doc: Mapping[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of the scenario document with the field at dotted `path` set to `value` (a sweep's variant)."""
    out: dict[str, Any] = _copy(doc)
    keys = path.split(".")
    node = out
    for k in keys[:-1]:
        nxt = node.get(k)
        if nxt is None:
            nxt = node[k] = {}
        if not isinstance(nxt, dict):
            raise AgoraError("scenario_invalid", f"--param {path}: {k} is not an object")
        node = nxt
    node[keys[-1]] = value
    return out


def _copy(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_copy(x) for x in v]
    return v


__all__ = ["Arrivals", "Churn", "Dist", "Jobs", "Matching", "Providers", "Requesters", "Scenario", "load", "parse"]
