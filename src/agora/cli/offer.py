"""`agora offer create FILE|--from-node`, `offer list|show|withdraw`: what this node sells, through its API.

An offer file is YAML or JSON (docs/market.md "The provider" shows one); what it leaves out (provider,
offer_id, valid_from, valid_until) the node fills in. A bad offer is `offer_invalid`, every bad field listed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from agora.cli.output import PLAIN, emit_json, errors, table
from agora.client import AgoraClient
from agora.errors import AgoraError

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ApiOpt = Annotated[str | None, typer.Option("--api", help="node API URL (default: $AGORA_API or the local node)")]

app = typer.Typer(help="What this node sells: its resource offers.", no_args_is_help=True, rich_markup_mode=PLAIN)


def _read(path: Path) -> dict[str, Any]:
    import yaml  # JSON is YAML too

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AgoraError("not_found", f"cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AgoraError("offer_invalid", f"{path} is not YAML or JSON: {exc}", details={"field": "offer"}) from None
    if not isinstance(data, dict):
        raise AgoraError("offer_invalid", f"{path} must hold one offer (an object)", details={"field": "offer"})
    return data


def _row(doc: dict[str, Any]) -> dict[str, Any]:
    offer = doc["offer"]
    res = offer.get("resources", {})
    base = offer.get("price", {}).get("base", {})
    return {
        "id": doc["offer_id"],
        "state": doc["state"],
        "cpu": f"{res.get('cpu_millis', 0) / 1000:g}",
        "memory_gib": f"{res.get('memory_bytes', 0) / (1 << 30):.1f}",
        "gpus": res.get("gpu_count", 0),
        "cpu_s": base.get("cpu_second", "-"),
        "gib_s": base.get("memory_gib_second", "-"),
        "minimum": base.get("minimum", "-"),
        "access": offer.get("terms", {}).get("access", {}).get("mode", "-"),
    }


COLUMNS = ["id", "state", "cpu", "memory_gib", "gpus", "cpu_s", "gib_s", "minimum", "access"]


def _show(doc: dict[str, Any]) -> None:
    table([_row(doc)], COLUMNS)
    offer = doc["offer"]
    typer.echo(f"valid:   {offer['valid_from']} .. {offer['valid_until']}")
    terms = offer.get("terms", {})
    typer.echo(f"engines: {', '.join(terms.get('engines') or []) or 'any the node has'}")
    typer.echo(f"max duration: {terms.get('max_duration_s', 'none')}")


@app.command("create")
def create(
    file: Annotated[Path | None, typer.Argument(help="offer file (YAML or JSON)")] = None,
    from_node: Annotated[
        bool, typer.Option("--from-node", help="sell this machine minus a reserve, at default prices")
    ] = False,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start selling under an offer (from a file, or from this machine with --from-node)."""
    with errors(as_json):
        if (file is None) == (not from_node):
            raise AgoraError("invalid_argument", "give an offer FILE or --from-node (one of them)")
        body = _read(file) if file is not None else None
        with AgoraClient(api) as c:
            doc = c.create_offer(body, from_node=from_node)
        if as_json:
            emit_json(doc)
            return
        typer.echo(f"selling under offer {doc['offer_id']}")
        _show(doc)


@app.command("list")
def list_offers(
    state: Annotated[str | None, typer.Option(help="active or withdrawn (default: both)")] = None,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """This node's offers, newest first."""
    with errors(as_json), AgoraClient(api) as c:
        docs = c.offers(state=state)
        if as_json:
            emit_json(docs)
            return
        table([_row(d) for d in docs], COLUMNS)


@app.command("show")
def show(offer_id: str, api: ApiOpt = None, as_json: JsonOpt = False) -> None:
    """One offer, active or withdrawn."""
    with errors(as_json), AgoraClient(api) as c:
        doc = c.offer(offer_id)
        if as_json:
            emit_json(doc)
            return
        _show(doc)


@app.command("withdraw")
def withdraw(offer_id: str, api: ApiOpt = None, as_json: JsonOpt = False) -> None:
    """Stop selling under an offer; bid requests for it are declined from now on."""
    with errors(as_json), AgoraClient(api) as c:
        doc = c.withdraw_offer(offer_id)
        if as_json:
            emit_json(doc)
            return
        typer.echo(f"offer {doc['offer_id']} is {doc['state']}")


__all__ = ["app"]
