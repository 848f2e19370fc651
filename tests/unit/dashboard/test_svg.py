"""Server-side charts: well-formed SVG with a title for screen readers, bars in proportion, escaped labels."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from agora.dashboard.svg import bar_chart

NS = "{http://www.w3.org/2000/svg}"


def test_bars_are_in_proportion_and_labels_escaped() -> None:
    svg = bar_chart([("a<b", 10), ("c", 5)], title="Free & used")
    root = ET.fromstring(svg)
    assert root.get("role") == "img" and root.get("aria-label") == "Free & used"
    assert root.find(f"{NS}title").text == "Free & used"  # type: ignore[union-attr]
    widths = [int(r.get("width", "0")) for r in root.iter(f"{NS}rect")]
    assert len(widths) == 2 and widths[0] == 2 * widths[1]
    assert "a<b" in [t.text for t in root.iter(f"{NS}text")]


def test_an_empty_series_says_so() -> None:
    assert "nothing to show" in bar_chart([], title="x")


def test_zero_values_draw_no_bar() -> None:
    root = ET.fromstring(bar_chart([("z", 0)], title="t"))
    assert [r.get("width") for r in root.iter(f"{NS}rect")] == ["0"]


def test_times_read_as_utc() -> None:
    from agora.dashboard.pages import _when

    assert _when(0) == "1970-01-01 00:00:00.000 UTC" and _when(1.5) == "1970-01-01 00:00:01.500 UTC"
    assert _when(None) == "" and _when("soon") == "soon"
