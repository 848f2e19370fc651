"""`agora contract list|show|release|refund|dispute`: this node's market contracts and their timelines.

Errors keep their codes: a second release is `contract_already_released`, a refund after a release
`contract_already_settled`, anything on a disputed contract `contract_disputed`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from agora.cli.output import PLAIN, emit_json, errors, short, table
from agora.client import AgoraClient

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ApiOpt = Annotated[str | None, typer.Option("--api", help="node API URL (default: $AGORA_API or the local node)")]

app = typer.Typer(help="This node's market contracts.", no_args_is_help=True, rich_markup_mode=PLAIN)

COLUMNS = ["id", "state", "provider", "job", "unit", "price", "mode", "released", "refunded"]


def _row(c: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": c["contract_id"],
        "state": c["state"],
        "provider": short(c["provider"]),
        "job": c["job_id"],
        "unit": c["unit"],
        "price": f"{c['price']:,}",
        "mode": c["payment_mode"],
        "released": f"{c['released']:,}",
        "refunded": f"{c['refunded']:,}",
    }


def _show(c: dict[str, Any]) -> None:
    table([_row(c)], COLUMNS)
    typer.echo(f"requester: {c['requester']}")
    typer.echo(f"provider:  {c['provider']}")
    if c.get("intent_id"):
        typer.echo(f"intent:    {c['intent_id']}")
    typer.echo("timeline:")
    t0 = c["timeline"][0]["at"] if c["timeline"] else 0.0
    for e in c["timeline"]:
        evidence = ", ".join(f"{k}={v}" for k, v in e["evidence"].items())
        note = f"  ({e['note']})" if e["note"] else ""
        typer.echo(f"  +{e['at'] - t0:7.3f}s  {e['event']:<18} by {short(e['actor'])}{note}")
        if evidence:
            typer.echo(f"             {evidence}")


@app.command("list")
def list_contracts(
    state: Annotated[str | None, typer.Option(help="a contract state (escrow_locked, escrow_released, ...)")] = None,
    job: Annotated[str | None, typer.Option(help="only this job's contracts")] = None,
    intent: Annotated[str | None, typer.Option(help="only this intent's contracts")] = None,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """This node's contracts, newest first."""
    with errors(as_json), AgoraClient(api) as c:
        docs = c.contracts(state=state, job_id=job, intent_id=intent)
        if as_json:
            emit_json(docs)
            return
        table([_row(d) for d in docs], COLUMNS)


@app.command("show")
def show(contract_id: str, api: ApiOpt = None, as_json: JsonOpt = False) -> None:
    """One contract and its timeline, each event with its time, actor and evidence."""
    with errors(as_json), AgoraClient(api) as c:
        doc = c.contract(contract_id)
        if as_json:
            emit_json(doc)
            return
        _show(doc)


@app.command("release")
def release(
    contract_id: str,
    amount: Annotated[
        int | None, typer.Option(help="minor units (default: the price); less is a partial release")
    ] = None,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Countersign the provider's usage receipt and release the escrow to it."""
    with errors(as_json), AgoraClient(api) as c:
        doc = c.release_contract(contract_id, amount=amount)
        if as_json:
            emit_json(doc)
            return
        typer.echo(f"contract {doc['contract_id']} is {doc['state']}: {doc['released']:,} paid to the provider")


@app.command("refund")
def refund(
    contract_id: str,
    reason: Annotated[str, typer.Option(help="why, recorded in the timeline")] = "",
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Take the escrow back (before a delivery; a delivered contract is disputed instead)."""
    with errors(as_json), AgoraClient(api) as c:
        doc = c.refund_contract(contract_id, reason=reason)
        if as_json:
            emit_json(doc)
            return
        typer.echo(f"contract {doc['contract_id']} is {doc['state']}: {doc['refunded']:,} back to this node")


@app.command("dispute")
def dispute(
    contract_id: str,
    reason: Annotated[str, typer.Option(help="why, recorded in the timeline and the ledger")],
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Freeze the escrow until the hub operator resolves it."""
    with errors(as_json), AgoraClient(api) as c:
        doc = c.dispute_contract(contract_id, reason=reason)
        if as_json:
            emit_json(doc)
            return
        typer.echo(f"contract {doc['contract_id']} is {doc['state']}: the hub operator resolves it")


__all__ = ["app"]
