"""`agora dataset add PATH --tags … --licence …`, `dataset list`, `dataset remove ID`: the data sets this node
offers for federated learning, through its API.

PATH is read by the node (a CSV with a header row, an NPZ with arrays x and y, or a folder of those) and
described: schema, rows, size, content hash. The path itself is never published."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from agora.cli.output import PLAIN, emit_json, errors, table
from agora.client import AgoraClient
from agora.errors import AgoraError

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ApiOpt = Annotated[str | None, typer.Option("--api", help="node API URL (default: $AGORA_API or the local node)")]

app = typer.Typer(help="Data sets offered for federated learning.", no_args_is_help=True, rich_markup_mode=PLAIN)
COLUMNS = ["id", "name", "format", "rows", "features", "tags", "licence", "per_update", "custom_code"]


def _row(o: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": o["offer_id"],
        "name": o["name"],
        "format": o["format"],
        "rows": o["rows"],
        "features": len(o["schema"]["features"]),
        "tags": ",".join(o["tags"]),
        "licence": o["licence"],
        "per_update": o["price_per_update"],
        "custom_code": "yes" if o["custom_code"] else "no",
    }


@app.command("add")
def add(
    path: Annotated[Path, typer.Argument(help="a .csv, an .npz (x, y) or a folder of those")],
    tags: Annotated[str, typer.Option("--tags", help="comma-separated tags, e.g. digits,images")],
    licence: Annotated[str, typer.Option("--licence", help="the data's licence, e.g. CC-BY-4.0")],
    name: Annotated[str | None, typer.Option(help="a display name (default: the file name)")] = None,
    price: Annotated[int, typer.Option("--price-per-update", help="minor units per delivered update")] = 0,
    custom_code: Annotated[bool, typer.Option("--custom-code", help="accept custom training code")] = False,
    label: Annotated[str | None, typer.Option(help="the label column (CSV; default: the last)")] = None,
    schema: Annotated[Path | None, typer.Option(help="a JSON file with the declared schema, checked")] = None,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Offer a data set (described from the file, checked against --schema when given)."""
    with errors(as_json):
        options: dict[str, Any] = {"price_per_update": price, "custom_code": custom_code}
        if name:
            options["name"] = name
        if label:
            options["label"] = label
        if schema is not None:
            try:
                options["schema"] = json.loads(schema.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise AgoraError("dataset_invalid", f"cannot read the schema {schema}: {exc}") from None
        tag_list = [t.strip() for t in tags.split(",") if t.strip()]
        with AgoraClient(api) as c:
            offer = c.add_dataset(str(path.expanduser().resolve()), tags=tag_list, licence=licence, **options)
        if as_json:
            emit_json(offer)
            return
        typer.echo(f"offering data set {offer['offer_id']} ({offer['content_hash'][:19]}…)")
        table([_row(offer)], COLUMNS)


@app.command("list")
def list_datasets(api: ApiOpt = None, as_json: JsonOpt = False) -> None:
    """This node's data-set offers (as published: no paths)."""
    with errors(as_json), AgoraClient(api) as c:
        offers = c.datasets()
        if as_json:
            emit_json(offers)
            return
        table([_row(o) for o in offers], COLUMNS)


@app.command("remove")
def remove(offer_id: str, api: ApiOpt = None, as_json: JsonOpt = False) -> None:
    """Stop offering a data set."""
    with errors(as_json), AgoraClient(api) as c:
        offer = c.remove_dataset(offer_id)
        if as_json:
            emit_json(offer)
            return
        typer.echo(f"removed data set {offer['offer_id']}")
