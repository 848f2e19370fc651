"""Bacalhau conversion beyond the shared fixtures: wasm, inputs of every kind, publishers, units."""

from __future__ import annotations

import base64
import json

import pytest

from agora.errors import AgoraError
from agora.jobs import convert
from agora.models.job import GIB

RICH = """
Name: rich
Type: ops
Count: 4
Namespace: research
Priority: 5
Labels: {project: demo}
Meta: {bacalhau.org/requester: x}
Constraints:
  - {Key: Architecture, Operator: "=", Values: [arm64]}
  - {Key: zone, Operator: in, Values: [a, b]}
  - {Key: cores, Operator: gt, Values: ["3"]}
  - {Key: tainted, Operator: "!"}
Tasks:
  - Name: crunch
    Engine:
      Type: wasm
      Params:
        EntryModule:
          Source: {Type: urlDownload, Params: {URL: "https://example.org/main.wasm"}}
        Entrypoint: main
        Parameters: [--fast, "1"]
        EnvironmentVariables: {MODE: fast}
        ImportModules: [{Source: {Type: ipfs}}]
    Env: {EXTRA: "1"}
    InputSources:
      - Alias: cfg
        Target: /cfg/app.json
        Source: {Type: inline, Params: {Data: "data:application/json;base64,eyJhIjoxfQ=="}}
      - Alias: plain
        Target: /cfg/plain.txt
        Source: {Type: inline, Params: {Data: "data:,hello%20world"}}
      - Target: /web
        Source: {Type: urlDownload, Params: {URL: "https://example.org/x.csv"}}
      - Alias: home
        Target: /home
        Source: {Type: localDirectory, Params: {SourcePath: /srv/data, ReadWrite: true}}
      - Alias: old
        Target: /ipfs
        Source: {Type: ipfs, Params: {CID: Qm}}
      - Alias: bucket
        Target: /bucket
        Source: {Type: s3, Params: {Bucket: my-bucket, Key: a/, Endpoint: "http://127.0.0.1:9000", Filter: ".*csv"}}
    Publisher:
      Type: s3
      Params: {Bucket: results, Key: "runs/{jobID}/", Region: us-east-1, Compress: true}
    ResultPaths:
      - {Name: out, Path: /outputs}
    Resources: {CPU: "0.5", Memory: 1Gb, Disk: 2GiB, GPU: "1"}
    Network: {Type: HTTP, Domains: [example.org]}
    Timeouts: {ExecutionTimeout: 120, QueueTimeout: 30, TotalTimeout: 900}
"""


def test_rich_job_maps_every_meaningful_field() -> None:
    r = convert(RICH, "bacalhau")
    s = r.spec
    assert (s.name, s.type, s.count, s.labels, s.deadline) == ("rich", "batch", 4, {"project": "demo"}, 900)
    (t,) = s.tasks
    assert t.engine == "wasm" and t.module == "https://example.org/main.wasm" and t.args == ("--fast", "1")
    assert t.env == {"MODE": "fast", "EXTRA": "1"}
    assert t.resources.cpu == 500 and t.resources.memory == 10**9 and t.resources.disk == 2 * GIB
    assert t.resources.gpu.count == 1
    assert t.timeout == 120 and t.network is True
    cfg, plain, web, home, bucket = t.inputs
    assert cfg.source.params == {"content": "eyJhIjoxfQ==", "encoding": "base64"} and cfg.path == "/inputs/cfg/app.json"
    assert base64.b64decode(str(cfg.source.params["content"])) == b'{"a":1}'
    assert plain.source.params == {"content": "hello world"}
    assert web.name == "input-2" and web.source.params == {"url": "https://example.org/x.csv"}
    assert home.source.params == {"path": "/srv/data"}
    assert bucket.source.params == {"bucket": "my-bucket", "key": "a/", "endpoint": "http://127.0.0.1:9000"}
    (out,) = t.outputs
    assert out.path == "/outputs" and out.publish.type == "s3"
    assert out.publish.params == {"bucket": "results", "key": "runs/{jobID}/", "region": "us-east-1"}
    assert [c.to_dict() for c in s.constraints] == [
        {"key": "arch", "op": "==", "value": "aarch64"},
        {"key": "labels.zone", "op": "in", "value": ["a", "b"]},
        {"key": "labels.cores", "op": ">=", "value": 4},
    ]
    w = "\n".join(r.warnings)
    for expected in (
        "Type: ops jobs run on every matching node",
        "Namespace: not supported, ignored",
        "Priority: not supported, ignored",
        "Meta: not supported, ignored",
        "Constraints[3]: constraint on 'tainted'",
        "Tasks[0].Engine.Params.Entrypoint: agora runs the WASI _start function",
        "Tasks[0].Engine.Params.ImportModules: not supported, ignored",
        "Tasks[0].InputSources[3].Source.Params: ReadWrite local inputs are mounted read-only",
        "Tasks[0].InputSources[4].Source: input source type 'ipfs' is not supported",
        "Tasks[0].InputSources[5].Source.Params.Filter: not supported, ignored",
        "Tasks[0].Publisher.Params.Compress: not supported, ignored",
        "Tasks[0].Network.Domains: domain allow-lists are not supported",
        "Tasks[0].Timeouts.QueueTimeout: not supported, ignored",
    ):
        assert expected in w, expected


def test_json_job_and_service_type() -> None:
    job = {
        "Name": "svc",
        "Type": "service",
        "Tasks": [
            {
                "Name": "web",
                "Engine": {"Type": "docker", "Params": {"Image": "nginx:1", "EnvironmentVariables": ["A=1", "B=x=y"]}},
                "Network": {"Type": "Full"},
            }
        ],
    }
    r = convert(json.dumps(job), "bacalhau")
    (t,) = r.spec.tasks
    assert r.spec.type == "service" and t.timeout is None and t.network is True
    assert t.env == {"A": "1", "B": "x=y"} and t.command == () and t.args == ()


def test_unsupported_engines_and_modules() -> None:
    job = "Name: x\nTasks:\n  - Name: t\n    Engine: {Type: python}\n"
    with pytest.raises(AgoraError) as info:
        convert(job, "bacalhau")
    assert info.value.code == "convert_unsupported_kind" and "python" in info.value.message
    wasm = (
        "Name: x\nTasks:\n  - Name: t\n    Engine:\n      Type: wasm\n      Params:\n"
        "        EntryModule: {Source: {Type: ipfs, Params: {CID: Qm}}}\n"
    )
    with pytest.raises(AgoraError) as info:
        convert(wasm, "bacalhau")
    assert info.value.code == "convert_unsupported_kind" and "EntryModule" in info.value.message


@pytest.mark.parametrize(
    "text",
    [
        "Name: [unclosed",
        "",
        "Name: x\nTasks: []\n",
        "Name: x\nType: weird\nTasks: [{Name: t, Engine: {Type: noop}}]\n",
        "- a\n- b\n",
        "Name: a\n---\nName: b\n",
    ],
)
def test_unparsable_inputs(text: str) -> None:
    with pytest.raises(AgoraError) as info:
        convert(text, "bacalhau")
    assert info.value.code == "convert_parse_failed"


def test_unreadable_quantities_become_warnings() -> None:
    job = "Name: x\nTasks:\n  - Name: t\n    Engine: {Type: noop}\n    Resources: {Memory: plenty, CPU: 2}\n"
    r = convert(job, "bacalhau")
    assert r.spec.tasks[0].resources.cpu == 2000
    assert any(w.startswith("Tasks[0].Resources.Memory: quantity 'plenty' could not be read") for w in r.warnings)
