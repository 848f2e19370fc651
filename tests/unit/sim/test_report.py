from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agora.cli.main import app
from agora.errors import AgoraError
from agora.sim import parse, simulate
from agora.sim.metrics import DEFINITIONS
from agora.sim.report import compare, show, unit, write
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
    rows = {r.metric: r for r in compare(a, b)}
    assert rows["jobs_lost"].equal and rows["jobs_lost"].cells()["change"] == "="
    spend = rows["requester_spend_total"]
    assert spend.a != spend.b and spend.change == spend.b - spend.a
    assert spend.change_pct == pytest.approx((spend.b - spend.a) / spend.a * 100)
    assert spend.cells()["change"].startswith("+" if spend.b > spend.a else "-")
    with pytest.raises(AgoraError) as err:  # not a report
        compare({"nope": 1}, b)
    assert err.value.code == "sim_report_invalid"


@pytest.mark.parametrize(
    ("metric", "value", "shown"),
    [
        ("jobs_submitted", 26285934, "26,285,934"),  # a count: thousands separators, no decimals
        ("requester_spend_mean", 1797.0712, "1,797"),  # money: integer minor units
        ("requester_spend_total", -1623520, "-1,623,520"),
        ("first_placement_latency_s.p99", 2344.25, "2,344.2"),  # simulated seconds: one decimal
        ("first_placement_latency_s.n", 1234, "1,234"),  # the size of a distribution is a count
        ("utilisation_mean", 0.61234, "0.612"),  # a share: three decimals
        ("trust_end.honest", 0.5, "0.500"),
        ("price_per_core_hour_mean", 3.14159, "3.14"),  # a price: two decimals
        ("earnings_by_decile[3]", 12.5, "12"),  # money (round half to even)
        ("time_to_catch_s", None, "-"),
    ],
)
def test_compare_shows_each_unit_in_one_format(metric: str, value: Any, shown: str) -> None:
    assert show(value, unit(metric)) == shown


def test_compare_change_is_in_the_metrics_unit_and_a_percentage() -> None:
    a = {"metrics": {"requester_spend_total": {"value": 26285934}, "utilisation_mean": {"value": 0.5}}}
    b = {"metrics": {"requester_spend_total": {"value": 24662414}, "utilisation_mean": {"value": 0.55}}}
    rows = {r.metric: r.cells() for r in compare(a, b)}
    assert (
        rows["requester_spend_total"]["change"] == "-1,623,520"
        and rows["requester_spend_total"]["change_pct"] == "-6.2%"
    )
    assert rows["utilisation_mean"]["change"] == "+0.050" and rows["utilisation_mean"]["change_pct"] == "+10.0%"
    assert not any("e+" in c or "e-" in c for r in rows.values() for c in r.values())


def _two_reports(tmp_path: Path, tiny_doc: dict[str, Any]) -> tuple[Path, Path]:
    a, b = tmp_path / "base" / "report.json", tmp_path / "pricier" / "report.json"
    write(simulate(parse(tiny_doc)), a.parent, with_plots=False)
    write(simulate(parse(tiny(providers={"count": 25, "price": 9}))), b.parent, with_plots=False)
    return a, b


def test_cli_compare_names_both_files_in_aligned_columns(tmp_path: Path, tiny_doc: dict[str, Any]) -> None:
    a, b = _two_reports(tmp_path, tiny_doc)
    res = runner.invoke(app, ["sim", "compare", str(a), str(b)])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith(f"A: {a}  (scenario tiny, seed 7, 3 h)"), lines[0]
    assert lines[1].startswith(f"B: {b}  (scenario tiny, seed 7, 3 h)"), lines[1]
    header = next(i for i, line in enumerate(lines) if line.startswith("METRIC"))
    table = lines[header:]
    assert table[0].split() == ["METRIC", "UNIT", "A", "B", "CHANGE", "(B", "-", "A)", "CHANGE", "%"]
    # right-aligned number columns: every row's B column ends where the header's B ends
    b_end = table[0].index(" B ") + 2
    rows = {line.split()[0]: line for line in table[1:]}
    assert all(line[b_end - 1] != " " and line[b_end] == " " for line in rows.values()), table
    spend = rows["requester_spend_total"].split()
    assert (
        spend[1:3] == ["minor", "units"] and re.fullmatch(r"[\d,]+", spend[3]) and re.fullmatch(r"[+-][\d,]+", spend[5])
    )
    assert re.fullmatch(r"[+-][\d,]+\.\d%", spend[6]), spend
    assert re.fullmatch(r"[\d,]+\.\d", rows["first_placement_latency_s.p90"].split()[2])
    assert "e+" not in res.output and "e-0" not in res.output
    # --json: the file names and the raw numbers
    res = runner.invoke(app, ["sim", "compare", str(a), str(b), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["a"] == str(a) and out["b"] == str(b)
    raw = {r["metric"]: r for r in out["metrics"]}
    ra, rb = (json.loads(p.read_text())["metrics"]["requester_spend_total"]["value"] for p in (a, b))
    assert raw["requester_spend_total"]["a"] == ra and raw["requester_spend_total"]["b"] == rb
    assert raw["requester_spend_total"]["change"] == rb - ra and raw["jobs_lost"]["change"] == 0


@pytest.mark.parametrize("command", ["run", "sweep", "compare-a", "compare-b"])
def test_a_missing_file_is_one_clear_error_in_every_sim_command(
    tmp_path: Path, tiny_doc: dict[str, Any], command: str
) -> None:
    missing = tmp_path / "nope.yaml"
    report = tmp_path / "r" / "report.json"
    write(simulate(parse(tiny(duration="1h"))), report.parent, with_plots=False)
    args = {
        "run": ["sim", "run", str(missing), "--out", str(tmp_path / "o"), "--no-progress"],
        "sweep": ["sim", "sweep", str(missing), "--param", "providers.price=2,4"],
        "compare-a": ["sim", "compare", str(missing), str(report)],
        "compare-b": ["sim", "compare", str(report), str(missing)],
    }[command]
    res = runner.invoke(app, args)
    assert res.exit_code == 1
    assert "error: sim_file_unreadable: cannot read the " in res.output and f"{missing}: no such file" in res.output
    assert "Errno" not in res.output and "API" not in res.output
    res = runner.invoke(app, [*args, "--json"])
    assert json.loads(res.output)["error"]["code"] == "sim_file_unreadable"


def test_compare_refuses_a_file_that_is_not_a_report(tmp_path: Path, tiny_doc: dict[str, Any]) -> None:
    a, _ = _two_reports(tmp_path, tiny(duration="1h"))
    for text in ("{not json", '{"scenario": "x"}'):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        res = runner.invoke(app, ["sim", "compare", str(a), str(bad)])
        assert res.exit_code == 1 and "sim_report_invalid" in res.output and "API" not in res.output, res.output
    res = runner.invoke(app, ["sim", "compare", str(a), str(tmp_path)])  # a directory
    assert "sim_file_unreadable" in res.output and "it is a directory" in res.output


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
