"""The forms turn what a person typed into the API's body, and the API's field errors back into messages
next to the field that caused them."""

from __future__ import annotations

from agora.dashboard.forms import INTENT_FIELDS, OFFER_FIELDS, field_errors, intent_body, offer_body, parse_form
from agora.errors import AgoraError


def test_parse_form_keeps_blanks_and_the_last_value() -> None:
    assert parse_form(b"a=1&b=&a=2&c=x+y") == {"a": "2", "b": "", "c": "x y"}


def test_offer_body_converts_units_and_leaves_bad_numbers_to_the_api() -> None:
    form = {
        "cpu": "1.5",
        "memory_mib": "256",
        "cpu_second": "2",
        "memory_gib_second": "1",
        "minimum": "5",
        "access": "open",
        "offer_id": "o-1",
        "max_duration_s": "600",
    }
    body = offer_body(form)
    assert body["resources"] == {"cpu_millis": 1500, "memory_bytes": 256 * 1024 * 1024, "disk_bytes": 0}
    assert body["price"] == {"base": {"cpu_second": 2, "memory_gib_second": 1, "minimum": 5}}
    assert body["terms"] == {"access": {"mode": "open"}, "max_duration_s": 600}
    assert body["offer_id"] == "o-1"
    bad = offer_body({**form, "cpu_second": "two", "cpu": "lots"})
    assert bad["price"]["base"]["cpu_second"] == "two" and bad["resources"]["cpu_millis"] == "lots"


def test_intent_body_builds_a_one_task_job() -> None:
    body = intent_body(
        {
            "job_name": "j",
            "module": "/tmp/m.wasm",
            "cpu": "0.5",
            "memory": "64Mi",
            "budget": "100",
            "max_price": "50",
            "min_trust": "0.2",
            "open": "on",
        }
    )
    assert body["job"] == {
        "name": "j",
        "tasks": [{"name": "main", "module": "/tmp/m.wasm", "resources": {"cpu": 0.5, "memory": "64Mi"}}],
    }
    assert body["budget"] == 100 and body["policy"] == {"max_price": 50, "min_trust": 0.2} and body["open"] is True
    assert "open" not in intent_body({"budget": "1"})


def test_api_field_errors_land_on_their_fields() -> None:
    err = AgoraError(
        "offer_invalid",
        "bad",
        details={
            "field": "price.base.cpu_second",
            "errors": [
                {"path": "price.base.cpu_second", "expected": "a non-negative integer (minor units)", "got": -1},
                {"path": "resources.memory_bytes", "expected": "an integer", "got": "x"},
                {"path": "surprise", "expected": "nothing", "got": 1},
            ],
        },
    )
    by_field, general = field_errors(err, OFFER_FIELDS)
    assert by_field == {
        "cpu_second": ["expected a non-negative integer (minor units), got -1"],
        "memory_mib": ["expected an integer, got 'x'"],
    }
    assert general == ["surprise: expected nothing, got 1"]


def test_the_longest_api_path_wins() -> None:
    err = AgoraError(
        "intent_invalid",
        "bad",
        details={
            "errors": [
                {"path": "job.tasks[0].resources.memory", "expected": "a size", "got": "lots"},
                {"path": "job.tasks[0].module", "expected": "a path", "got": ""},
            ]
        },
    )
    by_field, general = field_errors(err, INTENT_FIELDS)
    assert set(by_field) == {"memory", "module"} and general == []


def test_an_error_without_details_is_shown_above_the_form() -> None:
    by_field, general = field_errors(AgoraError("unavailable", "no hub"), OFFER_FIELDS)
    assert by_field == {} and general == ["no hub"]


def test_every_field_has_a_label_and_guidance() -> None:
    for f in (*OFFER_FIELDS, *INTENT_FIELDS):
        assert (f.label and f.help and f.api_paths) or f.name == "offer_id"
