"""A spec with what the user must hear besides errors: fields that are accepted but have no effect yet.

`validate(source)` and `validate_file(path)` return `(spec, warnings)`: the same validation as
`parse_job` / `load_job_file`, plus `spec_warnings(spec)`. The API returns these warnings on submit
and the CLI prints them, so a field that does nothing yet (there is no market to use a price, no ledger
to charge a budget) is never silently ignored. `NO_EFFECT_YET` lists them: an entry goes when the
feature that gives the field its meaning lands.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agora.jobs.parse import Format, load_job_file, parse_job
from agora.models.job import DEFAULT_PAYMENT_MODE, DEFAULT_STRATEGY, JobSpec

_NO_MARKET = "has no effect yet: the job runs on the node it names (no market places or prices jobs)"
_NO_LEDGER = "has no effect yet: nothing is charged or escrowed (no ledger)"
NO_EFFECT_YET: dict[str, str] = {
    "affinities": _NO_MARKET,
    "placement.max_price": _NO_MARKET,
    "placement.min_trust": _NO_MARKET,
    "placement.strategy": _NO_MARKET,
    "payment.mode": _NO_LEDGER,
    "payment.budget": _NO_LEDGER,
    "deadline": "has no effect yet: a job is not stopped at its deadline (each task's timeout applies)",
}


def _given(spec: JobSpec) -> dict[str, bool]:
    """Which of the `NO_EFFECT_YET` fields the spec sets to something other than its default."""
    return {
        "affinities": bool(spec.affinities),
        "placement.max_price": spec.placement.max_price is not None,
        "placement.min_trust": spec.placement.min_trust is not None,
        "placement.strategy": spec.placement.strategy != DEFAULT_STRATEGY,
        "payment.mode": spec.payment.mode != DEFAULT_PAYMENT_MODE,
        "payment.budget": spec.payment.budget is not None,
        "deadline": spec.deadline is not None,
    }


def spec_warnings(spec: JobSpec) -> list[str]:
    """`"<field>: <why>"` for each field the spec sets that has no effect yet."""
    given = _given(spec)
    return [f"{path}: {why}" for path, why in NO_EFFECT_YET.items() if given.get(path)]


def validate(source: str | bytes | Mapping[str, Any], *, fmt: Format | None = None) -> tuple[JobSpec, list[str]]:
    """`parse_job(source)` and its warnings (raises `job_spec_invalid` / `workflow_cycle` as it does)."""
    spec = parse_job(source, fmt=fmt)
    return spec, spec_warnings(spec)


def validate_file(path: str | Path) -> tuple[JobSpec, list[str]]:
    """Offline check of a job file (`agora job validate FILE`): the spec and its warnings, or the error
    `load_job_file` raises (`not_found`, `job_spec_invalid` with the YAML line and column, ...)."""
    spec = load_job_file(path)
    return spec, spec_warnings(spec)


__all__ = ["NO_EFFECT_YET", "spec_warnings", "validate", "validate_file"]
