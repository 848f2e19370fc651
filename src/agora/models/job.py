"""The job spec as plain, immutable data (layer 1: no I/O, no parsing).

A `JobSpec` is what a requester asks for; `agora.jobs.parse_job` builds one from YAML/JSON and is the
only place that validates. Every amount is an integer in its base unit (bytes, millicores, seconds,
minor currency units), so two nodes never disagree on rounding. `to_dict()` gives the canonical form
(JSON/DAG-CBOR friendly: lists, dicts, str, int, float, bool) that `parse_job` turns back into an equal
spec; `None`-valued optional fields are left out of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agora.errors import CATALOG

ENGINES = ("wasm", "process", "docker", "firecracker")
JOB_TYPES = ("batch", "service")
CONSTRAINT_OPS = ("==", "!=", "in", "not_in", ">=", "<=", "exists")
STRATEGIES = ("cheapest", "fastest", "balanced", "binpack", "spread")
PAYMENT_MODES = ("pay_before", "pay_after")
SOURCE_TYPES = ("inline", "local", "http", "s3", "hub")
PUBLISH_TYPES = ("local", "s3", "hub")
# Where a task sees its inputs and outputs: wasm tasks use /inputs and /outputs, the process sandbox
# /work/inputs and /work/outputs; a mount anywhere else has no directory on the provider to map to.
INPUT_ROOTS = ("/inputs", "/work/inputs")
OUTPUT_ROOTS = ("/outputs", "/work/outputs")

MIB = 1 << 20
GIB = 1 << 30
DEFAULT_ENGINE = "wasm"
DEFAULT_CPU_MILLI = 1000
DEFAULT_MEMORY = 256 * MIB
DEFAULT_DISK = GIB
DEFAULT_TIMEOUT_S = 60
DEFAULT_BACKOFF_S = 10
DEFAULT_STRATEGY = "balanced"
DEFAULT_PAYMENT_MODE = "pay_after"
MAX_BIDS = 16  # placement.bids: providers asked for a bid in one round
MAX_REPLICAS = 16  # verification.replicas: distinct providers one unit runs on

# What a retry policy may retry (`retry.on`), by the error code a failed try ended with:
#   task_failed   the task ran and failed by itself: exited non-zero, trapped, went over its memory or
#                 disk limit (what Kubernetes' backoffLimit and Nomad's restart count)
#   task_timeout  the task ran past its timeout
#   node_lost     the provider stopped, restarted or could not be reached while the task ran
#   transient     any other error the catalog calls retryable (a busy node, an unreachable storage...),
#                 unless whoever raised it said a retry cannot help
# Anything else (a bad spec, a refusal, a cancel) is never retried.
RETRY_ON = ("task_failed", "task_timeout", "node_lost", "transient")
DEFAULT_RETRY_ON = ("node_lost", "transient")
TASK_FAILED_CODES = frozenset({"task_failed", "module_trap", "task_oom", "task_disk_limit"})
NODE_LOST_CODES = frozenset(
    {"alloc_interrupted", "peer_unreachable", "timeout", "unavailable", "hub_unreachable", "transport_closed"}
)

Scalar = str | int | float | bool
ConstraintValue = Scalar | tuple[Scalar, ...] | None


@dataclass(frozen=True, slots=True)
class Gpu:
    count: int = 0
    model: str | None = None
    vram: int = 0  # bytes per GPU

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"count": self.count, "vram": self.vram}
        if self.model is not None:
            out["model"] = self.model
        return out


@dataclass(frozen=True, slots=True)
class Resources:
    cpu: int = DEFAULT_CPU_MILLI  # millicores
    memory: int = DEFAULT_MEMORY  # bytes
    disk: int = DEFAULT_DISK  # bytes
    gpu: Gpu = field(default_factory=Gpu)

    def to_dict(self) -> dict[str, Any]:
        return {"cpu": f"{self.cpu}m", "memory": self.memory, "disk": self.disk, "gpu": self.gpu.to_dict()}


@dataclass(frozen=True, slots=True)
class Source:
    """Where an input comes from; `params` hold the type's own fields (url, bucket, key, content...)."""

    type: str
    params: Mapping[str, Scalar] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **self.params}


