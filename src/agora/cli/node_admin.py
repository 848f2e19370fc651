"""`agora node info|bench|grant` and `agora grant add|list`: this node as a provider, through its API."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from agora.cli.output import PLAIN, emit_json, errors, short, table, when
from agora.client import AgoraClient, resolve_node
from agora.errors import AgoraError

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ApiOpt = Annotated[str | None, typer.Option("--api", help="node API URL (default: $AGORA_API or the local node)")]

grant_app = typer.Typer(help="Delegations this node holds from others.", no_args_is_help=True, rich_markup_mode=PLAIN)


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB"


def info(api: ApiOpt = None, as_json: JsonOpt = False) -> None:
    """What this machine has, what is free now, which executors work (and why not), the benchmark."""
    with errors(as_json), AgoraClient(api) as c:
        r = c.resources()
        if as_json:
            emit_json(r)
            return
        m, cap, free = r["machine"], r["capability"], r["free"]
        typer.echo(f"did:        {r['did']}")
        typer.echo(
            f"cpu:        {m['cpu']['model'] or '?'} ({m['cpu']['arch']}), {m['cpu']['usable_cores']} usable cores"
        )
        typer.echo(f"memory:     {_gib(cap['memory_bytes'])} ({_gib(free['memory_bytes'])} free)")
        typer.echo(f"disk:       {_gib(cap['disk_bytes'])} ({_gib(free['disk_bytes'])} free)")
        gpus = ", ".join(g["model"] for g in m["gpus"]) or f"none ({m['gpu_probe']})"
        typer.echo(f"gpus:       {gpus}")
        typer.echo(f"os:         {m['os']['distro'] or m['os']['system']} (kernel {m['os']['kernel']})")
        typer.echo(f"running:    {r['allocations']} allocation(s); free cpu {free['cpu_millis'] / 1000:g} cores")
        b = r.get("benchmark")
        if b:
            typer.echo(
                f"benchmark:  score {b['score']:.0f} (cpu {b['cpu_single_ops']:.0f}/{b['cpu_multi_ops']:.0f} ops/s, "
                f"memory {b['memory_gb_s']:.1f} GB/s, disk {b['disk_write_mb_s']:.0f}/{b['disk_read_mb_s']:.0f} MB/s)"
            )
        else:
            typer.echo("benchmark:  " + ("running…" if r.get("benchmark_running") else "none (run `agora node bench`)"))
        typer.echo("executors:")
        table(
            [
                {"engine": e, "available": "yes" if a["available"] else "no", "reason": a["reason"] or "-"}
                for e, a in r["executors"].items()
            ],
            ["engine", "available", "reason"],
        )


def bench(api: ApiOpt = None, as_json: JsonOpt = False) -> None:
    """Run the onboarding benchmark again (a few seconds) and store the result."""
    with errors(as_json), AgoraClient(api, timeout=120) as c:
        b = c.bench()
        if as_json:
            emit_json(b)
            return
        typer.echo(f"score {b['score']:.0f} in {b['duration_s']:.1f}s")
        typer.echo(f"  cpu single   {b['cpu_single_ops']:.0f} ops/s")
        typer.echo(f"  cpu multi    {b['cpu_multi_ops']:.0f} ops/s ({b['cpu_workers']} workers)")
        typer.echo(f"  memory       {b['memory_gb_s']:.2f} GB/s")
        typer.echo(f"  disk         {b['disk_write_mb_s']:.0f} MB/s write, {b['disk_read_mb_s']:.0f} MB/s read")
        rtt = b.get("hub_rtt_ms")
        typer.echo(f"  hub rtt      {rtt:.2f} ms" if rtt is not None else "  hub rtt      -")


def grant(
    did: Annotated[str, typer.Argument(help="the node allowed to run tasks here: a DID, or a devnet name")],
    command: Annotated[str, typer.Option(help="command path granted (and all below it)")] = "/agora/alloc",
    ttl: Annotated[int, typer.Option("--ttl", help="lifetime in seconds")] = 30 * 24 * 3600,
    policy: Annotated[
        str | None, typer.Option(help='UCAN policy on the args, JSON (e.g. \'[["==", ".task.engine", "wasm"]]\')')
    ] = None,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Let another node run tasks on this one: sign a delegation and offer it to that node."""
    with errors(as_json), AgoraClient(api) as c:
        rules: list[Any] = []
        if policy:
            try:
                rules = json.loads(policy)
            except ValueError as exc:
                raise AgoraError("ucan_policy_invalid", f"--policy is not JSON: {exc}") from None
        g = c.grant(resolve_node(did), command=command, ttl_s=ttl, policy=rules)
        if as_json:
            emit_json(g)
            return
        typer.echo(f"granted {g['cmd']} on {short(g['iss'])} to {g['aud']} until {when(g['exp'])}")
        if g.get("delivered"):
            typer.echo("delivered to that node over the network; it will use it automatically")
        else:
            err = g.get("delivery_error") or {}
            typer.echo(f"not delivered ({err.get('code')}: {err.get('message')}); give it this token:")
            typer.echo(f"  agora grant add {g['token']}")
        typer.echo(f"token: {g['token']}")


@grant_app.command("add")
def grant_add(
    token: Annotated[str, typer.Argument(help="the token `agora node grant` printed")],
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import a delegation another node's operator gave you."""
    with errors(as_json), AgoraClient(api) as c:
        d = c.add_delegation(token)
        if as_json:
            emit_json(d)
        else:
            typer.echo(f"{'stored' if d['stored'] else 'already held'}: {d['cmd']} on {d['iss']} (cid {d['cid']})")


@grant_app.command("list")
def grant_list(api: ApiOpt = None, as_json: JsonOpt = False) -> None:
    """Delegations this node holds (from others) and those it issued."""
    with errors(as_json), AgoraClient(api) as c:
        held, issued = c.delegations(), c.grants()
        if as_json:
            emit_json({"held": held, "issued": issued})
            return
        typer.echo("held (lets this node call them):")
        table(
            [{"from": d["iss"], "command": d["cmd"], "expires": when(d["exp"])} for d in held],
            ["from", "command", "expires"],
        )
        typer.echo("issued (lets them call this node):")
        table(
            [{"to": d["aud"], "command": d["cmd"], "expires": when(d["exp"])} for d in issued],
            ["to", "command", "expires"],
        )


__all__ = ["bench", "grant", "grant_add", "grant_app", "grant_list", "info"]
