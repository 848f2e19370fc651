"""parse_job: defaults, units, every error reported with its path, unknown fields, documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from agora.errors import AgoraError
from agora.jobs import JobSpec, load_job_file, parse_job
from agora.models.job import GIB, MIB
from tests.support import ROOT

MINIMAL = {"name": "hello", "tasks": [{"name": "main", "module": "hello.wasm"}]}


def errors_of(source: Any, **kw: Any) -> list[dict[str, Any]]:
    with pytest.raises(AgoraError) as info:
        parse_job(source, **kw)
    assert info.value.code == "job_spec_invalid"
    errors: list[dict[str, Any]] = info.value.details["errors"]
    return errors


def paths(errors: list[dict[str, Any]]) -> list[str]:
    return [e["path"] for e in errors]


def with_task(**fields: Any) -> dict[str, Any]:
    return {"name": "j", "tasks": [{"name": "t", **fields}]}


def test_minimal_spec_gets_documented_defaults() -> None:
    spec = parse_job(MINIMAL)
    assert spec.type == "batch" and spec.count == 1
    (task,) = spec.tasks
    assert task.engine == "wasm" and task.module == "hello.wasm"
    assert (task.resources.cpu, task.resources.memory, task.resources.disk) == (1000, 256 * MIB, GIB)
    assert task.resources.gpu.count == 0
    assert task.timeout == 60 and task.network is False and task.allow_pull is False
    assert spec.placement.strategy == "balanced" and spec.payment.mode == "pay_after"
    assert spec.payment.budget is None and spec.retry.attempts == 0 and spec.retry.backoff == 10
    assert spec.deadline is None


def test_full_spec_in_yaml_parses_every_field() -> None:
    text = """
name: full
type: batch
count: 3
tasks:
  - name: prep
    engine: process
    command: [/bin/sh, -c]
    args: ["echo hi", 7]
    env: {A: x, N: 3}
    resources: {cpu: "250m", memory: 1G, disk: "1.5Gi", gpu: {count: 2, model: a100, vram: 40Gi}}
    timeout: 5m
    inputs:
      - name: data
        source: {type: s3, bucket: my-bucket, key: a/b.csv, region: eu-west-1, endpoint: "http://127.0.0.1:8333"}
        path: /inputs/data
        sha256: "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
      - {name: cfg, source: {type: inline, content: aGk=, encoding: base64}}
      - {name: page, source: {type: http, url: "https://example.org/x"}}
      - {name: local, source: {type: local, path: ./data}}
      - {name: obj, source: {type: hub, name: results/1, bucket: jobs}}
    outputs:
      - {name: out, path: /outputs/out, publish: {type: s3, bucket: out-bucket, key: runs/}}
      - {name: logs}
    network: true
  - name: run
    engine: docker
    image: busybox:1.37
    allow_pull: true
    depends_on: [prep]
constraints:
  - {key: arch, op: in, value: [x86_64, aarch64]}
  - {key: labels.gpu, op: exists}
  - {key: memory_bytes, op: ">=", value: 8Gi}
affinities:
  - {key: location, op: "==", value: eu, weight: -20}
