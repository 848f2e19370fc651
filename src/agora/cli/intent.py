"""`agora intent create FILE|open|cancel|list|show`: what this node asks of the market, through its API.

An intent file is YAML or JSON: `job` (a job spec, its relative paths read from the file's directory when
the intent is matched), `budget` (minor units), `policy` (min_trust, max_price, data_tags), optional
validity (`valid_until`, unix seconds). Invalid fields are `intent_invalid`, every one listed; a move the
workflow does not allow is `intent_transition_invalid`, naming the allowed ones."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from agora.cli.output import PLAIN, emit_json, errors, table, when
from agora.cli.progress import DETACH, Waiting
from agora.client import AgoraClient
from agora.errors import AgoraError

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ApiOpt = Annotated[str | None, typer.Option("--api", help="node API URL (default: $AGORA_API or the local node)")]

app = typer.Typer(help="What this node asks of the market: intents.", no_args_is_help=True, rich_markup_mode=PLAIN)

COLUMNS = ["id", "status", "kind", "budget", "max_price", "min_trust", "contracts", "last_match"]


def _read(path: Path) -> dict[str, Any]:
    import yaml  # JSON is YAML too

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AgoraError("not_found", f"cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AgoraError("intent_invalid", f"{path} is not YAML or JSON: {exc}", details={"field": "intent"}) from None
    if not isinstance(data, dict):
        raise AgoraError("intent_invalid", f"{path} must hold one intent (an object)", details={"field": "intent"})
    return data


def _last(doc: dict[str, Any]) -> str:
    m = doc.get("match")
    if not m:
        return "-"
    if m["matched"]:
        return f"matched ({len(m['contracts'])} contract(s))"
    return "rejected: " + (", ".join(f"{c} x{n}" for c, n in m["rejections"].items()) or "-")


def _row(doc: dict[str, Any]) -> dict[str, Any]:
    i = doc["intent"]
    p = i.get("policy", {})
    return {
        "id": doc["intent_id"],
        "status": doc["status"],
        "kind": i["kind"],
        "budget": "-" if i.get("budget") is None else f"{i['budget']:,}",
        "max_price": p.get("max_price", "-"),
        "min_trust": p.get("min_trust", "-"),
        "contracts": len(doc.get("contracts", [])),
        "last_match": _last(doc),
    }


def _show(doc: dict[str, Any]) -> None:
    table([_row(doc)], COLUMNS)
    i = doc["intent"]
    typer.echo(f"job:     {i['job'].get('name', '-')} ({len(i['job'].get('tasks', []))} task(s))")
    typer.echo(f"valid:   {when(i['valid_from'])} .. {when(i['valid_until'])}")
    for h in doc["history"]:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(h["at"])) + f".{int(h['at'] % 1 * 1000):03d} UTC"
        typer.echo(f"  {at}  {h['status']:<10} {h['cause']}")
    for cid in doc.get("contracts", []):
        typer.echo(f"contract: {cid}")


@app.command("create")
def create(
    file: Annotated[Path, typer.Argument(help="intent file (YAML or JSON)")],
    open_now: Annotated[bool, typer.Option("--open", help="open it at once (else it is a draft)")] = False,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Keep an intent from a file (a draft, or open with --open)."""
    with errors(as_json):
        body = _read(file)
        if open_now:
            body["open"] = True
        with AgoraClient(api) as c:
            doc = c.create_intent(body, base_dirs=[str(file.resolve().parent)])
        if as_json:
            emit_json(doc)
            return
        typer.echo(f"intent {doc['intent_id']} is {doc['status']}")
        _show(doc)


def _move(intent_id: str, status: str, api: str | None, as_json: bool, cause: str = "") -> None:
    with errors(as_json), AgoraClient(api) as c:
        doc = c.transition_intent(intent_id, status, cause=cause)
        if as_json:
            emit_json(doc)
            return
        typer.echo(f"intent {doc['intent_id']} is {doc['status']}")