@dataclass(frozen=True, slots=True)
class InputSpec:
    name: str
    source: Source
    path: str  # where the task sees it
    sha256: str | None = None  # lowercase hex; checked after fetching

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "source": self.source.to_dict(), "path": self.path}
        if self.sha256 is not None:
            out["sha256"] = self.sha256
        return out


@dataclass(frozen=True, slots=True)
class Publish:
    type: str = "local"
    params: Mapping[str, Scalar] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **self.params}


@dataclass(frozen=True, slots=True)
class OutputSpec:
    name: str
    path: str
    publish: Publish = field(default_factory=Publish)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "publish": self.publish.to_dict()}


@dataclass(frozen=True, slots=True)
class TaskSpec:
    name: str
    engine: str = DEFAULT_ENGINE
    module: str | None = None  # wasm: a path, an http(s) URL, "sha256:<hex>" or "cid:<cid>"
    image: str | None = None  # docker image, firecracker rootfs image
    command: tuple[str, ...] = ()  # replaces the image entrypoint (docker) / the program (process)
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    timeout: int | None = DEFAULT_TIMEOUT_S  # seconds; None only for service tasks (run until stopped)
    inputs: tuple[InputSpec, ...] = ()
    outputs: tuple[OutputSpec, ...] = ()
    network: bool = False
    allow_pull: bool = False
    depends_on: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "engine": self.engine}
        if self.module is not None:
            out["module"] = self.module
        if self.image is not None:
            out["image"] = self.image
        if self.command:
            out["command"] = list(self.command)
        out.update(
            args=list(self.args),
            env=dict(self.env),
            resources=self.resources.to_dict(),
            timeout=self.timeout,
            inputs=[i.to_dict() for i in self.inputs],
            outputs=[o.to_dict() for o in self.outputs],
            network=self.network,
            depends_on=list(self.depends_on),
        )
        if self.engine == "docker":
            out["allow_pull"] = self.allow_pull
        return out


def _value_to_data(value: ConstraintValue) -> Any:
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True, slots=True)
class Constraint:
    """A hard requirement on the node: `key op value` (`exists` takes no value)."""

    key: str
    op: str
    value: ConstraintValue = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "op": self.op}
        if self.op != "exists":
            out["value"] = _value_to_data(self.value)
        return out


@dataclass(frozen=True, slots=True)
class Affinity:
    """A soft preference: nodes matching `key op value` gain `weight` (-100..100, negative = avoid)."""

    key: str
    op: str
    value: ConstraintValue
    weight: int

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "op": self.op, "weight": self.weight}
        if self.op != "exists":
            out["value"] = _value_to_data(self.value)
        return out


@dataclass(frozen=True, slots=True)
class Placement:
    max_price: int | None = None  # minor units for the whole job
    min_trust: float | None = None  # 0..1
    strategy: str = DEFAULT_STRATEGY
    bids: int | None = None  # providers asked for a bid per round, 1..MAX_BIDS (None: the node's default)
    min_stake: int | None = None  # minor units a provider must hold in stake (the hub's ledger); also what a
    # provider proven wrong by redundancy is slashed (orchestrator/slashing.py)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"strategy": self.strategy}
        if self.max_price is not None:
            out["max_price"] = self.max_price
        if self.min_trust is not None:
            out["min_trust"] = self.min_trust
        if self.bids is not None:
            out["bids"] = self.bids
        if self.min_stake is not None:
            out["min_stake"] = self.min_stake
        return out


@dataclass(frozen=True, slots=True)
class Verification:
    """Redundant execution: every unit runs on `replicas` distinct providers and is accepted when `agree` of
    them signed the same output hashes (2 <= replicas <= MAX_REPLICAS, 1 <= agree <= replicas)."""

    replicas: int
    agree: int

    @staticmethod
    def majority(replicas: int) -> int:
        """`agree` when the spec leaves it out: more than half of the replicas."""
        return replicas // 2 + 1

    def to_dict(self) -> dict[str, Any]:
        return {"replicas": self.replicas, "agree": self.agree}