placement: {max_price: 500, min_trust: 0.5, strategy: spread}
payment: {mode: pay_before, budget: 1000}
retry: {attempts: 3, backoff: 1m}
deadline: 2h
labels: {team: infra}
"""
    spec = parse_job(text)
    prep, run = spec.tasks
    assert prep.command == ("/bin/sh", "-c") and prep.args == ("echo hi", "7")
    assert prep.env == {"A": "x", "N": "3"}
    assert prep.resources.cpu == 250 and prep.resources.memory == 10**9 and prep.resources.disk == 3 * GIB // 2
    assert (prep.resources.gpu.count, prep.resources.gpu.model, prep.resources.gpu.vram) == (2, "a100", 40 * GIB)
    assert prep.timeout == 300 and prep.network is True
    data, cfg, page, local, obj = prep.inputs
    assert data.source.type == "s3" and data.source.params["bucket"] == "my-bucket" and data.path == "/inputs/data"
    assert data.sha256 == "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
    assert cfg.source.params == {"content": "aGk=", "encoding": "base64"} and cfg.path == "/inputs/cfg"
    assert page.source.params == {"url": "https://example.org/x"}
    assert local.source.params == {"path": "./data"} and obj.source.params == {"name": "results/1", "bucket": "jobs"}
    assert prep.outputs[0].publish.params == {"bucket": "out-bucket", "key": "runs/"}
    assert prep.outputs[1].path == "/outputs/logs" and prep.outputs[1].publish.type == "local"
    assert run.engine == "docker" and run.allow_pull and run.depends_on == ("prep",)
    assert [c.op for c in spec.constraints] == ["in", "exists", ">="]
    assert spec.constraints[0].value == ("x86_64", "aarch64") and spec.constraints[1].value is None
    assert spec.affinities[0].weight == -20
    assert (spec.placement.max_price, spec.placement.min_trust, spec.placement.strategy) == (500, 0.5, "spread")
    assert (spec.payment.mode, spec.payment.budget) == ("pay_before", 1000)
    assert (spec.retry.attempts, spec.retry.backoff) == (3, 60)
    assert spec.deadline == 7200 and spec.deadline_at(1000.0) == 8200.0
    assert spec.labels == {"team": "infra"}
    assert parse_job(spec.to_dict()) == spec
    assert parse_job(json.dumps(spec.to_dict()), fmt="json") == spec
    assert parse_job(yaml.safe_dump(spec.to_dict()), fmt="yaml") == spec


def test_every_error_is_listed_with_its_path_and_expectation() -> None:
    errors = errors_of(
        {
            "name": "",
            "type": "cron",
            "count": 0,
            "tasks": [
                {
                    "name": "a b",
                    "engine": "docker",
                    "resources": {"cpu": "lots", "memory": "lots", "disk": -1, "gpu": {"count": 0, "model": "x"}},
                    "timeout": "soon",
                    "network": "yes",
                    "env": {"1BAD": "x", "OK": True},
                },
            ],
            "placement": {"min_trust": 2, "strategy": "random"},
            "payment": {"mode": "later", "budget": -5},
            "retry": {"attempts": 1000},
            "deadline": "whenever",
        }
    )
    by_path = {e["path"]: e for e in errors}
    expected_paths = {
        "name",
        "type",
        "count",
        "tasks[0].name",
        "tasks[0].image",
        "tasks[0].resources.cpu",
        "tasks[0].resources.memory",
        "tasks[0].resources.disk",
        "tasks[0].resources.gpu.count",
        "tasks[0].timeout",
        "tasks[0].network",
        "tasks[0].env.1BAD",
        "tasks[0].env.OK",
        "placement.min_trust",
        "placement.strategy",
        "payment.mode",
        "payment.budget",
        "retry.attempts",
        "deadline",
    }
    assert expected_paths <= set(by_path), expected_paths - set(by_path)
    assert by_path["tasks[0].resources.memory"]["got"] == "lots"
    assert "512Mi" in by_path["tasks[0].resources.memory"]["expected"]
    assert "batch" in by_path["type"]["expected"] and by_path["type"]["got"] == "cron"
    assert all({"path", "expected", "got"} <= set(e) for e in errors)
    json.dumps(errors)  # details travel over the wire


def test_error_message_summarizes_and_counts() -> None:
    with pytest.raises(AgoraError) as info:
        parse_job(with_task(module="m", resources={"memory": "lots"}))
    assert "tasks[0].resources.memory" in info.value.message and "1 error" in info.value.message
    assert info.value.http_status == 400


def test_unknown_fields_are_errors_with_suggestions() -> None:
    errors = errors_of(
        {"name": "j", "tpye": "batch", "tasks": [{"name": "t", "module": "m", "resources": {"memroy": "1Gi"}}]}
    )
    by_path = {e["path"]: e for e in errors}
    assert by_path["tpye"]["did_you_mean"] == "type"
    assert "did you mean 'type'" in by_path["tpye"]["expected"]
    assert by_path["tasks[0].resources.memroy"]["did_you_mean"] == "memory"
    far = errors_of({"name": "j", "tasks": [{"name": "t", "module": "m"}], "zzzzzz": 1})
    assert far[0]["path"] == "zzzzzz" and "did_you_mean" not in far[0]


@pytest.mark.parametrize(
    ("task", "path"),
    [
        ({"engine": "wasm"}, "tasks[0].module"),
        ({"engine": "process"}, "tasks[0].command"),
        ({"engine": "process", "command": []}, "tasks[0].command"),
        ({"engine": "docker"}, "tasks[0].image"),
        ({"engine": "firecracker"}, "tasks[0].image"),
        ({"engine": "wasm", "module": "m", "image": "busybox"}, "tasks[0].image"),
        ({"engine": "wasm", "module": "m", "command": ["x"]}, "tasks[0].command"),
        ({"engine": "process", "command": ["x"], "allow_pull": True}, "tasks[0].allow_pull"),
        ({"engine": "docker", "image": "busybox", "module": "m"}, "tasks[0].module"),
        ({"engine": "docker", "image": "bad image"}, "tasks[0].image"),
        ({"engine": "podman", "image": "x"}, "tasks[0].engine"),
        ({"module": "ftp://example.org/m.wasm"}, "tasks[0].module"),
        ({"module": "sha256:1234"}, "tasks[0].module"),
        ({"module": "cid:notacid"}, "tasks[0].module"),
        ({"module": 3}, "tasks[0].module"),
    ],
)
def test_engine_rules(task: dict[str, Any], path: str) -> None:
    assert path in paths(errors_of(with_task(**task)))


def test_module_references() -> None:
    digest = "ab" * 32
    for module in ("hello.wasm", "https://example.org/m.wasm", f"sha256:{digest}"):
        assert parse_job(with_task(module=module)).tasks[0].module == module
    from agora.codec import CID

    cid = str(CID.of(b"module", codec=0x55))
    assert parse_job(with_task(module=f"cid:{cid}")).tasks[0].module == f"cid:{cid}"


@pytest.mark.parametrize(
    ("inputs", "path"),
    [
        ([{"name": "x"}], "tasks[0].inputs[0].source"),
        ([{"name": "x", "source": {"type": "ftp"}}], "tasks[0].inputs[0].source.type"),
        ([{"name": "x", "source": {"type": "http", "url": "file:///etc/passwd"}}], "tasks[0].inputs[0].source.url"),
        ([{"name": "x", "source": {"type": "s3", "bucket": "B!"}}], "tasks[0].inputs[0].source.bucket"),
        ([{"name": "x", "source": {"type": "s3", "bucket": "ok-bucket", "url": "u"}}], "tasks[0].inputs[0].source.url"),
        ([{"name": "x", "source": {"type": "inline"}}], "tasks[0].inputs[0].source.content"),
        (
            [{"name": "x", "source": {"type": "inline", "content": "!!", "encoding": "base64"}}],
            "tasks[0].inputs[0].source.content",
        ),
        ([{"name": "x", "source": {"type": "inline", "content": "a" * 70000}}], "tasks[0].inputs[0].source.content"),
        ([{"name": "x", "source": {"type": "hub"}}], "tasks[0].inputs[0].source.name"),
        ([{"name": "x", "source": {"type": "local", "path": "p"}, "path": "rel"}], "tasks[0].inputs[0].path"),
        ([{"name": "x", "source": {"type": "local", "path": "p"}, "path": "/a/../etc"}], "tasks[0].inputs[0].path"),
        ([{"name": "x", "source": {"type": "local", "path": "p"}, "sha256": "zz"}], "tasks[0].inputs[0].sha256"),
        (
            [
                {"name": "x", "source": {"type": "local", "path": "p"}},
                {"name": "x", "source": {"type": "local", "path": "q"}},
            ],
            "tasks[0].inputs[1].name",
        ),
    ],
)
def test_input_errors(inputs: list[Any], path: str) -> None:
    assert path in paths(errors_of(with_task(module="m", inputs=inputs)))


def test_output_and_mount_errors() -> None:
    errs = paths(
        errors_of(
            with_task(
                module="m",
                inputs=[{"name": "i", "source": {"type": "local", "path": "p"}, "path": "/inputs/data"}],
                outputs=[
                    {"name": "o", "path": "/outputs/data"},
                    {"name": "o2", "path": "/outputs/data"},
                    {"name": "p", "publish": {"type": "s3"}},
                    {"name": "q", "publish": {"type": "local", "path": "/x"}},
                ],
            )
        )
    )
    assert "tasks[0].outputs[1].path" in errs  # same mount as another output
    assert "tasks[0].outputs[2].publish.bucket" in errs
    assert "tasks[0].outputs[3].publish.path" in errs  # local publish takes no fields


def test_constraint_and_affinity_errors() -> None:
    errs = errors_of(
        {
            **MINIMAL,
            "constraints": [
                {"key": "arch", "op": "~=", "value": "x"},
                {"key": "arch", "op": "in", "value": "x86_64"},
                {"key": "labels.gpu", "op": "exists", "value": "yes"},
                {"key": "", "value": "x"},
                {"key": "memory_bytes", "op": ">=", "value": True},
                {"key": "arch", "value": "x", "weight": 3},
                {"key": "trust", "op": ">=", "value": float("nan")},
                {"key": "arch", "op": "in", "value": ["x", float("inf")]},
            ],
            "affinities": [{"key": "location", "value": "eu", "weight": 0}, {"key": "x", "value": 1, "weight": 500}],
        }
    )
    assert set(paths(errs)) >= {
        "constraints[0].op",
        "constraints[1].value",
        "constraints[2].value",
        "constraints[3].key",
        "constraints[4].value",
        "constraints[5].weight",
        "constraints[6].value",
        "constraints[7].value",
        "affinities[0].weight",
        "affinities[1].weight",
    }


def test_cross_field_checks() -> None:
    errs = paths(errors_of({**MINIMAL, "placement": {"max_price": 10}, "payment": {"budget": 5}}))
    assert errs == ["placement.max_price"]
    errs = paths(
        errors_of(
            {"name": "j", "tasks": [{"name": "a", "module": "m"}, {"name": "a", "module": "m", "depends_on": ["zz"]}]}
        )
    )
    assert errs == ["tasks[1].name", "tasks[1].depends_on[0]"]
    assert paths(errors_of({"name": "j", "tasks": []})) == ["tasks"]
    assert paths(errors_of({"name": "j"})) == ["tasks"]


def test_timeouts_per_job_type() -> None:
    assert parse_job({**MINIMAL, "type": "service"}).tasks[0].timeout is None
    svc = {"name": "s", "type": "service", "tasks": [{"name": "t", "module": "m", "timeout": None}]}
    assert parse_job(svc).tasks[0].timeout is None
    [batch_null] = errors_of(with_task(module="m", timeout=None))
    assert batch_null["path"] == "tasks[0].timeout" and "only with type: service" in batch_null["expected"]
    assert "tasks[0].timeout" in paths(errors_of(with_task(module="m", timeout="1500ms")))
    assert parse_job(with_task(module="m", timeout="1h30m")).tasks[0].timeout == 5400


def test_deadline_forms() -> None:
    assert parse_job({**MINIMAL, "deadline": 600}).deadline == 600
    absolute = parse_job({**MINIMAL, "deadline": "2030-01-01T01:00:00+01:00"})
    assert absolute.deadline == "2030-01-01T00:00:00Z"
    assert absolute.deadline_at(0.0) == 1893456000.0
    from_yaml = parse_job("name: j\ntasks: [{name: t, module: m}]\ndeadline: 2030-01-01T00:00:00Z\n")
    assert from_yaml.deadline == "2030-01-01T00:00:00Z"
    for bad in ("2030-01-01T00:00:00", "2030-01-01", 0, "tomorrow", [1]):
        assert paths(errors_of({**MINIMAL, "deadline": bad})) == ["deadline"], bad
    assert paths(errors_of("name: j\ntasks: [{name: t, module: m}]\ndeadline: 2030-01-01\n")) == ["deadline"]


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("name: [unclosed", None),
        ("{not json", "json"),
        ("!!python/object/apply:os.system ['true']", "yaml"),
        ("a: 1\n---\nb: 2\n", "yaml"),
        (b"\xff\xfe", None),
        ("just a string", None),
        ("- a list", None),
    ],
)
def test_bad_documents(text: str | bytes, fmt: Any) -> None:
    errors = errors_of(text, fmt=fmt)
    assert errors[0]["path"] in ("(document)", "(root)")


def test_unknown_format_is_invalid_argument() -> None:
    with pytest.raises(AgoraError) as info:
        parse_job("name: x", fmt="toml")  # type: ignore[arg-type]
    assert info.value.code == "invalid_argument"


def test_json_is_detected_without_fmt() -> None:
    assert parse_job(json.dumps(MINIMAL)).name == "hello"


def test_load_job_file(tmp_path: Path) -> None:
    p = tmp_path / "job.json"
    p.write_text(json.dumps(MINIMAL))
    assert load_job_file(p).name == "hello"
    with pytest.raises(AgoraError) as info:
        load_job_file(tmp_path / "missing.yaml")
    assert info.value.code == "not_found"


@pytest.mark.parametrize("name", ["hello-wasm.yaml", "hello-process.yaml", "hello-verified.yaml"])
def test_examples_validate(name: str) -> None:
    spec = load_job_file(ROOT / "examples" / "jobs" / name)
    assert isinstance(spec, JobSpec)
    assert parse_job(spec.to_dict()) == spec


def test_example_wasm_points_at_the_example_module() -> None:
    spec = load_job_file(ROOT / "examples" / "jobs" / "hello-wasm.yaml")
    assert spec.tasks[0].engine == "wasm" and spec.tasks[0].module == "examples/wasm/hello.wat"
    assert (ROOT / "examples" / "wasm" / "hello.wat").is_file()
    proc = load_job_file(ROOT / "examples" / "jobs" / "hello-process.yaml")
    assert [t.name for t in proc.tasks] == ["greet", "shout"] and proc.tasks[1].depends_on == ("greet",)


def test_wrong_shapes_anywhere_give_field_errors_not_crashes() -> None:
    """Every value of a full spec replaced by every wrong shape: a spec or a job_spec_invalid, never a crash."""
    base = load_job_file(ROOT / "examples" / "jobs" / "hello-process.yaml").to_dict()

    def walk(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        out = [path]
        if isinstance(node, dict):
            for k, v in node.items():
                out += walk(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                out += walk(v, (*path, i))
        return out

    refused = 0
    for path in walk(base)[1:]:
        for junk in (None, True, -1, 0.5, "", "x", [], [1], {}, {"a": 1}):
            doc = json.loads(json.dumps(base))
            node = doc
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = junk
            try:
                parse_job(doc)
            except AgoraError as exc:
                assert exc.code in ("job_spec_invalid", "workflow_cycle"), exc
                assert all(e["path"] and e["expected"] for e in exc.details.get("errors", []))
                refused += 1
    assert refused > 100


def test_the_full_example_in_the_docs_is_valid() -> None:
    text = (ROOT / "docs" / "jobspec.md").read_text()
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    spec = parse_job(example)
    assert [t.name for t in spec.tasks] == ["fetch", "crunch", "notify"]
    assert spec.tasks[1].resources.gpu.vram == 40 * GIB and spec.deadline == "2030-01-01T06:00:00Z"


def test_yaml_flow_mapping_is_not_mistaken_for_json() -> None:
    spec = parse_job("{name: flow, tasks: [{name: t, module: m.wasm, env: {my.var: x}}]}")
    assert spec.name == "flow" and spec.tasks[0].env == {"my.var": "x"}
