"""A spec with what the user must hear besides errors: fields that are accepted but have no effect yet.

`validate(source)` and `validate_file(path)` return `(spec, warnings)`: the same validation as
`parse_job` / `load_job_file`, plus `spec_warnings(spec)`. The API returns these warnings on submit
and the CLI prints them, so a field that does nothing where the job runs is never silently ignored:
`MARKET_ONLY` lists what only the market uses (a job sent to a named node ignores it), `NO_EFFECT_YET`
what nothing uses yet; an entry goes when the feature that gives the field its meaning lands (the
`payment` block went with the contracts: a market placement locks or pays its bid's price per
`payment.mode`, within `payment.budget`; see docs/marketplace.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agora.jobs.parse import Format, load_job_file, parse_job
from agora.models.job import DEFAULT_PAYMENT_MODE, DEFAULT_STRATEGY, JobSpec

_NO_MARKET = "has no effect with --node: the job runs on the node it names (the market is not asked)"
_NO_CONTRACT = "has no effect with --node: a job on a named node has no market contract (nothing is escrowed)"
# The fields that only the market uses (placement through the hub's index: no --node)
MARKET_ONLY: dict[str, str] = {
    "affinities": _NO_MARKET,
    "placement.max_price": _NO_MARKET,
    "placement.min_trust": _NO_MARKET,
    "placement.strategy": _NO_MARKET,
    "placement.bids": _NO_MARKET,
    "placement.min_stake": _NO_MARKET,
    "verification": "is refused with --node: redundant execution needs the market to pick distinct providers",
    "payment.budget": _NO_MARKET,
    "deadline": "has no effect with --node: a job is not stopped at its deadline (each task's timeout applies)",
}
# The fields nothing uses yet, wherever the job runs (none now: payment.mode and payment.budget settle contracts)
NO_EFFECT_YET: dict[str, str] = {}


def _given(spec: JobSpec) -> dict[str, bool]:
    """Which of the `NO_EFFECT_YET` fields the spec sets to something other than its default."""
    return {
        "affinities": bool(spec.affinities),
        "placement.max_price": spec.placement.max_price is not None,
        "placement.min_trust": spec.placement.min_trust is not None,
        "placement.strategy": spec.placement.strategy != DEFAULT_STRATEGY,
        "placement.bids": spec.placement.bids is not None,
        "placement.min_stake": spec.placement.min_stake is not None,
        "verification": spec.verification is not None,
        "payment.mode": spec.payment.mode != DEFAULT_PAYMENT_MODE,
        "payment.budget": spec.payment.budget is not None,
        "deadline": spec.deadline is not None,
    }


def spec_warnings(spec: JobSpec, *, market: bool = True) -> list[str]:
    """`"<field>: <why>"` for each field the spec sets that has no effect where the job runs: placed by the
    market (`market`, no --node), or on the node it names."""
    given = _given(spec)
    rules = NO_EFFECT_YET if market else {**MARKET_ONLY, "payment.mode": _NO_CONTRACT}
    return [f"{path}: {why}" for path, why in rules.items() if given.get(path)]


def validate(
    source: str | bytes | Mapping[str, Any], *, fmt: Format | None = None, market: bool = True
) -> tuple[JobSpec, list[str]]:
    """`parse_job(source)` and its warnings (raises `job_spec_invalid` / `workflow_cycle` as it does)."""
    spec = parse_job(source, fmt=fmt)
    return spec, spec_warnings(spec, market=market)


def validate_file(path: str | Path) -> tuple[JobSpec, list[str]]:
    """Offline check of a job file (`agora job validate FILE`): the spec and its warnings, or the error
    `load_job_file` raises (`not_found`, `job_spec_invalid` with the YAML line and column, ...). The
    warnings are those of a job the market places (`agora job run` without --node)."""
    spec = load_job_file(path)
    return spec, spec_warnings(spec)


__all__ = ["MARKET_ONLY", "NO_EFFECT_YET", "spec_warnings", "validate", "validate_file"]
