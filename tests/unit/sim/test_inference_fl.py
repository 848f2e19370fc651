"""The inference-routing and federated-learning parts of the world: the real inference and FL code, small
worlds (about a second each)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from agora.errors import AgoraError
from agora.fl.rounds import EscrowPayer
from agora.inference.requester import InferenceRequester
from agora.sim import parse, simulate
from agora.sim.metrics import DEFINITIONS
from agora.sim.report import write
from tests.unit.sim.conftest import tiny

SCENARIOS = Path(__file__).resolve().parents[3] / "examples" / "scenarios"


def inference_doc(**over: Any) -> dict[str, Any]:
    inf: dict[str, Any] = {
        "strategy": {"cheapest": 1, "fastest": 1, "balanced": 1},
        "providers": {"count": 8, "dishonest": 0.25, "reliability": 0.9, "max_concurrency": 1},
        "requesters": {"count": 6, "arrivals": {"rate_per_hour": 240}},
        **over,
    }
    return {
        "name": "tiny-inference",
        "seed": 3,
        "duration": "1h",
        "sample_every": "15m",
        "providers": {"count": 0},
        "requesters": {"arrivals": {"rate_per_hour": 0}},
        "inference": inf,
    }


def fl_doc(**over: Any) -> dict[str, Any]:
    fl: dict[str, Any] = {
        "providers": {"count": 8, "dishonest": 0.25, "bad_rate": 1.0, "stragglers": 0.25, "price_per_update": 10},
        "owners": {"count": 2, "arrivals": {"rate_per_hour": 3}},
        "training": {"rounds": 3, "min_fit": 3, "min_providers": 4, "max_providers": 6, "round_deadline_s": 60},
        **over,
    }
    return {
        "name": "tiny-fl",
        "seed": 5,
        "duration": "3h",
        "sample_every": "30m",
        "providers": {"count": 0},
        "requesters": {"arrivals": {"rate_per_hour": 0}},
        "fl": fl,
    }


def values(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: m["value"] for k, m in doc["metrics"].items()}


def test_inference_routes_with_every_strategy_falls_back_and_refuses_overbilled_records() -> None:
    doc = simulate(parse(inference_doc()))
    m = values(doc)
    assert m["inference_requests"] > 100
    assert m["inference_served"] + m["inference_failed"] == m["inference_requests"]
    assert set(m["inference_latency_s"]) == {"cheapest", "fastest", "balanced"}
    assert all(v["n"] > 0 and v["p95"] >= v["p50"] > 0 for v in m["inference_latency_s"].values())
    # the overbilling providers' records were refused by verify_record and never paid, and trust fell
    assert m["inference_dishonest_providers"] > 0
    assert m["metering_disputes_caught"] == m["inference_failures"]["metering_invalid"] > 0
    assert m["inference_fallback_rate"] > 0
    assert m["inference_trust_end"]["dishonest"] < m["inference_trust_end"]["honest"]
    prices = m["inference_price_per_1k_tokens"]
    assert set(prices) == {"cheapest", "fastest", "balanced", "all"} and all(v > 0 for v in prices.values())
    assert prices["cheapest"] <= prices["all"] <= max(prices.values())
    assert m["ledger_sum_max_abs"] == 0
    assert "jobs_submitted" not in m  # no compute market in this scenario
    assert all(k in DEFINITIONS for k in m)


def test_inference_spend_is_what_the_model_providers_earned_in_both_payment_modes() -> None:
    for payment in ("pay_after", "pay_before"):
        doc = simulate(parse(inference_doc(payment=payment)))
        series = doc["series"]["values"]
        m = values(doc)
        assert series["ledger_providers"][-1] == m["inference_spend_per_requester"]["total"] > 0, payment
        assert series["ledger_escrow"][-1] == 0, payment  # every request's escrow settled
        assert doc["payments"] == {"inference": payment}


def test_training_runs_pay_verified_updates_only_and_catch_every_bad_one() -> None:
    m = values(simulate(parse(fl_doc())))
    assert m["fl_runs"] > 0 and m["fl_runs_completed"] + m["fl_runs_failed"] + m["fl_runs_unmatched"] == m["fl_runs"]
    up = m["fl_updates"]
    assert up["paid"] + up["unpaid"] == up["asked"] > 0
    assert up["unpaid"] == up["late"] + up["rejected"] + up["accepted_in_failed_rounds"]
    assert m["fl_bad_updates_sent"] == m["fl_bad_updates_caught"] and sum(m["fl_bad_updates_sent"].values()) > 0
    assert m["fl_straggler_share"] > 0
    assert m["fl_spend_total"] == 10 * up["paid"]  # 10 per verified update, nothing else
    assert m["fl_trust_end"]["dishonest"] < m["fl_trust_end"]["honest"]
    assert m["ledger_sum_max_abs"] == 0


def test_every_metric_and_series_of_the_new_reports_carries_its_definition() -> None:
    from agora.sim.metrics import SERIES

    for d in (inference_doc(), fl_doc()):
        doc = simulate(parse(d))
        assert all(m["definition"] == DEFINITIONS[k] for k, m in doc["metrics"].items())
        assert doc["series"]["definitions"] == {k: SERIES[k] for k in doc["series"]["values"]}
        assert "utilisation" not in doc["series"]["values"]  # no compute market, no compute series


def test_a_min_fit_above_what_arrives_fails_rounds_and_runs_and_refunds() -> None:
    doc = simulate(parse(fl_doc(training={"rounds": 2, "min_fit": 6, "min_providers": 6, "max_providers": 6})))
    m = values(doc)
    assert m["fl_rounds_failed"] > 0 and m["fl_runs_failed"] > 0
    assert doc["series"]["values"]["ledger_escrow"][-1] == 0


def test_same_seed_same_files_for_the_new_scenarios(tmp_path: Path) -> None:
    for name, d in (("inference", inference_doc()), ("fl", fl_doc())):
        write(simulate(parse(d)), tmp_path / name / "a")
        write(simulate(parse(d)), tmp_path / name / "b")
        names = sorted(p.name for p in (tmp_path / name / "a").iterdir())
        assert len([n for n in names if n.endswith(".png")]) == 4, names  # three of the section's and the ledger
        for n in names:
            assert (tmp_path / name / "a" / n).read_bytes() == (tmp_path / name / "b" / n).read_bytes(), n
        md = (tmp_path / name / "a" / "report.md").read_text()
        assert all(f"]({n})" in md for n in names if n.endswith(".png"))


def test_an_escrow_left_locked_after_a_request_is_a_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    async def pay_nothing(self: InferenceRequester, provider: str, contract: str, locked: int, rec: Any) -> int:
        return 0  # neither releases nor refunds what the request locked

    monkeypatch.setattr(InferenceRequester, "_pay", pay_nothing)
    with pytest.raises(AgoraError) as err:
        simulate(parse(inference_doc()))
    assert err.value.code == "sim_invariant_violated"
    assert err.value.details["invariant"] == "escrow_settled"
    assert any("infer" in t for t in err.value.details["trail"])


def test_a_round_escrow_never_refunded_is_a_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    async def keep(self: EscrowPayer, p: Any, rounds: int) -> None:
        return None

    monkeypatch.setattr(EscrowPayer, "refund_rest", keep)
    with pytest.raises(AgoraError) as err:
        simulate(parse(fl_doc()))
    assert err.value.details["invariant"] == "escrow_settled"


def test_random_mixed_worlds_break_no_invariant() -> None:
    import random

    rng = random.Random(42)
    for i in range(3):
        doc = tiny(duration="1h", seed=i)
        doc["inference"] = {
            "strategy": rng.choice(["cheapest", "fastest", "balanced"]),
            "payment": rng.choice(["pay_after", "pay_before"]),
            "providers": {"count": rng.randint(2, 6), "dishonest": rng.random() * 0.5, "reliability": 0.85},
            "requesters": {"count": rng.randint(1, 4), "arrivals": {"rate_per_hour": rng.randint(20, 120)}},
        }
        doc["fl"] = {
            "providers": {"count": rng.randint(3, 8), "dishonest": rng.random() * 0.4, "dropout": 0.1},
            "owners": {"count": 2, "arrivals": {"rate_per_hour": 2}},
            "training": {"rounds": 2, "min_fit": 2, "min_providers": 2, "max_providers": 4},
        }
        m = values(simulate(parse(doc)))
        assert m["jobs_lost"] == 0 and m["ledger_sum_max_abs"] == 0
        assert m["inference_served"] + m["inference_failed"] == m["inference_requests"]


def test_every_shipped_scenario_is_valid_and_the_new_sections_name_their_bad_fields() -> None:
    files = sorted(SCENARIOS.glob("*.yaml"))
    assert {"inference.yaml", "federated.yaml"} <= {f.name for f in files}
    for f in files:
        parse(yaml.safe_load(f.read_text()))
    bad = inference_doc(strategy="psychic", providers={"count": 0, "inflate": 1})
    bad["fl"] = {"training": {"rounds": 0}, "providers": {"slowdown": 0}}
    with pytest.raises(AgoraError) as err:
        parse(bad)
    fields = {p["field"] for p in err.value.details["problems"]}
    assert {"inference.strategy", "inference.providers.count", "inference.providers.inflate"} <= fields
    assert {"fl.training.rounds", "fl.providers.slowdown"} <= fields


def test_owners_without_the_funds_for_a_run_fail_it_and_the_world_goes_on() -> None:
    # found by the simulator: TrainingRun closed contracts it never opened when the escrow lock was refused
    doc = fl_doc()
    doc["fl"]["owners"]["funds"] = 100  # less than one run's escrows (4+ providers x 3 rounds x 10)
    m = values(simulate(parse(doc)))
    assert m["fl_runs"] > 1 and m["fl_runs_failed"] == m["fl_runs"] - m["fl_runs_unmatched"]
    assert m["fl_updates"]["paid"] == 0 and m["fl_spend_total"] == 0 and m["ledger_sum_max_abs"] == 0


def test_the_cli_runs_the_new_scenarios_with_a_progress_bar(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from agora.cli.main import app

    seen: list[float] = []
    simulate(parse(fl_doc()), progress=seen.append)
    assert seen == sorted(seen) and seen[0] == 0.0 and seen[-1] >= 0.8
    for name, d in (("inference", inference_doc()), ("fl", fl_doc())):
        scenario = tmp_path / f"{name}.yaml"
        scenario.write_text(json.dumps(d))
        res = CliRunner().invoke(app, ["sim", "run", str(scenario), "--out", str(tmp_path / name)])
        assert res.exit_code == 0, res.output
        assert ("inference_served" if name == "inference" else "fl_rounds_completed") in res.output
        assert "jobs_submitted" not in res.output and (tmp_path / name / "report.md").exists()
