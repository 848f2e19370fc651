"""`agora train start FILE`, `train status [RUN]`, `train stop RUN`: training runs of this node (the model
owner), through its API. FILE is a training spec in YAML or JSON (docs/federated-learning.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from agora.cli.output import PLAIN, emit_json, errors, table
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


@app.command("start")
def start(
    file: Annotated[Path, typer.Argument(help="training spec (YAML or JSON)")],
    budget: Annotated[int | None, typer.Option(help="the most the run may pay, minor units")] = None,
    wait: Annotated[float, typer.Option(help="seconds to wait for the end (0: return at once)")] = 0.0,
    local: Annotated[bool, typer.Option("--local", help="train on this node's own data sets")] = False,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Match a training spec against the data offers and start the run."""
    with errors(as_json):
        spec = _read(file)
        with AgoraClient(api) as c:
            answer = c.start_training(spec, budget=budget, local=local)
            if answer["state"] == "running" and wait > 0:
                answer = c.training_run(answer["run_id"], wait_s=wait)
        if as_json:
            emit_json(answer)
            return
        if answer["state"] == "unmatched":
            counts = answer["match"]["counts"]
            typer.echo("no match: " + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())))
            raise typer.Exit(1)
        _show_run(answer)


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
