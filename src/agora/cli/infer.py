"""`agora infer "prompt"` and `agora quote MODEL`: buy inference on the network through the node's API.

`infer` routes one request (quote, route, run, verify the signed metering record, pay) and prints the
answer, then (on stderr, so the answer pipes cleanly) who served it, the tokens and what was paid. The
node answers whole; `--stream` prints it as it comes through the node's OpenAI-compatible stream."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from agora.cli.output import emit_json, errors, short, table, when
from agora.client import AgoraClient

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ApiOpt = Annotated[str | None, typer.Option("--api", help="node API URL (default: $AGORA_API or the local node)")]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="the model id (agora model list)")]
MaxPriceOpt = Annotated[int | None, typer.Option("--max-price", help="the most to pay for this request (minor units)")]
StrategyOpt = Annotated[str, typer.Option("--strategy", help="cheapest | fastest | balanced | pinned")]


def infer(
    prompt: Annotated[str, typer.Argument(help="the prompt")],
    model: ModelOpt = "smollm2-135m",
    max_price: MaxPriceOpt = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="most tokens to generate")] = 64,
    strategy: StrategyOpt = "balanced",
    provider: Annotated[list[str] | None, typer.Option("--provider", help="only these providers (repeat)")] = None,
    stream: Annotated[bool, typer.Option("--stream", help="print the answer as it streams")] = False,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask the network: the answer on stdout; provider, tokens and payment on stderr."""
    fields: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "strategy": strategy, "max_price": max_price}
    if provider:
        fields["only"] = list(provider)
    with errors(as_json), AgoraClient(api) as c:
        if stream and not as_json:
            _stream(c, prompt, fields)
            return
        r = c.infer(prompt, **fields)
        if as_json:
            emit_json(r)
            return
        typer.echo(r["text"])
        _receipt(r)


def _receipt(r: dict[str, Any]) -> None:
    m = r["metering"]
    typer.echo(
        f"-- {short(r['provider'])}: {m['tokens_in']} in / {m['tokens_out']} out tokens, ttft {m['ttft_ms']} ms, "
        f"paid {r['paid']} (metering {m['cid'][:16]}… verified)",
        err=True,
    )


def _stream(c: AgoraClient, prompt: str, fields: dict[str, Any]) -> None:
    body: dict[str, Any] = {
        "model": fields["model"],
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": fields["max_tokens"],
        "stream": True,
        "stream_options": {"include_usage": True},
        "provider": {k: v for k, v in fields.items() if k in ("strategy", "only", "max_price") and v is not None},
    }
    meta: dict[str, Any] | None = None
    with c.stream("POST", "/v1/chat/completions", json=body) as lines:
        for line in lines:
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            ev = json.loads(line[5:])
            for ch in ev.get("choices") or []:
                piece = (ch.get("delta") or {}).get("content")
                if piece:
                    typer.echo(piece, nl=False)
            meta = ev.get("agora") or meta
    typer.echo("")
    if meta is not None:
        _receipt(meta)


def quote(
    model: Annotated[str, typer.Argument(help="the model id")],
    est_in: Annotated[int, typer.Option("--in", help="estimated input tokens")] = 100,
    est_out: Annotated[int, typer.Option("--out", help="estimated output tokens")] = 100,
    max_price: MaxPriceOpt = None,
    strategy: StrategyOpt = "balanced",
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Signed quotes from the providers routing would use, in routing order (valid until the time shown)."""
    with errors(as_json), AgoraClient(api) as c:
        r = c.quote(model, est_in=est_in, est_out=est_out, max_price=max_price, strategy=strategy)
        if as_json:
            emit_json(r)
            return
        rows = [
            {
                "provider": short(q["provider"]),
                "price_in": q["price_in"],
                "price_out": q["price_out"],
                "max_total": q["max_total"],
                "valid_until": when(q["valid_until"]),
            }
            for q in r["quotes"]
        ]
        if not rows:
            typer.echo(f"no provider quoted {model}")
            return
        table(rows, ["provider", "price_in", "price_out", "max_total", "valid_until"])


__all__ = ["infer", "quote"]
