"""`agora market`: the hub's index of capacity ads as this node sees it (every ad verified by the node), and
`agora market summary`: the marketplace snapshot (offers, intents, contracts, escrow, matching)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from agora.cli.output import PLAIN, emit_json, errors, short, table
from agora.client import AgoraClient

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ApiOpt = Annotated[str | None, typer.Option("--api", help="node API URL (default: $AGORA_API or the local node)")]


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f}"


def _price(p: dict[str, Any]) -> str:
    base = p.get("base", {})
    parts = [f"{base.get(k, 0)}/{unit}" for k, unit in (("cpu_second", "cpu-s"), ("memory_gib_second", "GiB-s"))]
    if base.get("gpu_second"):
        parts.append(f"{base['gpu_second']}/gpu-s")
    if base.get("minimum"):
        parts.append(f"min {base['minimum']}")
    return " ".join(parts) + (" +engines" if p.get("engines") else "")


def row(p: dict[str, Any]) -> dict[str, Any]:
    free = p["free"]
    engines = [e + ("" if s["available"] else "(x)") for e, s in sorted(p["executors"].items())]
    return {
        "provider": short(p["provider"]),
        "cpu": f"{free.get('cpu_millis', 0) / 1000:g}",
        "mem_gib": _gib(free.get("memory_bytes", 0)),
        "gpu": free.get("gpu_count", 0),
        "price": _price(p["price"]),
        "executors": ",".join(engines) or "-",
        "bench": f"{p['benchmark_score']:.0f}" if p["benchmark_score"] is not None else "-",
        "age": f"{p['age_s']:.0f}s" + (" STALE" if p["stale"] else ""),
    }


app = typer.Typer(help="The market as this node sees it.", rich_markup_mode=PLAIN)


@app.callback(invoke_without_command=True)
def market(ctx: typer.Context, api: ApiOpt = None, as_json: JsonOpt = False) -> None:
    """List the market: every provider's capacity ad (free capacity, prices, executors, age of the ad).

    Executors marked (x) are not available on that provider now; STALE ads are past their TTL.
    `agora market summary` shows the marketplace snapshot instead."""
    if ctx.invoked_subcommand is not None:
        return
    with errors(as_json), AgoraClient(api) as c:
        m = c.market()
        if as_json:
            emit_json(m)
            return
        providers = m["providers"]
        table([row(p) for p in providers], ["provider", "cpu", "mem_gib", "gpu", "price", "executors", "bench", "age"])
        ignored = {k: v for k, v in m["ignored"].items() if v}
        summary = f"{len(providers)} provider(s) in bucket {m['bucket']}"
        if ignored:
            summary += "; ignored: " + ", ".join(f"{v} {k}" for k, v in sorted(ignored.items()))
        typer.echo(summary)


@app.command("summary")
def summary(api: ApiOpt = None, as_json: JsonOpt = False) -> None:
    """The marketplace snapshot: offers, intents by status, contracts by state, escrow locked and released,
    match success rate and the top rejection reasons."""
    with errors(as_json), AgoraClient(api) as c:
        m = c.metrics_summary()
        if as_json:
            emit_json(m)
            return
        o, i, k, e, mt = m["offers"], m["intents"], m["contracts"], m["escrow"], m["matches"]
        in_index = "-" if o["providers_in_index"] is None else o["providers_in_index"]
        typer.echo(f"offers:    {o['active']} active, {o['withdrawn']} withdrawn; {in_index} provider(s) in the index")
        nonzero = ", ".join(f"{n} {s}" for s, n in i["by_status"].items() if n) or "none"
        typer.echo(f"intents:   {i['total']} ({nonzero})")
        states = ", ".join(f"{n} {s}" for s, n in k["by_state"].items() if n) or "none"
        typer.echo(f"contracts: {k['total']} ({states})")
        typer.echo(f"escrow:    {e['locked']:,} locked, {e['released']:,} released, {k['refunded']:,} refunded")
        rate = "-" if mt["success_rate"] is None else f"{mt['success_rate']:.0%}"
        typer.echo(f"matches:   {mt['matched']} of {mt['attempts']} matched ({rate})")
        if mt["top_rejections"]:
            reasons = ", ".join(f"{r['code']} x{r['count']}" for r in mt["top_rejections"])
            typer.echo(f"rejected:  {reasons}")
        typer.echo(f"settlement: {m['settlement']}")
