"""`agora devnet up|status|down`: a hub and N nodes on this machine, for trying agora and for tests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from agora.cli.output import PLAIN, emit_json, errors, table
from agora.cli.progress import DETACH, Waiting
from agora.client import devnet_dir

DEFAULT_DIR = devnet_dir()  # the launcher (subprocess, …) is imported by the commands that use it

app = typer.Typer(
    help="A local network: one hub and N nodes as processes on loopback.", no_args_is_help=True, rich_markup_mode=PLAIN
)
DirOpt = Annotated[Path, typer.Option("--dir", help="where devnet.json, homes and logs live")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


@app.command("up")
def devnet_up(
    nodes: Annotated[int, typer.Option("--nodes", "-n", min=1, max=32)] = 3,
    directory: DirOpt = DEFAULT_DIR,
    as_json: JsonOpt = False,
) -> None:
    """Start a hub and N nodes; returns when every node sees every other one.

    On a terminal a live line says which step it is at; Ctrl-C stops what was started (exit status 130)."""
    from agora.devnet import check_not_running, up

    with errors(as_json):
        check_not_running(directory)
        if not as_json:
            typer.echo(f"starting a hub and {nodes} nodes in {directory} …")
        try:
            with Waiting("devnet up", hint="Ctrl-C stops it", quiet=as_json) as waiting:
                state = up(nodes, directory, on_step=waiting.status)
        except KeyboardInterrupt:
            typer.echo("interrupted: the devnet's processes were stopped; nothing is left running", err=True)
            raise typer.Exit(DETACH) from None
        if as_json:
            emit_json(state)
            return
        rows: list[dict[str, Any]] = [state["hub"], *state["nodes"]]
        table([{"name": m["name"], "did": m["did"], "api": m["api"]} for m in rows], ["name", "did", "api"])
        typer.echo(f"hub: {state['hub_url']}\nstate: {Path(state['dir']) / 'devnet.json'}")
        funded = state.get("funded", [])
        if funded:
            each = ", ".join(f"{f['name']} {f['amount']:,}" for f in funded)
            seqs = sorted(f["seq"] for f in funded)
            typer.echo(f"funded by the hub operator (agora ledger mint, entries {seqs[0]}-{seqs[-1]}): {each}")


@app.command("status")
def devnet_status(directory: DirOpt = DEFAULT_DIR, as_json: JsonOpt = False) -> None:
    """Show each devnet process: running, health, peers seen."""
    from agora.devnet import status

    with errors(as_json):
        st = status(directory)
        if as_json:
            emit_json(st)
            return
        typer.echo(f"hub: {st['hub_url']}")
        table(st["members"], ["name", "did", "running", "health", "peers", "api"])


@app.command("down")
def devnet_down(directory: DirOpt = DEFAULT_DIR, as_json: JsonOpt = False) -> None:
    """Stop every process the devnet started."""
    from agora.devnet import down

    with errors(as_json):
        stopped = down(directory)
        if as_json:
            emit_json({"stopped": stopped})
        else:
            typer.echo(f"stopped {len(stopped)} processes: {', '.join(stopped) or '-'}")


__all__ = ["app"]
