"""Every shared fixture converts, with its key fields and what could not be mapped asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from agora.jobs import ConvertResult, convert, parse_job
from agora.models.job import MIB
from tests.support import FIXTURES

JOBSPECS = FIXTURES / "jobspecs"
ALL = sorted(p for p in JOBSPECS.glob("*/*") if p.is_file())


def run(path: Path) -> ConvertResult:
    return convert(path.read_text(), path.parent.name)


def test_the_fixture_set_is_there() -> None:
    assert {p.parent.name for p in ALL} == {"kubernetes", "nomad", "bacalhau"}
    assert len(ALL) >= 8


@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_fixture_converts_to_a_valid_spec(path: Path) -> None:
    result = run(path)
    assert result.spec.tasks
    assert parse_job(result.spec.to_dict()) == result.spec  # a converted spec is a valid spec
    assert all(isinstance(w, str) and ": " in w for w in result.warnings)


def test_kubernetes_job_pi() -> None:
    r = run(JOBSPECS / "kubernetes" / "job-pi.yaml")
    (task,) = r.spec.tasks
    assert r.spec.name == "pi" and r.spec.type == "batch" and r.spec.count == 1
    assert task.engine == "docker" and task.image == "perl" and task.allow_pull
    assert task.command == ("perl", "-Mbignum=bpi", "-wle", "print bpi(1000)") and task.args == ()
    assert r.spec.retry.attempts == 4  # backoffLimit
    assert any(w.startswith("activeDeadlineSeconds:") for w in r.warnings)
    assert any(w.startswith("network:") for w in r.warnings)


def test_kubernetes_pod_failure_policy_example() -> None:
    r = run(JOBSPECS / "kubernetes" / "job-pod-failure-policy-example.yaml")
    (task,) = r.spec.tasks
    assert r.spec.count == 12  # completions
    assert task.image == "docker.io/library/bash:5" and task.command == ("bash",)
    assert task.args == ("-c", 'echo "Hello world!" && sleep 5 && exit 42')
    assert r.spec.retry.attempts == 6
    assert "spec.podFailurePolicy: not supported, ignored" in r.warnings
    assert any(w.startswith("spec.parallelism:") and "3 at a time" in w for w in r.warnings)


def test_nomad_example_hcl() -> None:
    r = run(JOBSPECS / "nomad" / "example.nomad.hcl")
    (task,) = r.spec.tasks
    assert r.spec.name == "example" and r.spec.type == "service" and r.spec.count == 1
    assert task.name == "redis" and task.engine == "docker" and task.image == "redis:7"
    assert task.resources.cpu == 500  # 500 MHz -> 500 millicores
    assert task.resources.memory == 256 * MIB and task.resources.disk == 300 * MIB
    assert task.timeout is None and task.network is True
    assert (r.spec.retry.attempts, r.spec.retry.backoff) == (2, 15)
    for path in ("update", "migrate", "ui", 'group["cache"].service', 'group["cache"].task["redis"].identity'):
        assert any(w.startswith(f"{path}: not supported, ignored") for w in r.warnings), path
    assert any(w.startswith('group["cache"].restart.interval: not supported') for w in r.warnings)
    assert any(w.startswith('group["cache"].task["redis"].config.auth_soft_fail') for w in r.warnings)


def test_nomad_periodic_simple() -> None:
    r = run(JOBSPECS / "nomad" / "periodic-simple.nomad")
    (task,) = r.spec.tasks
    assert r.spec.name == "periodic" and r.spec.type == "batch"
    assert task.image == "busybox:1" and task.command == ("/bin/sh",) and task.args == ("-c", "sleep 5")
    assert task.resources.cpu == 100 and task.resources.memory == 300 * MIB  # Nomad's defaults
    assert [c.to_dict() for c in r.spec.constraints] == [{"key": "os", "op": "==", "value": "linux"}]
    assert (r.spec.retry.attempts, r.spec.retry.backoff) == (3, 15)  # Nomad's batch restart defaults
    assert any(w.startswith("periodic: not supported, ignored") for w in r.warnings)
    assert any(w.startswith("datacenters: not supported") for w in r.warnings)
    assert any(w.startswith("timeout:") for w in r.warnings)


def test_bacalhau_docker_hello_with_lowercase_keys() -> None:
    r = run(JOBSPECS / "bacalhau" / "docker-hello.yaml")
    (task,) = r.spec.tasks
    assert r.spec.name == "A Simple Docker Job" and r.spec.type == "batch" and r.spec.count == 1
    assert task.name == "my-main-task" and task.engine == "docker" and task.image == "busybox:1.37.0"
    assert task.command == ("/bin/sh",) and task.args == ("-c", "echo Hello Bacalhau!")
    assert task.network is False
    assert any("ExecutionTimeout" in w for w in r.warnings)


def test_bacalhau_docker_output() -> None:
    r = run(JOBSPECS / "bacalhau" / "docker-output.yaml")
    (task,) = r.spec.tasks
    (out,) = task.outputs
    assert (out.name, out.path, out.publish.type) == ("output_custom", "/outputs/output_custom", "local")
    # the provider maps outputs only under /outputs: moved there, and the move named by its field
    assert any(w.startswith("Tasks[0].ResultPaths[0].Path: /output_custom is mapped to") for w in r.warnings)
    assert task.args == ("-c", "echo 15 > /output_custom/output.txt")


def test_bacalhau_docker_s3() -> None:
    r = run(JOBSPECS / "bacalhau" / "docker-s3.yaml")
    (task,) = r.spec.tasks
    (inp,) = task.inputs
    assert inp.name == "input_custom" and inp.path == "/inputs/input_custom" and inp.source.type == "s3"
    assert dict(inp.source.params) == {
        "bucket": "bacalhau-test-datasets",
        "key": "integration-tests-do-not-delete/set1/",
        "region": "eu-west-1",
    }


def test_bacalhau_noop() -> None:
    r = run(JOBSPECS / "bacalhau" / "noop.yaml")
    (task,) = r.spec.tasks
    assert task.engine == "process" and task.command == ("true",)
    assert task.outputs[0].publish.type == "local"
    assert any(w.startswith("Tasks[0].Engine.Type: noop engine") for w in r.warnings)
    assert any(w.startswith("Tasks[0].Publisher.Type: publisher noop") for w in r.warnings)
