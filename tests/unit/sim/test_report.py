from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agora.cli.main import app
from agora.sim import parse, simulate
from agora.sim.metrics import DEFINITIONS
from agora.sim.report import compare, write
from tests.unit.sim.conftest import tiny

runner = CliRunner()


def test_reports_of_the_same_seed_are_identical_files_plots_included(tmp_path: Path, tiny_doc: dict[str, Any]) -> None:
    write(simulate(parse(tiny_doc)), tmp_path / "a")
    write(simulate(parse(tiny_doc)), tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert "report.json" in names and "report.md" in names and len([n for n in names if n.endswith(".png")]) >= 8
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    md = (tmp_path / "a" / "report.md").read_text()
    for png in (n for n in names if n.endswith(".png")):
        assert f"]({png})" in md


def test_every_metric_carries_its_definition(tiny_doc: dict[str, Any]) -> None:
    doc = simulate(parse(tiny_doc))
    assert doc["metrics"] and all(m["definition"] == DEFINITIONS[k] for k, m in doc["metrics"].items())
    assert set(doc["series"]["definitions"]) == set(doc["series"]["values"])
    assert doc["real_code"]["matching"].startswith("agora.market.matching.match")


def test_compare_lists_changes_side_by_side(tiny_doc: dict[str, Any]) -> None:
    a = simulate(parse(tiny_doc))
    b = simulate(parse(tiny(providers={"count": 25, "price": 9})))
    rows = {name: (x, y, change) for name, x, y, change in compare(a, b)}
    assert rows["jobs_lost"][2] == "="
    x, y, change = rows["requester_spend_total"]
    assert x != y and change.startswith("+" if y > x else "-")
    with pytest.raises(Exception):  # noqa: B017 - not a report
        compare({"nope": 1}, b)


def test_cli_run_writes_the_report_and_compare_reads_two(tmp_path: Path, tiny_doc: dict[str, Any]) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(json.dumps(tiny_doc))  # JSON is YAML
    out = tmp_path / "out"
    res = runner.invoke(app, ["sim", "run", str(scenario), "--out", str(out), "--no-progress", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["jobs_lost"] == 0
    assert (out / "report.md").exists() and (out / "utilisation.png").exists()
    res = runner.invoke(app, ["sim", "compare", str(out / "report.json"), str(out / "report.json"), "--changed"])
    assert res.exit_code == 0 and "jobs_lost" not in res.output


def test_cli_names_the_bad_fields_of_a_scenario(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("providers: {count: 0}\njobs: {strategy: fancy}\n")
    res = runner.invoke(app, ["sim", "run", str(scenario), "--out", str(tmp_path / "o"), "--no-progress"])
    assert res.exit_code == 1
    assert "scenario_invalid" in res.output and "providers.count" in res.output and "jobs.strategy" in res.output


def test_docs_explain_every_metric_and_series() -> None:
    from agora.sim.metrics import SERIES

    doc = (Path(__file__).resolve().parents[3] / "docs" / "simulator.md").read_text()
    for name, definition in {**DEFINITIONS, **SERIES}.items():
        assert f"| `{name}` | {definition} |" in doc, name


def test_cli_run_with_its_progress_bar_and_a_sweep(tmp_path: Path, tiny_doc: dict[str, Any]) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(json.dumps({**tiny_doc, "duration": "1h"}))
    res = runner.invoke(app, ["sim", "run", str(scenario), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "jobs_lost" in res.output and "report.md" in res.output
    res = runner.invoke(
        app,
        ["sim", "sweep", str(scenario), "--param", "providers.price=2,4", "--workers", "1", "--out", str(tmp_path)],
    )
    assert res.exit_code == 0, res.output
    variants = json.loads((tmp_path / "sweep.json").read_text())["variants"]
    assert [v["sweep"] for v in variants] == [{"providers.price": 2}, {"providers.price": 4}]
