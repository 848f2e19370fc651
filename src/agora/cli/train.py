"""`agora train start FILE`, `train status [RUN]`, `train stop RUN`: training runs of this node (the model
owner), through its API. FILE is a training spec in YAML or JSON (docs/federated-learning.md)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from agora.cli.output import PLAIN, emit_json, errors, table
from agora.cli.progress import DETACH, Waiting, emit_line
from agora.client import AgoraClient
from agora.errors import AgoraError

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ApiOpt = Annotated[str | None, typer.Option("--api", help="node API URL (default: $AGORA_API or the local node)")]

app = typer.Typer(
    help="Federated training runs (this node as model owner).", no_args_is_help=True, rich_markup_mode=PLAIN
)


def _read(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AgoraError("not_found", f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise AgoraError("training_spec_invalid", f"{path} is not YAML or JSON: {exc}") from None
    if not isinstance(data, dict):
        raise AgoraError("training_spec_invalid", f"{path} must hold one training spec (an object)")
    return data


def _show_run(run: dict[str, Any]) -> None:
    typer.echo(f"run {run['run_id']}: {run['state']}" + (f" ({run['reason']})" if run.get("reason") else ""))
    rows = [
        {
            "round": r["round"],
            "try": r["attempt"],
            "accepted": len(r["accepted"]),
            "late": len(r["late"]),
            "rejected": len(r["rejected"]),
            "loss": f"{r['metrics'].get('train_loss', float('nan')):.4f}",
            "accuracy": f"{r['metrics'].get('eval_accuracy', float('nan')):.4f}",
            "wall_s": r["wall_s"],
        }
        for r in run.get("rounds", [])
    ]
    table(rows, ["round", "try", "accepted", "late", "rejected", "loss", "accuracy", "wall_s"])
    prov = [
        {
            "contract": p["contract_id"],
            "delivered": len(p["delivered"]),
            "late": len(p["late"]),
            "rejected": len(p["rejected"]),
            "paid": p["paid"],
        }
        for p in run.get("providers", [])
    ]
    table(prov, ["contract", "delivered", "late", "rejected", "paid"])


ACTIVE = ("pending", "running")


def _round_event(run_id: str, r: dict[str, Any], planned: int | None) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "round": r["round"],
        "rounds_planned": planned,
        "attempt": r["attempt"],
        "accepted": len(r["accepted"]),
        "late": len(r["late"]),
        "rejected": len(r["rejected"]),
        "metrics": r["metrics"],
    }


def _wait_run(
    c: AgoraClient, answer: dict[str, Any], wait: float, *, as_json: bool, planned: int | None = None
) -> dict[str, Any]:
    """Follow a started run until it ends or `wait` seconds pass: the live line on a terminal (state, round
    k/n, elapsed), or JSON lines (`started`, `round` per finished round, `state` per change; the caller
    writes `end`). Each poll asks the node to answer at the run's end or after a second or two."""
    run_id = answer["run_id"]
    doc = answer
    with Waiting(f"training run {run_id}", json_lines=as_json) as waiting:
        waiting.event("started", run=answer)
        seen, state = 0, ""
        deadline = time.monotonic() + wait
        for _ in range(1_000_000):  # bounded; each turn waits up to a second or two for the end
            planned = doc.get("rounds_planned") or planned  # the start answer may not say; the run does
            rounds = doc.get("rounds", [])
            for r in rounds[seen:]:
                waiting.event("round", **_round_event(run_id, r, planned))
            seen = len(rounds)
            if doc["state"] != state:
                state = doc["state"]
                waiting.event("state", run_id=run_id, state=state, reason=doc.get("reason"))
            accuracy = doc.get("last_metrics", {}).get("eval_accuracy")
            waiting.status(
                state,
                step=rounds[-1]["round"] if rounds else 0,
                total=planned,
                detail=f"accuracy {accuracy:.3f}" if isinstance(accuracy, float) else "",
            )
            left = deadline - time.monotonic()
            if state not in ACTIVE or left <= 0:
                break
            doc = c.training_run(run_id, wait_s=min(left, 1.0 if waiting.live else 2.0))
    return doc


def _detached(run_id: str, api: str | None, *, as_json: bool, why: str) -> None:
    """The command stops waiting; the run goes on at the node: say so, and how to get back to it."""
    if as_json:
        emit_line("left", {"run_id": run_id, "reason": why})
        return
    at = f" --api {api}" if api else ""
    typer.echo(f"{why}: training run {run_id} keeps running on the node", err=True)
    typer.echo(f"  status:    agora train status {run_id}{at}", err=True)
    typer.echo(f"  stop it:   agora train stop {run_id}{at}", err=True)


@app.command("start")
def start(
    file: Annotated[Path, typer.Argument(help="training spec (YAML or JSON)")],
    budget: Annotated[int | None, typer.Option(help="the most the run may pay, minor units")] = None,
    wait: Annotated[float, typer.Option(help="seconds to wait for the end (0: return at once)")] = 0.0,
    local: Annotated[bool, typer.Option("--local", help="train on this node's own data sets")] = False,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Match a training spec against the data offers and start the run.

    With --wait: a live line (state, round k/n, elapsed) on a terminal; with --json, JSON lines (started,
    round, state, then end with the run). Ctrl-C stops waiting, not the run (exit status 130)."""
    stream = as_json and wait > 0
    with errors(as_json):
        spec = _read(file)
        with AgoraClient(api) as c:
            answer = c.start_training(spec, budget=budget, local=local)
            if answer["state"] in ACTIVE and wait > 0:
                try:
                    rounds = spec.get("rounds")
                    planned = rounds if isinstance(rounds, int) else None
                    answer = _wait_run(c, answer, wait, as_json=as_json, planned=planned)
                except KeyboardInterrupt:
                    _detached(answer["run_id"], api, as_json=as_json, why="interrupted")
                    raise typer.Exit(DETACH) from None
                except AgoraError as err:
                    if not stream:
                        raise
                    emit_line("error", {"run_id": answer["run_id"], "error": err.to_dict()})  # still one per line
                    raise typer.Exit(1) from None
        if stream:
            emit_line("end", {"run": answer})
            return
        if as_json:
            emit_json(answer)
            return
        if answer["state"] == "unmatched":
            counts = answer["match"]["counts"]
            typer.echo("no match: " + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())))
            raise typer.Exit(1)
        _show_run(answer)
        if answer["state"] in ACTIVE and wait > 0:
            typer.echo(f"still {answer['state']} after {wait:g}s: agora train status {answer['run_id']}")


@app.command("status")
def status(
    run_id: Annotated[str | None, typer.Argument(help="one run (default: all, with the pending summary)")] = None,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Runs, rounds, per-provider updates, and contracts awaiting delivery or release."""
    with errors(as_json), AgoraClient(api) as c:
        doc = c.training_run(run_id) if run_id else c.training_status()
        if as_json:
            emit_json(doc)
            return
        if run_id:
            _show_run(doc)
            return
        for run in doc["runs"]:
            _show_run(run)
        pending = doc["pending"]
        typer.echo(f"pending: {pending['contracts']} contracts, escrow outstanding {pending['escrow_outstanding']}")


@app.command("stop")
def stop(run_id: str, api: ApiOpt = None, as_json: JsonOpt = False) -> None:
    """Stop a run after its current round (paid updates stay paid; the rest is refunded)."""
    with errors(as_json), AgoraClient(api) as c:
        doc = c.stop_training(run_id)
        if as_json:
            emit_json(doc)
            return
        typer.echo(f"stopping run {run_id} after its current round")
