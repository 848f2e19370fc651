"""`agora sim run|compare|sweep`: the simulator, offline (it talks to no node).

The simulator runs the market's own code in this process (matching, bidding, ledger, trust), so it is
imported by name when a command runs (`importlib`): the CLI's contract "talks to a node only through the
API client" is about nodes, and the simulator is not one."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from agora.cli.output import PLAIN, emit_json, errors, table
from agora.cli.progress import Waiting
from agora.errors import AgoraError

app = typer.Typer(
    help="Simulate a network from a scenario file: the real market code, a manual clock, reports with plots.",
    no_args_is_help=True,
    rich_markup_mode=PLAIN,
)
SUMMARY = (
    "jobs_submitted",
    "jobs_completed",
    "jobs_expired",
    "jobs_lost",
    "utilisation_mean",
    "price_per_core_hour_mean",
    "requester_spend_total",
    "wrong_results_accepted",
    "inference_served",
    "inference_failed",
    "inference_fallback_rate",
    "inference_latency_s",
    "metering_disputes_caught",
    "fl_runs_completed",
    "fl_runs_failed",
    "fl_rounds_completed",
    "fl_updates",
)


def _summary(metrics: dict[str, Any]) -> list[str]:
    """The headline metrics this report has (a scenario without a compute market has no job metrics)."""
    return [k for k in SUMMARY if k in metrics]


def _sim(name: str) -> Any:
    return importlib.import_module(f"agora.sim.{name}")


def _text(path: Path, what: str) -> str:
    """A scenario's or a report's text; a missing or unreadable file is `sim_file_unreadable` in words."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        why = "no such file"
    except IsADirectoryError:
        why = "it is a directory"
    except PermissionError:
        why = "permission denied"
    except UnicodeDecodeError:
        why = "not UTF-8 text"
    except OSError as exc:
        why = (exc.strerror or type(exc).__name__).lower()
    raise AgoraError("sim_file_unreadable", f"cannot read the {what} {path}: {why}")


def _read(path: Path) -> dict[str, Any]:
    import yaml  # loaded when a command runs: `agora --help` stays light

    text = _text(path, "scenario")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AgoraError("scenario_invalid", f"{path}: not valid YAML ({exc})") from None
    if not isinstance(doc, dict):
        raise AgoraError("scenario_invalid", f"{path}: a scenario is a mapping")
    return doc


def _report(path: Path) -> dict[str, Any]:
    text = _text(path, "report")
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise AgoraError("sim_report_invalid", f"{path}: not JSON (line {getattr(exc, 'lineno', '?')})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics"), dict):
        raise AgoraError("sim_report_invalid", f"{path}: not a simulator report (it has no metrics)")
    return doc


def _about(label: str, path: Path, doc: dict[str, Any]) -> str:
    """`A: runs/a/report.json  (scenario churn, seed 7, 24 h)`: which file a column is."""
    hours = doc.get("duration_s", 0) / 3600 if isinstance(doc.get("duration_s"), int | float) else None
    what = [f"scenario {doc.get('scenario', '?')}", f"seed {doc.get('seed', '?')}"]
    if hours is not None:
        what.append(f"{hours:g} h")
    return f"{label}: {path}  ({', '.join(what)})"


def _aligned(rows: list[dict[str, str]], columns: list[tuple[str, str]], right: set[str]) -> None:
    """A table whose number columns are right-aligned (the digits line up)."""
    widths = {k: max(len(title), *(len(r[k]) for r in rows)) for k, title in columns}

    def line(cells: dict[str, str]) -> str:
        out = [cells[k].rjust(widths[k]) if k in right else cells[k].ljust(widths[k]) for k, _ in columns]
        return "  ".join(out).rstrip()

    typer.echo(line({k: title for k, title in columns}))
    for r in rows:
        typer.echo(line(r))


@app.command("run")
def run(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML file")],
    out: Annotated[Path, typer.Option("--out", help="directory for report.json, report.md and the plots")],
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="show the progress line (on a terminal only)")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="print the metrics as JSON")] = False,
) -> None:
    """Run SCENARIO and write its report into --out."""
    with errors(as_json):
        sc = _sim("scenario").parse(_read(scenario))
        with Waiting(f"simulating {sc.name}", hint="Ctrl-C stops it", quiet=as_json or not progress) as w:
            doc = _sim("run").simulate(sc, progress=(lambda f: w.status(fraction=f)) if w.live else None)
        path = _sim("report").write(doc, out)
        if as_json:
            emit_json({k: v["value"] for k, v in doc["metrics"].items()})
            return
        m = doc["metrics"]
        table([{"metric": k, "value": json.dumps(m[k]["value"])} for k in _summary(m)], ["metric", "value"])
        typer.echo(f"report: {path} and {out / 'report.md'}")


@app.command("compare")
def compare(
    a: Annotated[Path, typer.Argument(help="first report.json")],
    b: Annotated[Path, typer.Argument(help="second report.json")],
    changed: Annotated[bool, typer.Option("--changed", help="only the metrics that differ")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Two reports' metrics side by side (A, then B), with the change B - A and its relative size."""
    with errors(as_json):
        docs = [_report(a), _report(b)]
        rows = [r for r in _sim("report").compare(docs[0], docs[1]) if not changed or not r.equal]
        if as_json:
            emit_json({"a": str(a), "b": str(b), "metrics": [r.raw() for r in rows]})
            return
        typer.echo(_about("A", a, docs[0]))
        typer.echo(_about("B", b, docs[1]))
        typer.echo("units: count; minor units (money); price (minor units per core-hour or per 1k tokens);")
        typer.echo("       s (simulated seconds); share (0 to 1); trust (0 to 1); mean (per placement)")
        typer.echo()
        if not rows:
            typer.echo("(no metric differs)" if changed else "(no metrics)")
            return
        columns = [("metric", "METRIC"), ("unit", "UNIT"), ("a", "A"), ("b", "B")]
        columns += [("change", "CHANGE (B - A)"), ("change_pct", "CHANGE %")]
        _aligned([r.cells() for r in rows], columns, right={"a", "b", "change", "change_pct"})


@app.command("sweep")
def sweep(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML file")],
    param: Annotated[list[str], typer.Option("--param", help="FIELD.PATH=LOW..HIGH or FIELD.PATH=A,B,C")],
    out: Annotated[Path | None, typer.Option("--out", help="write sweep.json (every variant's report) here")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="local processes (default: CPU count)")] = None,
    dask: Annotated[str | None, typer.Option("--dask", help="run on this Dask scheduler (tcp://HOST:PORT)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run SCENARIO once per value of each --param (their product) and tabulate the outcome."""
    with errors(as_json):
        sw = _sim("sweep")
        doc = _read(scenario)
        with Waiting(f"sweeping {scenario.name}", hint="Ctrl-C stops it", quiet=as_json) as w:
            if w.live:
                w.status(detail=f"{len(sw.variants(doc, param))} variants")
            results = sw.sweep(doc, param, workers=workers, dask_scheduler=dask)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "sweep.json").write_text(_sim("report").dumps({"variants": results}), encoding="utf-8")
        rows = sw.table(results, _summary(results[0]["metrics"]))
        if as_json:
            emit_json(rows)
        else:
            table(
                [{k: json.dumps(v) if not isinstance(v, str) else v for k, v in r.items()} for r in rows], list(rows[0])
            )
