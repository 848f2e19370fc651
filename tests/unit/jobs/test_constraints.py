"""Hard constraints against a node's facts: every failing one named; unknown facts left to the provider."""

from __future__ import annotations

import pytest

from agora.errors import AgoraError
from agora.jobs import (
    announced_facts,
    check_constraints,
    node_facts,
    parse_constraints,
    parse_job,
    require_constraints,
    spec_warnings,
    validate,
)
from agora.models.capability import Capability, GiB

NODE = Capability(
    cpu_millis=4000,
    memory_bytes=8 * GiB,
    disk_bytes=100 * GiB,
    gpu_count=1,
    gpu_model="NVIDIA A100-SXM4-80GB",
    arch="amd64",
    executors=frozenset({"wasm", "process"}),
    labels={"tier": "spot", "region": "eu"},
    location="eu-west-1",
)
FACTS = node_facts(NODE, os_name="linux")


def c(key: str, op: str = "==", value: object = None) -> dict[str, object]:
    return {"key": key, "op": op} | ({} if op == "exists" else {"value": value})


@pytest.mark.parametrize(
    "raw",
    [
        c("arch", "==", "x86_64"),
        c("arch", "in", ["arm64", "amd64"]),
        c("os", "==", "Linux"),
        c("location", "==", "eu"),
        c("gpu_model", "==", "a100"),
        c("gpu_model", "exists"),
        c("executors", "==", "wasm"),
        c("executors", "not_in", ["docker"]),
        c("memory_bytes", ">=", "8Gi"),
        c("cpu_millis", "<=", 4000),
        c("cpu_millis", ">=", "2"),
        c("labels.tier", "!=", "ondemand"),
        c("labels.missing", "!=", "x"),
        c("labels.region", "in", ["eu", "us"]),
    ],
)
def test_constraints_the_node_meets(raw: dict[str, object]) -> None:
    assert check_constraints(parse_constraints([raw]), FACTS).ok


@pytest.mark.parametrize(
    "raw",
    [
        c("arch", "in", ["riscv64"]),
        c("os", "==", "windows"),
        c("location", "==", "europa"),
        c("gpu_model", "==", "a10"),
        c("executors", "==", "docker"),
        c("memory_bytes", ">=", "16Gi"),
        c("labels.tier", "!=", "spot"),
        c("labels.missing", "==", "x"),
        c("labels.missing", "exists"),
        c("trust", ">=", 0.5),  # unknown trust never meets a bound
    ],
)
def test_constraints_the_node_fails(raw: dict[str, object]) -> None:
    result = check_constraints(parse_constraints([raw]), FACTS)
    [reason] = result.reasons
    assert reason.code == "constraint_unmet" and reason.dimension == raw["key"]
    assert reason.text.startswith(f"constraint_unmet: {raw['key']} ")


def test_every_failing_constraint_is_named_in_the_error() -> None:
    spec = parse_job(
        {
            "name": "j",
            "tasks": [{"name": "t", "module": "m.wasm"}],
            "constraints": [c("arch", "in", ["riscv64"]), c("labels.tier", "==", "gpu"), c("os", "==", "linux")],
        }
    )
    with pytest.raises(AgoraError) as err:
        require_constraints(spec.constraints, FACTS, node="did:key:zNode")
    assert err.value.code == "constraints_unmet" and not err.value.retryable
    reasons = err.value.details["reasons"]
    assert [r["dimension"] for r in reasons] == ["arch", "labels.tier"]
    assert reasons[0]["need"] == {"key": "arch", "op": "in", "value": ["riscv64"]} and reasons[0]["have"] == "x86_64"
    assert "arch in [riscv64], has x86_64" in err.value.message and "did:key:zNode" in err.value.message


def test_an_announcement_judges_only_what_it_carries() -> None:
    facts = announced_facts({"arch": "x86_64", "cpu_millis": 2000, "executors": ["wasm"], "free": {}})
    assert set(facts) == {"arch", "cpu_millis", "executors"}
    unknown = parse_constraints([c("labels.tier", "==", "gpu"), c("os", "==", "linux")])
    assert check_constraints(unknown, facts, complete=False).ok  # left to the provider
    assert not check_constraints(unknown, facts).ok  # a node about itself knows it has no such label
    known = parse_constraints([c("arch", "==", "aarch64"), c("labels.tier", "==", "gpu")])
    assert [r.dimension for r in check_constraints(known, facts, complete=False).reasons] == ["arch"]


def test_bad_constraints_in_a_start_request_are_spec_errors() -> None:
    assert parse_constraints(None) == ()
    with pytest.raises(AgoraError) as err:
        parse_constraints([{"key": "arch", "op": "like", "value": "x"}])
    assert err.value.code == "job_spec_invalid"
    assert err.value.details["errors"][0]["path"] == "constraints[0].op"


def test_fields_without_effect_where_the_job_runs_are_warned_about() -> None:
    """Sent to a named node, the market's fields do nothing; placed by the market, every field has its effect
    (payment.mode and payment.budget settle the placement's contract)."""
    base = {"name": "j", "tasks": [{"name": "t", "module": "m.wasm"}]}
    assert validate(base)[1] == []
    spec, warnings = validate(
        base
        | {
            "affinities": [{"key": "arch", "value": "x86_64", "weight": 10}],
            "placement": {"max_price": 10, "min_trust": 0.5, "strategy": "cheapest"},
            "payment": {"mode": "pay_before", "budget": 20},
            "deadline": "2h",
        }
    )
    fields = [w.split(":")[0] for w in warnings]
    assert spec_warnings(spec) == warnings  # validate() judges a job the market places
    assert fields == []
    named = [w.split(":")[0] for w in spec_warnings(spec, market=False)]
    assert named == [
        "affinities",
        "placement.max_price",
        "placement.min_trust",
        "placement.strategy",
        "payment.budget",
        "deadline",
        "payment.mode",
    ]
    assert all("has no effect" in w for w in spec_warnings(spec, market=False))
