"""How a page shows a value the API answers, whatever its shape: never a Python `repr` (`{'a': 1}`, `['x']`,
`None`). The `show` filter renders a mapping of plain values inline (`forged: 0, replayed: 2`), a nested one as
a definition list, a list of plain values joined with commas, a list of mappings as a list, a DID short with
the full one in its `title`, nothing as "—"; `when_ago` a unix time as UTC with its age."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup, escape

NOTHING = "—"
MAX_DEPTH = 4  # deeper than this, a value is shown as text (the API answers nothing this deep on these pages)
MAX_ITEMS = 50  # a longer list shows its first items and how many more
_DID = re.compile(r"did:[a-z0-9]+:[A-Za-z0-9._%:-]{17,}")  # a whole value that is one DID (not text naming one)


def short(did: Any) -> str:
    text = str(did or "")
    return text if len(text) <= 24 else f"{text[:16]}…{text[-6:]}"


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _scalar(value: Any) -> Markup:
    if value is None:
        return Markup(NOTHING)
    if isinstance(value, bool):
        return Markup("yes" if value else "no")
    if isinstance(value, float):
        return escape(f"{value:.6g}")
    text = str(value)
    if _DID.fullmatch(text):
        return Markup('<code title="{}">{}</code>').format(text, short(text))
    return escape(text)


def show(value: Any, depth: int = 0) -> Markup:
    """`value` as HTML (escaped): see the module doc."""
    if _plain(value):
        return _scalar(value)
    if depth >= MAX_DEPTH:
        return escape(str(value))
    if isinstance(value, Mapping):
        if not value:
            return Markup("none")
        if all(_plain(v) for v in value.values()):
            return Markup(", ").join(Markup("{}: {}").format(k, _scalar(v)) for k, v in value.items())
        rows = (Markup("<dt>{}</dt><dd>{}</dd>").format(k, show(v, depth + 1)) for k, v in value.items())
        return Markup('<dl class="facts nested">') + Markup("").join(rows) + Markup("</dl>")
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        items = list(value)
        if not items:
            return Markup("none")
        more = Markup(" … and {} more").format(len(items) - MAX_ITEMS) if len(items) > MAX_ITEMS else Markup("")
        items = items[:MAX_ITEMS]
        if all(_plain(v) for v in items):
            return Markup(", ").join(_scalar(v) for v in items) + more
        lis = (Markup("<li>{}</li>").format(show(v, depth + 1)) for v in items)
        return Markup('<ul class="nested">') + Markup("").join(lis) + Markup("</ul>") + more
    return escape(str(value))


def when_ago(at: Any, now: Any = None, age_s: Any = None) -> str:
    """A unix time as `YYYY-MM-DD HH:MM:SS UTC (N s ago)`; the age is `age_s` when the API gives it, else
    `now - at`; "—" for no time."""
    if not isinstance(at, int | float) or isinstance(at, bool):
        return NOTHING if at in (None, "") else str(at)
    text = datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    age = age_s
    if not isinstance(age, int | float) and isinstance(now, int | float):
        age = now - at
    if isinstance(age, int | float) and not isinstance(age, bool):
        text += f" ({ago(age)})"
    return text


def ago(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s ago"
    if s < 3600:
        return f"{s // 60} min ago"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min ago"
    return f"{s // 86400} d ago"


__all__ = ["NOTHING", "ago", "short", "show", "when_ago"]
