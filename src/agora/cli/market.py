"""`agora market`: the hub's index of capacity ads as this node sees it (every ad verified by the node)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from agora.cli.output import emit_json, errors, short, table
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


def market(api: ApiOpt = None, as_json: JsonOpt = False) -> None:
    """List the market: every provider's capacity ad (free capacity, prices, executors, age of the ad).

    Executors marked (x) are not available on that provider now; STALE ads are past their TTL."""
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
