"""Printing for the CLI: `--json` for scripts, short aligned tables for people, errors with hints."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer

from agora.errors import AgoraError


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    if not rows:
        typer.echo("(none)")
        return
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


@contextmanager
def errors(as_json: bool = False) -> Iterator[None]:
    """Turn an AgoraError into a clear message (or a JSON error object) and exit status 1."""
    try:
        yield
    except AgoraError as err:
        if as_json:
            emit_json({"error": err.to_dict()})
        else:
            typer.echo(f"error: {err.code}: {err.message}", err=True)
            if err.hint:
                typer.echo(f"hint: {err.hint}", err=True)
        raise typer.Exit(1) from None


def run_json_or_text(as_json: bool, data: Any, text: Callable[[Any], None]) -> None:
    if as_json:
        emit_json(data)
    else:
        text(data)


def short(did: str) -> str:
    return did if len(did) < 24 else f"{did[:16]}…{did[-6:]}"


def fail(message: str) -> None:
    typer.echo(message, err=True)
    sys.exit(1)


__all__ = ["emit_json", "errors", "fail", "run_json_or_text", "short", "table"]
