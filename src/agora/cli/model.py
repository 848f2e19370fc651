"""`agora model add|list|remove`: the models a node serves (provider side) and the network's models.

`add` and `remove` answer once the node's capacity ad with the change is published (or say why it is not in
the market), so a `list` right after shows it. `list` shows the network's models from the market index
(this node's own newest ad included), each with its providers and prices; `list --local` the models this
node serves with their runners. Prices are integers (minor units) per 1,000 tokens."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from agora.cli.output import PLAIN, emit_json, errors, short, table
from agora.client import AgoraClient

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ApiOpt = Annotated[str | None, typer.Option("--api", help="node API URL (default: $AGORA_API or the local node)")]

app = typer.Typer(
    help="Models: serve one (add/remove), list the network's.", no_args_is_help=True, rich_markup_mode=PLAIN
)


@app.command("add")
def add(
    model: Annotated[str, typer.Argument(help="the model id requesters ask for, e.g. smollm2-135m")],
    kind: Annotated[str, typer.Option("--kind", help="chat | completion | embeddings")] = "chat",
    context: Annotated[int, typer.Option("--context", help="context length in tokens")] = 2048,
    price_in: Annotated[int, typer.Option("--price-in", help="minor units per 1,000 input tokens")] = 0,
    price_out: Annotated[int, typer.Option("--price-out", help="minor units per 1,000 output tokens")] = 0,
    max_concurrency: Annotated[int, typer.Option("--max-concurrency", help="requests at once")] = 1,
    runner: Annotated[str, typer.Option("--runner", help="mock | http | builtin")] = "builtin",
    url: Annotated[str | None, typer.Option("--url", help="http runner: the OpenAI-compatible server")] = None,
    upstream_model: Annotated[str | None, typer.Option("--upstream-model", help="http runner: its model name")] = None,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Serve a model (answers once the node's capacity ad offers it; the node needs an active offer: --sell)."""
    fields: dict[str, Any] = {
        "kind": kind,
        "context": context,
        "price_in": price_in,
        "price_out": price_out,
        "max_concurrency": max_concurrency,
        "runner": runner,
        "url": url,
        "upstream_model": upstream_model,
    }
    with errors(as_json), AgoraClient(api) as c:
        r = c.model_add(model, **fields)
        if as_json:
            emit_json(r)
            return
        o = r["offer"]
        typer.echo(f"serving {o['model']} ({o['kind']}, context {o['context']}) with the {r['runner']['kind']} runner")
        typer.echo(f"  price {o['price_in']} in / {o['price_out']} out per 1k tokens, {o['max_concurrency']} at once")
        _say_ad(r.get("ad"))


def _say_ad(ad: Any) -> None:
    """Whether the market sees the change now (the node's ad is published before the API answers)."""
    if not isinstance(ad, dict):
        return
    if ad.get("published"):
        typer.echo(f"  in the market now (capacity ad seq {ad.get('seq')})")
    else:
        typer.echo(f"  not in the market: {ad.get('reason')}")


@app.command("list")
def list_(
    local: Annotated[bool, typer.Option("--local", help="the models this node serves")] = False,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The network's models with providers and prices (or, --local, this node's)."""
    with errors(as_json), AgoraClient(api) as c:
        if local:
            r = c.local_models()
            if as_json:
                emit_json(r)
                return
            rows = [{**e["offer"], "runner": e["runner"]["kind"]} for e in r["models"]]
            table(rows, ["model", "kind", "context", "price_in", "price_out", "max_concurrency", "runner"])
            return
        r = c.models()
        if as_json:
            emit_json(r)
            return
        rows = [
            {
                "model": m["model"],
                "kind": m["kind"],
                "provider": short(p["provider"]),
                "price_in": p["price_in"],
                "price_out": p["price_out"],
                "context": p["context"],
            }
            for m in r["models"]
            for p in m["providers"]
        ]
        if not rows:
            typer.echo("no model is offered in the market now")
            return
        table(rows, ["model", "kind", "provider", "price_in", "price_out", "context"])


@app.command("remove")
def remove(
    model: Annotated[str, typer.Argument(help="the model id")],
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop serving a model."""
    with errors(as_json), AgoraClient(api) as c:
        r = c.model_remove(model)
        if as_json:
            emit_json(r)
        else:
            typer.echo(f"removed {model}")
            _say_ad(r.get("ad"))


__all__ = ["app"]
