"""The feature pages' pure parts: the accuracy plot's points, the training spec typed in a form, the quote
form's body, and the line chart drawn on the server."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from agora.dashboard.features import TRAINING_FIELDS, accuracy_points, quote_body, training_spec
from agora.dashboard.forms import field_errors
from agora.dashboard.svg import line_chart
from agora.errors import AgoraError

SVG = "{http://www.w3.org/2000/svg}"


def test_accuracy_points_take_the_rounds_that_aggregated() -> None:
    run = {
        "rounds": [
            {"round": 1, "accepted": ["a", "b"], "metrics": {"eval_accuracy": 0.5, "eval_loss": 1.2}},
            {"round": 2, "accepted": [], "metrics": {}},  # nothing aggregated: no point
            {"round": 3, "accepted": ["a"], "metrics": {"accuracy": 0.75}},  # no evaluation: the fit's accuracy
            {"round": 4, "accepted": ["a"], "metrics": {"eval_loss": 0.3}},  # no accuracy at all
        ]
    }
    assert accuracy_points(run) == [(1.0, 0.5), (3.0, 0.75)]
    assert accuracy_points({}) == []


def test_a_line_chart_places_each_point_and_names_it() -> None:
    svg = line_chart([(1, 0.25), (2, 0.5), (3, 1.0)], title="Accuracy by round", x_label="round", y_max=1.0)
    root = ET.fromstring(svg)
    assert root.get("role") == "img" and root.findtext(f"{SVG}title") == "Accuracy by round"
    [line] = root.findall(f"{SVG}polyline")
    xy = [tuple(float(v) for v in p.split(",")) for p in str(line.get("points")).split()]
    assert [x for x, _ in xy] == sorted(x for x, _ in xy) and len(xy) == 3
    ys = [y for _, y in xy]
    assert ys[0] > ys[1] > ys[2]  # SVG's y grows downwards: a higher accuracy sits higher
    assert (ys[0] - ys[2]) == pytest.approx(1.5 * (ys[1] - ys[2]), abs=0.2)  # to scale: 0.75 vs 0.5 below the top
    dots = [c.findtext(f"{SVG}title") for c in root.findall(f"{SVG}circle")]
    assert dots == ["1: 0.25", "2: 0.5", "3: 1"]
    assert "nothing to show yet" in line_chart([], title="Accuracy")
    ET.fromstring(line_chart([(1, 0.9)], title="<one & only>"))  # a single point, an escaped title


def test_the_training_spec_reads_yaml_or_json_and_refuses_the_rest() -> None:
    assert training_spec("rounds: 2\ndata_tags: [digits]") == {"rounds": 2, "data_tags": ["digits"]}
    assert training_spec('{"rounds": 3}') == {"rounds": 3}
    for bad in ("rounds: [2", "- a list", "", "just words"):
        with pytest.raises(AgoraError) as caught:
            training_spec(bad)
        assert caught.value.code == "training_spec_invalid"
        by_field, general = field_errors(caught.value, TRAINING_FIELDS)
        assert list(by_field) == ["spec"] and general == []  # shown next to the spec's text area


def test_the_api_errors_of_a_training_run_land_on_their_fields() -> None:
    err = AgoraError(
        "training_spec_invalid",
        "bad",
        details={
            "field": "training.rounds",
            "errors": [
                {"path": "training.rounds", "expected": "an integer >= 1", "got": 0},
                {"path": "query.budget", "message": "Input should be a valid integer"},
            ],
        },
    )
    by_field, general = field_errors(err, TRAINING_FIELDS)
    assert by_field["spec"] == ["rounds: expected an integer >= 1, got 0"]  # named inside the text area
    assert by_field["budget"] == ["Input should be a valid integer"]
    assert general == []


def test_the_quote_body_converts_numbers_and_leaves_bad_ones_to_the_api() -> None:
    form = {"model": "m", "est_in": "10", "est_out": "20", "strategy": "cheapest"}
    assert quote_body(form) == {"model": "m", "est_in": 10, "est_out": 20, "strategy": "cheapest"}
    assert quote_body({**form, "est_in": "ten"})["est_in"] == "ten"
