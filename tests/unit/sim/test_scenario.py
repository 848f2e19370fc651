from __future__ import annotations

import random

import pytest

from agora.errors import AgoraError
from agora.sim.scenario import load, parse, with_param
from agora.sim.sweep import parse_param, variants
from tests.unit.sim.conftest import tiny


def test_defaults_parse_and_distributions_draw_within_bounds() -> None:
    sc = parse({"name": "d"})
    assert sc.payment == "pay_before" and sc.duration_s == 86400.0
    rng = random.Random(1)
    draws = [sc.providers.cores.draw_int(rng, 1) for _ in range(200)]
    assert set(draws) <= {4, 8, 16}
    assert all(sc.providers.benchmark.draw(rng) >= 0.01 for _ in range(200))


def test_every_problem_is_reported_with_its_field_path() -> None:
    doc = tiny(
        providers={"count": -1, "price": {"uniform": [5, 1]}, "bogus": 1},
        jobs={"engines": {"wasm": 1, "vm": 1}, "deadline": "soon"},
        payment={"mode": "later"},
        churn={"crash_per_hour": -2},
    )
    doc["nonsense"] = True
    with pytest.raises(AgoraError) as err:
        parse(doc)
    assert err.value.code == "scenario_invalid"
    fields = {p["field"] for p in err.value.details["problems"]}
    assert {
        "providers.count",
        "providers.price.uniform",
        "providers.bogus",
        "jobs.engines",
        "jobs.deadline",
        "payment.mode",
        "churn.crash_per_hour",
        "nonsense",
    } <= fields


def test_yaml_errors_and_non_mappings_are_scenario_invalid() -> None:
    for text in ("a: [", "- 1\n- 2\n"):
        with pytest.raises(AgoraError) as err:
            load(text)
        assert err.value.code == "scenario_invalid"


def test_durations_take_units() -> None:
    sc = parse(tiny(duration="1.5h", sample_every="90s"))
    assert sc.duration_s == 5400.0 and sc.sample_every_s == 90.0


def test_with_param_sets_a_nested_field_on_a_copy() -> None:
    doc = tiny()
    out = with_param(doc, "providers.price", 9)
    assert out["providers"]["price"] == 9 and doc["providers"]["price"] == {"uniform": [1, 6]}
    assert with_param(doc, "matching.k", 2)["matching"] == {"k": 2}


def test_sweep_params_ranges_lists_and_bad_values() -> None:
    assert parse_param("providers.price=1..4") == ("providers.price", [1, 2, 3, 4])
    assert parse_param("payment.mode=pay_before,pay_after") == ("payment.mode", ["pay_before", "pay_after"])
    for bad in ("price", "x=5..1", "=1"):
        with pytest.raises(AgoraError):
            parse_param(bad)
    with pytest.raises(AgoraError) as err:  # a variant that does not validate fails before anything runs
        variants(tiny(), ["providers.count=0,1"])
    assert err.value.code == "scenario_invalid"
    assert len(variants(tiny(), ["providers.price=1..3", "matching.k=1,2"])) == 6
