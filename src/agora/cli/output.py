"""Printing for the CLI: `--json` for scripts, short aligned tables for people, errors with hints."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer

from agora.errors import AgoraError

PLAIN = None  # Typer's rich_markup_mode: plain click help; rendering help with rich costs ~0.2 s of imports


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


def _compact(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def detail_lines(details: dict[str, Any] | None, max_lines: int = 20) -> list[str]:
    """An error's details as short lines, so a hint that points at them is useful without --json."""
    lines: list[str] = []
    for key, value in (details or {}).items():
        if value is None or value == "" or value == [] or value == {}:
            continue  # an empty detail (a task that wrote no stderr) says nothing: no bare `stderr_tail:` line
        if isinstance(value, list):
            lines.append(f"  {key}:")
            for item in value:
                if isinstance(item, dict) and {"path", "expected", "got"} <= item.keys():
                    lines.append(f"    {item['path']}: expected {item['expected']}, got {_compact(item['got'], 80)}")
                else:
                    lines.append(f"    {_compact(item)}")
        else:
            lines.append(f"  {key}: {_compact(value)}")
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], f"  … {len(lines) - max_lines + 1} more (--json shows all)"]
    return lines


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
            for line in detail_lines(err.details):
                typer.echo(line, err=True)
            if err.hint:
                typer.echo(f"hint: {err.hint}", err=True)
        raise typer.Exit(1) from None


def run_json_or_text(as_json: bool, data: Any, text: Callable[[Any], None]) -> None:
    if as_json:
        emit_json(data)
    else:
        text(data)


def _span(seconds: float) -> str:
    s = int(abs(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def when(epoch: float | None, now: float | None = None) -> str:
    """An epoch time (UCAN exp, …) for people: `2026-12-31 14:00 UTC (in 30d)`; None is `never`."""
    if epoch is None:
        return "never"
    import time

    now = time.time() if now is None else now
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))
    delta = epoch - now
    return f"{stamp} (in {_span(delta)})" if delta >= 0 else f"{stamp} ({_span(delta)} ago)"


def short(did: str) -> str:
    return did if len(did) < 24 else f"{did[:16]}…{did[-6:]}"


def fail(message: str) -> None:
    typer.echo(message, err=True)
    sys.exit(1)


__all__ = ["PLAIN", "detail_lines", "emit_json", "errors", "fail", "run_json_or_text", "short", "table", "when"]