@app.command("open")
def open_intent(intent_id: str, api: ApiOpt = None, as_json: JsonOpt = False) -> None:
    """Open a draft intent: it can then be matched (`agora match ID`)."""
    _move(intent_id, "open", api, as_json)


@app.command("cancel")
def cancel(
    intent_id: str,
    reason: Annotated[str, typer.Option(help="why, for the intent's history")] = "",
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel an intent (draft, open or matched)."""
    _move(intent_id, "cancelled", api, as_json, cause=reason)


@app.command("list")
def list_intents(
    status: Annotated[str | None, typer.Option(help="draft, open, matched, fulfilled, cancelled or expired")] = None,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """This node's intents, newest first."""
    with errors(as_json), AgoraClient(api) as c:
        docs = c.intents(status=status)
        if as_json:
            emit_json(docs)
            return
        table([_row(d) for d in docs], COLUMNS)


@app.command("show")
def show(intent_id: str, api: ApiOpt = None, as_json: JsonOpt = False) -> None:
    """One intent: its status history, its contracts and the last match."""
    with errors(as_json), AgoraClient(api) as c:
        doc = c.intent(intent_id)
        if as_json:
            emit_json(doc)
            return
        _show(doc)


def match(
    intent_id: Annotated[str, typer.Argument(help="an open intent of this node")],
    preview: Annotated[
        bool, typer.Option("--preview", help="matching only: no bid request, no reservation, nothing stored")
    ] = False,
    wait: Annotated[float, typer.Option(help="how long to wait for the placement, seconds")] = 30.0,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Match an open intent on the market: its contract(s), or why not (rejection reasons with counts).

    On a terminal a live line shows the wait for the placement; Ctrl-C stops waiting (exit status 130):
    the node may still place the intent, and `agora intent show` tells how it went."""
    with errors(as_json), AgoraClient(api) as c:
        what = f"{'previewing' if preview else 'matching'} intent {intent_id}"
        try:
            with Waiting(what, hint=f"up to {wait:g}s for the placement; Ctrl-C detaches", quiet=as_json):
                m = c.match(intent_id, preview=preview, wait=wait)
        except KeyboardInterrupt:
            at = f" --api {api}" if api else ""
            typer.echo(f"interrupted: the node may still place it; see: agora intent show {intent_id}{at}", err=True)
            raise typer.Exit(DETACH) from None
        if as_json:
            emit_json(m)
            if not m["preview"] and not m["matched"]:
                raise typer.Exit(1)  # not matched: a script sees it in the exit status too
            return
        for name, t in m["tasks"].items():
            chosen = ", ".join(f"{p[:24]}... at {q:,}" for p, q in t["quotes"].items() if q is not None) or "none"
            typer.echo(f"task {name}: {t['considered']} considered; would ask: {chosen}")
            for hint in t["what_would_fit"]:
                typer.echo(f"  would fit: {hint}")
        if m["preview"]:
            verdict = "would match" if m["would_match"] else "would not match"
            typer.echo(f"preview: {verdict}; nothing was asked, reserved or stored")
        elif m["matched"]:
            typer.echo(f"matched: job {m['job_id']}; intent {m['intent_id']} is {m['status']}")
            for k in m["contracts"]:
                typer.echo(f"  contract {k['contract_id']}: {k['provider'][:24]}... at {k['price']:,} ({k['state']})")
        else:
            typer.echo(f"not matched; intent {m['intent_id']} stays {m['status']}")
        if m["rejections"]:
            counts = ", ".join(f"{code} x{n}" for code, n in sorted(m["rejections"].items(), key=lambda kv: -kv[1]))
            typer.echo(f"rejections: {counts}; budget_rejections: {m['budget_rejections']}")
        if not m["preview"] and not m["matched"]:
            raise typer.Exit(1)


__all__ = ["app", "match"]