@dataclass(frozen=True, slots=True)
class Payment:
    mode: str = DEFAULT_PAYMENT_MODE
    budget: int | None = None  # minor units; None = no limit beyond placement.max_price

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode}
        if self.budget is not None:
            out["budget"] = self.budget
        return out


def failure_class(code: str, retryable: bool = True) -> str | None:
    """Which `RETRY_ON` class a failure with this error code is in (None: never retried). `retryable`
    is what the error itself says; it can only take a catalog-retryable code out of `transient`."""
    if code in TASK_FAILED_CODES:
        return "task_failed"
    if code == "task_timeout":
        return "task_timeout"
    if code in NODE_LOST_CODES:
        return "node_lost"
    kind = CATALOG.get(code)
    return "transient" if kind is not None and kind.retryable and retryable else None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 0  # retries after the first try
    backoff: int = DEFAULT_BACKOFF_S  # seconds between tries
    on: tuple[str, ...] = DEFAULT_RETRY_ON  # failure classes retried (RETRY_ON)

    def should_retry(self, code: str, retryable: bool, attempt: int) -> bool:
        """Whether try number `attempt` (1-based), failed with error `code`, is followed by another."""
        if attempt > self.attempts:
            return False
        kind = failure_class(code, retryable)
        return kind is not None and kind in self.on

    def to_dict(self) -> dict[str, Any]:
        return {"attempts": self.attempts, "backoff": self.backoff, "on": list(self.on)}


@dataclass(frozen=True, slots=True)
class JobSpec:
    name: str
    tasks: tuple[TaskSpec, ...]
    type: str = "batch"
    count: int = 1
    constraints: tuple[Constraint, ...] = ()
    affinities: tuple[Affinity, ...] = ()
    placement: Placement = field(default_factory=Placement)
    payment: Payment = field(default_factory=Payment)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # seconds after submission (int) or an absolute time (ISO-8601 UTC string ending in "Z")
    deadline: int | str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    verification: Verification | None = None  # redundant execution (market jobs only)

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    def task(self, name: str) -> TaskSpec:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)

    def deadline_at(self, submitted_at: float) -> float | None:
        """The deadline as epoch seconds, given when the job was submitted (epoch seconds)."""
        if self.deadline is None:
            return None
        if isinstance(self.deadline, int):
            return submitted_at + self.deadline
        return datetime.fromisoformat(self.deadline).timestamp()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "count": self.count,
            "tasks": [t.to_dict() for t in self.tasks],
            "constraints": [c.to_dict() for c in self.constraints],
            "affinities": [a.to_dict() for a in self.affinities],
            "placement": self.placement.to_dict(),
            "payment": self.payment.to_dict(),
            "retry": self.retry.to_dict(),
            "labels": dict(self.labels),
        }
        if self.deadline is not None:
            out["deadline"] = self.deadline
        if self.verification is not None:
            out["verification"] = self.verification.to_dict()
        return out


def under_root(path: str, roots: tuple[str, ...]) -> bool:
    """`path` is one of `roots` or lies below one (no `.` or `..` parts): where a mount can go."""
    parts = path.split("/")
    if any(part in (".", "..") for part in parts):
        return False
    clean = "/" + "/".join(part for part in parts if part)
    return any(clean == r or clean.startswith(r + "/") for r in roots)


__all__ = [
    "CONSTRAINT_OPS",
    "DEFAULT_RETRY_ON",
    "ENGINES",
    "INPUT_ROOTS",
    "JOB_TYPES",
    "MAX_BIDS",
    "MAX_REPLICAS",
    "NODE_LOST_CODES",
    "OUTPUT_ROOTS",
    "PAYMENT_MODES",
    "PUBLISH_TYPES",
    "RETRY_ON",
    "SOURCE_TYPES",
    "STRATEGIES",
    "TASK_FAILED_CODES",
    "Affinity",
    "Constraint",
    "ConstraintValue",
    "Gpu",
    "InputSpec",
    "JobSpec",
    "OutputSpec",
    "Payment",
    "Placement",
    "Publish",
    "Resources",
    "RetryPolicy",
    "Scalar",
    "Source",
    "TaskSpec",
    "Verification",
    "failure_class",
    "under_root",
]
