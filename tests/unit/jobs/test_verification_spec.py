"""The spec's redundancy block (`verification: {replicas, agree}`) and the per-job bid fan-out
(`placement.bids`): parsed, defaulted, round-tripped, and every bad value a field error."""

from __future__ import annotations

from typing import Any

import pytest

from agora.jobs import parse_job
from agora.jobs.validate import spec_warnings
from agora.models.job import MAX_BIDS, MAX_REPLICAS
from tests.unit.jobs.test_parse import MINIMAL, errors_of, paths


def job(**extra: Any) -> dict[str, Any]:
    return {**MINIMAL, **extra}


def test_verification_and_bids_parse_and_round_trip() -> None:
    spec = parse_job(job(verification={"replicas": 3, "agree": 2}, placement={"bids": 5}))
    assert spec.verification is not None
    assert (spec.verification.replicas, spec.verification.agree) == (3, 2)
    assert spec.placement.bids == 5
    again = parse_job(spec.to_dict())
    assert again == spec
    assert again.to_dict()["verification"] == {"replicas": 3, "agree": 2}
    assert again.to_dict()["placement"]["bids"] == 5


def test_absent_blocks_stay_absent_and_agree_defaults_to_a_majority() -> None:
    plain = parse_job(MINIMAL)
    assert plain.verification is None and plain.placement.bids is None
    assert "verification" not in plain.to_dict() and "bids" not in plain.to_dict()["placement"]
    for replicas, majority in ((2, 2), (3, 2), (4, 3), (5, 3)):
        v = parse_job(job(verification={"replicas": replicas})).verification
        assert v is not None and v.agree == majority


@pytest.mark.parametrize(
    ("block", "path"),
    [
        ({"replicas": 1}, "verification.replicas"),
        ({"replicas": MAX_REPLICAS + 1}, "verification.replicas"),
        ({"replicas": "3"}, "verification.replicas"),
        ({"replicas": True}, "verification.replicas"),
        ({"agree": 2}, "verification.replicas"),
        ({"replicas": 3, "agree": 4}, "verification.agree"),
        ({"replicas": 3, "agree": 0}, "verification.agree"),
        ({"replicas": 3, "quorum": 2}, "verification.quorum"),
        ([3, 2], "verification"),
    ],
)
def test_a_bad_verification_block_names_its_field(block: Any, path: str) -> None:
    assert path in paths(errors_of(job(verification=block)))


@pytest.mark.parametrize("bids", [0, MAX_BIDS + 1, -1, 2.5, "3", None])
def test_a_bad_bids_count_names_its_field(bids: Any) -> None:
    assert paths(errors_of(job(placement={"bids": bids}))) == ["placement.bids"]


def test_a_service_job_cannot_ask_for_verification() -> None:
    doc = {
        "name": "svc",
        "type": "service",
        "tasks": [{"name": "s", "module": "s.wasm", "timeout": None}],
        "verification": {"replicas": 2},
    }
    assert "verification" in paths(errors_of(doc))


def test_with_a_node_both_fields_are_warned_about() -> None:
    spec = parse_job(job(verification={"replicas": 2}, placement={"bids": 2}))
    warned = [w.split(":", 1)[0] for w in spec_warnings(spec, market=False)]
    assert "verification" in warned and "placement.bids" in warned
    assert spec_warnings(spec, market=True) == []
