"""`retry.on`: which failures a retry policy retries, parsed, defaulted and mapped from other schedulers."""

from __future__ import annotations

import pytest

from agora.errors import CATALOG, AgoraError
from agora.jobs import convert, parse_job
from agora.models.job import DEFAULT_RETRY_ON, RETRY_ON, RetryPolicy, failure_class
from tests.support import FIXTURES

BASE = {"name": "j", "tasks": [{"name": "t", "module": "m.wasm"}]}


@pytest.mark.parametrize(
    ("code", "retryable", "kind"),
    [
        ("task_failed", False, "task_failed"),
        ("module_trap", False, "task_failed"),
        ("task_oom", False, "task_failed"),
        ("task_timeout", False, "task_timeout"),
        ("alloc_interrupted", True, "node_lost"),
        ("peer_unreachable", True, "node_lost"),
        ("insufficient_capacity", True, "transient"),
        ("insufficient_capacity", False, None),  # the node can never fit it: its own word counts
        ("task_failed", True, "task_failed"),
        ("job_spec_invalid", True, None),  # a peer calling a bad spec retryable is not believed
        ("constraints_unmet", False, None),
        ("task_cancelled", False, None),
        ("ucan_unauthorized", False, None),
    ],
)
def test_failure_classes(code: str, retryable: bool, kind: str | None) -> None:
    assert code in CATALOG
    assert failure_class(code, retryable) == kind


def test_the_default_retries_what_was_retried_before_and_not_a_failed_task() -> None:
    policy = RetryPolicy(attempts=2)
    assert policy.on == DEFAULT_RETRY_ON == ("node_lost", "transient")
    assert policy.should_retry("alloc_interrupted", True, 1)
    assert policy.should_retry("insufficient_capacity", True, 2)
    assert not policy.should_retry("insufficient_capacity", True, 3)  # the attempts are spent
    assert not policy.should_retry("task_failed", False, 1)
    assert not policy.should_retry("task_timeout", False, 1)
    assert not RetryPolicy().should_retry("alloc_interrupted", True, 1)  # attempts 0: never


def test_on_task_failed_retries_a_task_that_exited_non_zero() -> None:
    policy = RetryPolicy(attempts=1, on=("task_failed",))
    assert policy.should_retry("task_failed", False, 1) and policy.should_retry("module_trap", False, 1)
    assert not policy.should_retry("task_failed", False, 2)
    assert not policy.should_retry("alloc_interrupted", True, 1)  # node_lost not listed


def test_retry_on_parses_defaults_and_round_trips() -> None:
    assert parse_job(BASE).retry.on == DEFAULT_RETRY_ON
    spec = parse_job(BASE | {"retry": {"attempts": 3, "on": ["task_failed", "task_timeout"]}})
    assert spec.retry.on == ("task_failed", "task_timeout")
    assert spec.to_dict()["retry"] == {"attempts": 3, "backoff": 10, "on": ["task_failed", "task_timeout"]}
    assert parse_job(spec.to_dict()) == spec
    assert parse_job(BASE | {"retry": {"on": list(RETRY_ON)}}).retry.on == RETRY_ON


@pytest.mark.parametrize(
    ("on", "paths"),
    [
        ([], ["retry.on"]),
        ("task_failed", ["retry.on"]),
        (["task_failed", "task_failed"], ["retry.on"]),
        (["task_failed", "oom"], ["retry.on[1]"]),
    ],
)
def test_bad_retry_on_is_a_field_error(on: object, paths: list[str]) -> None:
    with pytest.raises(AgoraError) as err:
        parse_job(BASE | {"retry": {"attempts": 1, "on": on}})
    assert [e["path"] for e in err.value.details["errors"]] == paths
    assert "task_failed, task_timeout, node_lost, transient" in err.value.details["errors"][0]["expected"]


def test_kubernetes_backoff_limit_retries_failed_pods() -> None:
    r = convert((FIXTURES / "jobspecs" / "kubernetes" / "job-pi.yaml").read_text(), "kubernetes")
    assert r.spec.retry.attempts == 4 and r.spec.retry.on == ("task_failed", "node_lost", "transient")
    assert r.spec.retry.should_retry("task_failed", False, 1)  # a pod whose container exited non-zero


def test_nomad_restart_retries_failed_tasks() -> None:
    r = convert((FIXTURES / "jobspecs" / "nomad" / "periodic-simple.nomad").read_text(), "nomad")
    assert r.spec.retry.attempts == 3 and "task_failed" in r.spec.retry.on


def test_a_bare_yaml_on_key_is_read_as_on() -> None:
    text = "name: j\ntasks: [{name: t, module: m.wasm}]\nretry:\n  attempts: 2\n  on: [task_failed]\n"
    assert parse_job(text).retry.on == ("task_failed",)
