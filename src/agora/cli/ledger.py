"""`agora ledger balance [DID] | entries [--json] | verify | mint DID AMOUNT | transfer DID AMOUNT |
stake AMOUNT | unstake AMOUNT`: money at this node's hub, through the node's API (every call to the hub is
signed by the node; docs/ledger.md). `stake` locks the node's own money in `stake:<did>` (what jobs with a
`placement.min_stake` ask of a provider, and what a provider proven wrong by redundancy is slashed from).

Amounts are integers in minor units. `mint` succeeds only on a node whose DID is one of the hub's operators
(the hub node itself, or a DID in the hub's `--ledger-operators`): anyone else gets `ledger_unauthorized`.
`--idem KEY` makes a retry safe: the same key returns the first entry and moves nothing again."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from agora.cli.output import PLAIN, emit_json, errors, short, table
from agora.client import AgoraClient, resolve_node

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ApiOpt = Annotated[str | None, typer.Option("--api", help="node API URL (default: $AGORA_API or the local node)")]
IdemOpt = Annotated[
    str | None, typer.Option("--idem", help="idempotency key: a retry with the same key moves nothing twice")
]
MemoOpt = Annotated[str, typer.Option("--memo", help="a note kept in the entry")]

app = typer.Typer(help="Money: balances and entries at this node's hub.", no_args_is_help=True, rich_markup_mode=PLAIN)


def _who(name: str | None) -> str | None:
    """A DID, an account (`wallet:…`, `escrow:…`, `stake:…`, `fees`, `issuance`, `all`), or a devnet name."""
    if name is None or name in ("all", "fees", "issuance") or name.startswith(("did:", "wallet:", "escrow:", "stake:")):
        return name
    return resolve_node(name)


def _account(account: str) -> str:
    """A wallet by its (short) DID; other accounts by their name."""
    return short(account.removeprefix("wallet:")) if account.startswith("wallet:") else account


def _postings(entry: dict[str, Any]) -> str:
    return ", ".join(f"{_account(p['account'])} {p['amount']:+,}" for p in entry["postings"]) or "-"


def _entry_line(entry: dict[str, Any]) -> str:
    memo = f"  ({entry['memo']})" if entry.get("memo") else ""
    return f"entry {entry['seq']} {entry['kind']}: {_postings(entry)}{memo}"


@app.command("balance")
def balance(
    did: Annotated[str | None, typer.Argument(help="a DID, an account or a devnet name (default: this node)")] = None,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """An account's balance (a DID: its wallet)."""
    with errors(as_json), AgoraClient(api) as c:
        doc = c.balance(_who(did))
        if as_json:
            emit_json(doc)
            return
        typer.echo(f"{doc['account']}: {doc['balance']:,}")


@app.command("entries")
def entries(
    did: Annotated[
        str | None, typer.Argument(help="a DID or an account (default: this node); all: every entry")
    ] = None,
    since: Annotated[int, typer.Option(help="entries after this seq")] = 0,
    limit: Annotated[int, typer.Option(help="at most this many")] = 100,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Entries of an account, oldest first (each one's id checked by the node)."""
    with errors(as_json), AgoraClient(api) as c:
        doc = c.ledger_entries(_who(did), since=since, limit=limit)
        if as_json:
            emit_json(doc)
            return
        rows = [
            {
                "seq": e["seq"],
                "kind": e["kind"],
                "postings": _postings(e),
                "contract": e["contract"] or "-",
                "actor": short(e["actor"]),
                "memo": e["memo"] or "-",
            }
            for e in doc["entries"]
        ]
        table(rows, ["seq", "kind", "postings", "contract", "actor", "memo"])


@app.command("verify")
def verify(api: ApiOpt = None, as_json: JsonOpt = False) -> None:
    """Fetch the whole journal and walk it here: hash links, ids, rules, sum 0. Exit 1 when it does not verify."""
    with errors(as_json), AgoraClient(api) as c:
        doc = c.ledger_verify()
    if as_json:
        emit_json(doc)
    else:
        verdict = "ok" if doc["ok"] else "FAILED"
        typer.echo(f"ledger {verdict}: {doc['entries']} entries, sum {doc['sum']}, head {doc['last_id'][:16] or '-'}")
        for p in doc["problems"]:
            typer.echo(f"  entry {p['seq']}: {p['message']}")
        typer.echo(f"this node's balance: {doc['balance']:,}")
        hub = doc["hub"]
        agree = "agrees" if doc["agrees"] else "DISAGREES"
        typer.echo(f"the hub's own check {agree}: {'ok' if hub['ok'] else 'failed'}, {hub['entries']} entries")
    if not (doc["ok"] and doc["agrees"]):
        raise typer.Exit(1)


@app.command("mint")
def mint(
    did: Annotated[str, typer.Argument(help="the wallet's DID (or a devnet name)")],
    amount: Annotated[int, typer.Argument(help="minor units")],
    idem: IdemOpt = None,
    memo: MemoOpt = "",
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue money into a wallet, signed by this node: only the hub's operators may."""
    with errors(as_json), AgoraClient(api) as c:
        doc = c.mint(str(_who(did)), amount, idem=idem, memo=memo)
        if as_json:
            emit_json(doc)
            return
        typer.echo(f"minted: {_entry_line(doc['entry'])}")


@app.command("transfer")
def transfer(
    did: Annotated[str, typer.Argument(help="the receiver's DID, a devnet name, or fees")],
    amount: Annotated[int, typer.Argument(help="minor units")],
    idem: IdemOpt = None,
    memo: MemoOpt = "",
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move this node's own money to another wallet."""
    with errors(as_json), AgoraClient(api) as c:
        doc = c.transfer(str(_who(did)), amount, idem=idem, memo=memo)
        if as_json:
            emit_json(doc)
            return
        typer.echo(f"sent: {_entry_line(doc['entry'])}")


def _stake(amount: int, idem: str | None, api: str | None, as_json: bool, unlock: bool) -> None:
    with errors(as_json), AgoraClient(api) as c:
        doc = c.stake(amount, idem=idem, unlock=unlock)
        if as_json:
            emit_json(doc)
            return
        typer.echo(f"{'unstaked' if unlock else 'staked'}: {_entry_line(doc['entry'])}")
        typer.echo(f"stake now: {doc['stake']:,}")


@app.command("stake")
def stake(
    amount: Annotated[int, typer.Argument(help="minor units")],
    idem: IdemOpt = None,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Lock this node's own money in its stake (jobs may require a minimum: placement.min_stake)."""
    _stake(amount, idem, api, as_json, unlock=False)


@app.command("unstake")
def unstake(
    amount: Annotated[int, typer.Argument(help="minor units")],
    idem: IdemOpt = None,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Take back (part of) this node's stake into its wallet."""
    _stake(amount, idem, api, as_json, unlock=True)


__all__ = ["app"]
