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


def line_chart(
    points: Sequence[tuple[float, float]],
    *,
    title: str,
    x_label: str = "",
    y_max: float | None = None,
    width: int = 520,
) -> str:
    """One series as a polyline with a dot and its value at each point (x ascending); an empty series says
    so in words. `y_max` fixes the top of the scale (1.0 for an accuracy), else the largest value is."""
    if not points:
        return f'<p class="empty">{escape(title)}: nothing to show yet.</p>'
    height, left, right, top, bottom = 220, 48, 24, 28, 34
    xs = [x for x, _ in points]
    x0, x1 = min(xs), max(xs)
    y1 = y_max if y_max is not None else (max((y for _, y in points), default=0) or 1)
    y1 = y1 or 1

    def at(x: float, y: float) -> tuple[float, float]:
        px = left + (width - left - right) * ((x - x0) / (x1 - x0) if x1 > x0 else 0.5)
        py = height - bottom - (height - top - bottom) * max(0.0, min(y / y1, 1.0))
        return round(px, 1), round(py, 1)

    base = height - bottom
    parts = [
        f'<svg role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="14" fill="{_TEXT}" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" stroke="{_TEXT}"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="{_TEXT}"/>',
        f'<text x="0" y="{top + 4}" fill="{_TEXT}" font-size="11">{_num(y1)}</text>',
        f'<text x="0" y="{base}" fill="{_TEXT}" font-size="11">0</text>',
        f'<text x="{left}" y="{height - 4}" fill="{_TEXT}" font-size="11">{escape(x_label)}</text>',
    ]
    coords = [at(x, y) for x, y in points]
    parts.append(
        f'<polyline fill="none" stroke="{_BAR}" stroke-width="2" points="'
        + " ".join(f"{px},{py}" for px, py in coords)
        + '"/>'
    )
    for (x, y), (px, py) in zip(points, coords, strict=True):
        parts.append(
            f'<circle cx="{px}" cy="{py}" r="3.5" fill="{_BAR}"><title>{_num(x)}: {_num(y)}</title></circle>'
            f'<text x="{px - 8}" y="{py - 8}" fill="{_TEXT}" font-size="11">{_num(y)}</text>'
            f'<text x="{px - 3}" y="{base + 14}" fill="{_TEXT}" font-size="11">{_num(x)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _num(value: float) -> str:
    return f"{value:,.3g}" if isinstance(value, float) and not value.is_integer() else f"{int(value):,}"


__all__ = ["bar_chart", "line_chart"]
