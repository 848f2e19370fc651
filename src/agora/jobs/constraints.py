"""A job's hard constraints against what a node is (pure, no I/O).

Until the market places jobs, a job names its node; these checks make its `constraints` mean what
docs/jobspec.md says (a node that fails one is never used) instead of being ignored:

- the provider refuses a start whose constraints its own capability does not meet
  (`require_constraints(raw, node_facts(total))`: every failing constraint named);
- the requester refuses before sending when it knows the target's capability (this node, or what a
  peer announced: `announced_facts`); a key the announcement does not carry is left to the provider.

Facts are a flat mapping `key -> value` with the keys constraints use: `arch`, `os`, `location`,
`gpu_model`, `gpu_count`, `gpu_vram_bytes`, `executors`, `cpu_millis`, `memory_bytes`, `disk_bytes`,
`trust`, `benchmark_score` and `labels.<name>`. A key mapped to `None` is known to be absent; a key not
in the mapping is unknown (not judged) unless the facts are `complete`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

from agora.errors import AgoraError
from agora.jobs.quantities import parse_bytes, parse_cpu
from agora.jobs.taskcheck import parse_constraints
from agora.models.capability import Capability, FitResult, Reason, gpu_model_matches, location_matches, normalize_arch
from agora.models.job import Constraint, Scalar

_OS_NAMES = {"win32": "windows", "cygwin": "windows", "darwin": "darwin"}
HOST_OS = _OS_NAMES.get(sys.platform, "linux" if sys.platform.startswith("linux") else sys.platform)
_BYTES = ("memory_bytes", "disk_bytes", "gpu_vram_bytes")
_NUMBERS = ("cpu_millis", "gpu_count", "trust", "benchmark_score", *_BYTES)
_ANNOUNCED = ("arch", "executors", "cpu_millis", "memory_bytes", "disk_bytes", "gpu_count", "benchmark_score")


def node_facts(cap: Capability, *, os_name: str | None = HOST_OS) -> dict[str, Any]:
    """Everything a node knows about itself, as constraint keys (its own labels are all it has)."""
    facts: dict[str, Any] = {
        "arch": cap.arch,
        "os": os_name,
        "location": cap.location,
        "gpu_model": cap.gpu_model,
        "gpu_count": cap.gpu_count,
        "gpu_vram_bytes": cap.gpu_vram_bytes,
        "executors": sorted(cap.executors),
        "cpu_millis": cap.cpu_millis,
        "memory_bytes": cap.memory_bytes,
        "disk_bytes": cap.disk_bytes,
        "trust": cap.trust,
        "benchmark_score": cap.benchmark_score,
    }
    facts.update({f"labels.{k}": v for k, v in cap.labels.items()})
    return facts


def announced_facts(summary: Mapping[str, Any]) -> dict[str, Any]:
    """What a peer's announcement (`capabilities`) tells about it; the rest stays unknown."""
    return {k: summary[k] for k in _ANNOUNCED if k in summary and summary[k] is not None}


def _number(key: str, value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        if key in _BYTES:
            return float(parse_bytes(value))
        if key == "cpu_millis":
            return float(parse_cpu(value))
        return float(value)
    except (TypeError, ValueError):
        return None


def _equals(key: str, want: Scalar, have: Any) -> bool:
    if key == "executors":
        return isinstance(have, (list, tuple, set, frozenset)) and str(want) in have
    if key == "arch":
        return isinstance(want, str) and isinstance(have, str) and normalize_arch(want) == normalize_arch(have)
    if key == "location":
        return isinstance(want, str) and location_matches(want, have)
    if key == "gpu_model":
        return isinstance(want, str) and gpu_model_matches(want, have)
    if key == "os":
        return isinstance(want, str) and isinstance(have, str) and want.strip().lower() == have.lower()
    if key in _NUMBERS:
        a, b = _number(key, want), _number(key, have)
        return a is not None and a == b
    if isinstance(want, bool) or isinstance(have, bool):
        return bool(want == have)
    return str(want) == str(have)


def meets(c: Constraint, have: Any) -> bool:
    """Whether a node whose fact for `c.key` is `have` (None: it has none) meets `c`."""
    absent = have is None or (c.key == "executors" and not have)
    if c.op == "exists":
        return not absent
    if c.op in ("!=", "not_in"):
        values = c.value if isinstance(c.value, tuple) else (c.value,)
        return absent or not any(_equals(c.key, v, have) for v in values if v is not None)
    if absent:
        return False
    if c.op == "==":
        return c.value is not None and not isinstance(c.value, tuple) and _equals(c.key, c.value, have)
    if c.op == "in":
        return isinstance(c.value, tuple) and any(_equals(c.key, v, have) for v in c.value)
    want, got = _number(c.key, c.value), _number(c.key, have)
    if want is None or got is None:
        return False
    return got >= want if c.op == ">=" else got <= want


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def check_constraints(
    constraints: Iterable[Constraint], facts: Mapping[str, Any], *, complete: bool = True
) -> FitResult:
    """Every constraint the facts fail, as comparator `Reason`s (code `constraint_unmet`); with
    `complete=False` a key missing from `facts` is unknown and not judged."""
    reasons: list[Reason] = []
    for c in constraints:
        if c.key not in facts and not complete:
            continue
        have = facts.get(c.key)
        if meets(c, have):
            continue
        want = c.op if c.op == "exists" else f"{c.op} {_show(c.value)}"
        text = f"constraint_unmet: {c.key} {want}, has {_show(have)}"
        reasons.append(Reason("constraint_unmet", c.key, c.to_dict(), have, text))
    return FitResult(ok=not reasons, reasons=reasons)


def require_constraints(
    constraints: Iterable[Constraint], facts: Mapping[str, Any], *, node: str = "the node", complete: bool = True
) -> None:
    """Raise `constraints_unmet` naming every constraint `facts` fail (details.reasons), else nothing."""
    result = check_constraints(constraints, facts, complete=complete)
    if result.ok:
        return
    raise AgoraError(
        "constraints_unmet",
        f"{node} does not meet the job's constraints: {result.text}",
        details={"reasons": [r.to_dict() for r in result.reasons], "node": node},
    )


def require_start_constraints(raw: Any, capability: Capability) -> None:
    """The provider's check of a start request's `constraints` against its own capability."""
    require_constraints(parse_constraints(raw), node_facts(capability), node="this provider")


__all__ = [
    "HOST_OS",
    "announced_facts",
    "check_constraints",
    "meets",
    "node_facts",
    "require_constraints",
    "require_start_constraints",
]
