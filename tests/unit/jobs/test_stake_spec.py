"""The spec's `placement.min_stake`: parsed, round-tripped, a market-only field, every bad value a field error."""

from __future__ import annotations

from typing import Any

import pytest

from agora.jobs import parse_job
from agora.jobs.validate import spec_warnings
from tests.unit.jobs.test_parse import MINIMAL, errors_of, paths


def job(**extra: Any) -> dict[str, Any]:
    return {**MINIMAL, **extra}


def test_min_stake_parses_round_trips_and_is_absent_by_default() -> None:
    spec = parse_job(job(placement={"min_stake": 250}))
    assert spec.placement.min_stake == 250
    again = parse_job(spec.to_dict())
    assert again == spec and again.to_dict()["placement"]["min_stake"] == 250
    plain = parse_job(MINIMAL)
    assert plain.placement.min_stake is None and "min_stake" not in plain.to_dict()["placement"]
    assert any(w.startswith("placement.min_stake: ") for w in spec_warnings(spec, market=False))
    assert spec_warnings(spec, market=True) == []


@pytest.mark.parametrize("value", [0, -1, 2.5, "100", None, True])
def test_a_bad_min_stake_names_its_field(value: Any) -> None:
    assert paths(errors_of(job(placement={"min_stake": value}))) == ["placement.min_stake"]
