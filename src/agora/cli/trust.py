"""`agora trust show DID`, `agora trust list`: this node's view of providers, through its API.

A score is the node's own (docs/market.md "Trust"): computed from the evidence it recorded (each record
citing the signed receipt, award or event it comes from), decayed over time, starting from the prior."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from agora.cli.output import PLAIN, emit_json, errors, short, table
from agora.client import AgoraClient, resolve_node

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ApiOpt = Annotated[str | None, typer.Option("--api", help="node API URL (default: $AGORA_API or the local node)")]

app = typer.Typer(
    help="This node's view of providers: trust scores and evidence.", no_args_is_help=True, rich_markup_mode=PLAIN
)


def _when(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _counts(r: dict[str, Any]) -> str:
    return ", ".join(f"{k} {n}" for k, n in r["counts"].items()) or "no evidence (the prior)"


def _penalty(r: dict[str, Any]) -> str:
    if r["cooling_down"]:
        return f"cooling down until {_when(r['cooling_until'])} (offence {r['offences']})"
    return f"admitted ({r['recent_failures']} recent failure(s), {r['offences']} offence(s))"


@app.command("show")
def show(
    did: Annotated[str, typer.Argument(help="the provider's DID, or a devnet name like node-1")],
    records: Annotated[int, typer.Option("--records", help="newest evidence records to list")] = 10,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One provider's score, its breakdown (records per kind and their decayed weights), penalty, latency
    and newest evidence."""
    with errors(as_json), AgoraClient(api) as c:
        r = c.trust(resolve_node(did), records=records)
        if as_json:
            emit_json(r)
            return
        typer.echo(f"provider {r['provider']}")
        typer.echo(f"  score    {r['score']:.3f} (prior {r['prior']:g}; good {r['good']:.3f}, bad {r['bad']:.3f})")
        typer.echo(f"  evidence {_counts(r)}")
        if r["weights"]:
            typer.echo("  weights  " + ", ".join(f"{k} {w:.3f}" for k, w in r["weights"].items()))
        typer.echo(f"  penalty  {_penalty(r)}")
        latency = r["latency_ms"]
        typer.echo(f"  latency  {'-' if latency is None else f'{latency:.1f} ms (bid round trip, EWMA)'}")
        typer.echo(f"  last     {_when(r['last_at'])}")
        rows = [
            {
                "at": _when(e["at"]),
                "kind": e["kind"],
                "cites": ", ".join(f"{k}={v}" for k, v in sorted(e["cites"].items())),
                "detail": e["detail"][:60],
            }
            for e in r["records"]
        ]
        if rows:
            table(rows, ["at", "kind", "cites", "detail"])


@app.command("list")
def list_(api: ApiOpt = None, as_json: JsonOpt = False) -> None:
    """Every provider this node holds evidence about, best score first."""
    with errors(as_json), AgoraClient(api) as c:
        doc = c.trust_all()
        if as_json:
            emit_json(doc)
            return
        now = doc.get("now", time.time())
        providers = sorted(doc["providers"], key=lambda r: (-r["score"], r["provider"]))
        rows = [
            {
                "provider": short(r["provider"]),
                "score": f"{r['score']:.3f}",
                "evidence": _counts(r),
                "latency": "-" if r["latency_ms"] is None else f"{r['latency_ms']:.0f} ms",
                "penalty": f"until {_when(r['cooling_until'])}" if r["cooling_down"] else "-",
                "last": f"{max(0.0, now - r['last_at']):.0f}s ago" if r["last_at"] is not None else "-",
            }
            for r in providers
        ]
        table(rows, ["provider", "score", "evidence", "latency", "penalty", "last"])
        typer.echo(f"{len(rows)} provider(s); a provider not listed scores the prior {doc['settings']['prior']:g}")


__all__ = ["app"]
