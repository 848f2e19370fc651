"""Charts drawn on the server as inline SVG: a page reads without JavaScript and loads nothing."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

_BAR = "#1f5fa8"  # 7.0:1 on white
_TEXT = "#1a1a1a"


def bar_chart(rows: Sequence[tuple[str, float]], *, title: str, unit: str = "", width: int = 520) -> str:
    """Horizontal bars, one per (label, value); an empty series says so in words."""
    if not rows:
        return f'<p class="empty">{escape(title)}: nothing to show yet.</p>'
    bar_h, gap, label_w = 18, 6, 190
    height = len(rows) * (bar_h + gap) + 28
    top = max((v for _, v in rows), default=0) or 1
    parts = [
        f'<svg role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="14" fill="{_TEXT}" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    for i, (label, value) in enumerate(rows):
        y = 24 + i * (bar_h + gap)
        w = max(1, int((width - label_w - 90) * (value / top))) if value > 0 else 0
        text = f"{value:,.3g}" if isinstance(value, float) and not value.is_integer() else f"{int(value):,}"
        parts.append(
            f'<text x="0" y="{y + 13}" fill="{_TEXT}" font-size="12">{escape(label[:28])}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_h}" fill="{_BAR}"/>'
            f'<text x="{label_w + w + 6}" y="{y + 13}" fill="{_TEXT}" font-size="12">{escape(text + unit)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["bar_chart"]
