"""Nomad conversion: the API JSON format (own fixture), richer HCL, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agora.errors import AgoraError
from agora.jobs import convert
from agora.models.job import MIB

DATA = Path(__file__).parent / "data"

MULTI_GROUP = """
job "pipeline" {
  type = "batch"
  meta { owner = "ops" }
  affinity {
    attribute = "${meta.rack}"
    value     = "r2"
    weight    = -30
  }
  constraint {
    distinct_hosts = true
  }
  constraint {
    attribute = "${attr.cpu.arch}"
    operator  = "set_contains_any"
    value     = "amd64,arm64"
  }
  constraint {
    attribute = "${attr.kernel.name}"
    operator  = "regexp"
    value     = "lin.*"
  }
  constraint {
    attribute = "${attr.unique.hostname}"
    value     = "box"
  }
  group "prep" {
    count = 2
    task "setup" {
      driver = "exec"
      lifecycle { hook = "prestart" }
      config {
        command = "/bin/mkdir"
        args    = ["-p", "/alloc/data"]
      }
    }
    task "main" {
      driver = "raw_exec"
      config { command = "/usr/local/bin/prep" }
      env { LEVEL = "3" }
      resources {
        cpu    = 1500
        memory = 512
        device "nvidia/gpu/a100" { count = 2 }
        device "fpga" { count = 1 }
      }
      artifact {
        source      = "https://example.org/model.tar.gz"
        destination = "local/model/"
      }
      artifact {
        source = "git::https://example.org/repo"
      }
      template {
        data        = "port = {{ env \\"NOMAD_PORT_http\\" }}"
        destination = "local/app.toml"
      }
      kill_timeout = "30s"
    }
    task "cleanup" {
      driver = "exec"
      lifecycle { hook = "poststop" }
      config { command = "/bin/rm" }
    }
  }
  group "report" {
    count = 1
    restart {
      attempts = 5
      delay    = "30s"
      mode     = "delay"
    }
    reschedule {
      attempts  = 2
      unlimited = true
    }
    task "main" {
      driver = "podman"
      config {
        image   = "ghcr.io/example/report:${var.version}"
        command = "report"
      }
    }
  }
}
"""


def test_api_json_fixture() -> None:
    r = convert((DATA / "nomad-api-job.json").read_text(), "nomad")
    s = r.spec
    assert (s.name, s.type, s.count) == ("etl", "batch", 3)
    fetch, crunch = s.tasks
    assert fetch.engine == "process" and fetch.command == ("/usr/bin/curl",)
    assert fetch.args == ("-o", "/local/data.csv", "https://example.org/data.csv")
    assert fetch.resources.cpu == 250 and fetch.resources.memory == 128 * MIB and fetch.resources.disk == 500 * MIB
    assert fetch.inputs[0].source.params == {"url": "https://example.org/tool.bin"}
    assert fetch.inputs[0].path == "/inputs/local/bin/tool.bin"
    assert crunch.engine == "docker" and crunch.image == "python:3.12-slim"
    assert crunch.command == ("python",) and crunch.args == ("main.py", "--fast")  # entrypoint + command + args
    assert crunch.resources.cpu == 2000 and crunch.resources.memory == 2048 * MIB and crunch.resources.gpu.count == 1
    assert crunch.env == {"MODE": "batch"} and crunch.depends_on == ("fetch",)  # prestart hook
    assert crunch.inputs[0].source.params == {"content": "threshold = 3\n"}
    assert crunch.inputs[0].path == "/inputs/local/app.conf"
    assert [c.to_dict() for c in s.constraints] == [
        {"key": "arch", "op": "==", "value": "x86_64"},
        {"key": "os", "op": "==", "value": "linux"},
    ]
    assert [a.to_dict() for a in s.affinities] == [{"key": "labels.rack", "op": "==", "value": "r1", "weight": 40}]
    assert s.labels == {"team": "data"}
    assert (s.retry.attempts, s.retry.backoff) == (3, 20)  # restart 2 + reschedule 1, delay 20s
    w = "\n".join(r.warnings)
    for expected in (
        "Job.Constraints[1]: attribute '${attr.unique.hostname}' has no agora equivalent",
        'Job.TaskGroups["work"].Tasks["crunch"].Vault: not supported, ignored',
        'Job.TaskGroups["work"].Tasks["crunch"].Resources.MemoryMaxMB: not supported',
        'Job.TaskGroups["work"].Tasks["fetch"].KillTimeout: not supported',
        "Job.Periodic: not supported, ignored",
    ):
        assert expected in w, expected
    # server bookkeeping and default-valued fields are not noise
    assert not any(x in w for x in ("CreateIndex", "Status", "Priority", "Region", "IOPS", "Stop"))


def test_bare_api_job_object_is_accepted() -> None:
    doc = json.loads((DATA / "nomad-api-job.json").read_text())["Job"]
    assert convert(json.dumps(doc), "nomad", fmt="json").spec.name == "etl"


def test_multi_group_hcl() -> None:
    r = convert(MULTI_GROUP, "nomad", fmt="hcl")
    s = r.spec
    names = [t.name for t in s.tasks]
    assert names == ["prep.setup", "prep.main", "prep.cleanup", "report.main"]
    setup, main, cleanup, report = s.tasks
    assert setup.engine == "process" and setup.command == ("/bin/mkdir",) and setup.args == ("-p", "/alloc/data")
    assert main.depends_on == ("prep.setup",) and cleanup.depends_on == ("prep.main",) and report.depends_on == ()
    assert main.resources.cpu == 1500 and main.resources.memory == 512 * MIB
    assert (main.resources.gpu.count, main.resources.gpu.model) == (2, "a100")
    assert main.env == {"LEVEL": "3"}
    assert [i.name for i in main.inputs] == ["model.tar.gz", "app.toml"]
    assert main.inputs[0].path == "/inputs/local/model/model.tar.gz"
    assert main.inputs[1].source.type == "inline" and main.inputs[1].path == "/inputs/local/app.toml"
    assert report.engine == "docker" and report.command == ("report",)
    assert s.count == 2 and s.placement.strategy == "spread"
    assert s.retry.attempts == 7 and s.retry.backoff == 30  # report: restart 5 + reschedule 2
    assert [c.to_dict() for c in s.constraints] == [{"key": "arch", "op": "in", "value": ["x86_64", "aarch64"]}]
    assert [a.to_dict() for a in s.affinities] == [{"key": "labels.rack", "op": "==", "value": "r2", "weight": -30}]
    assert s.labels == {"owner": "ops"}
    w = "\n".join(r.warnings)
    for expected in (
        "constraint[2]: operator 'regexp' has no agora equivalent",
        "constraint[3]: attribute '${attr.unique.hostname}' has no agora equivalent",
        "distinct_hosts becomes placement strategy spread",
        'group["prep"].task["main"].resources.device["fpga"]: not supported, ignored',
        "archives are not unpacked",
        "artifact source 'git::https://example.org/repo': only http(s) URLs are mapped",
        "template syntax is not rendered",
        'group["prep"].task["main"].kill_timeout: not supported, ignored',
        'group["report"].restart.mode: mode delay',
        'group["report"].reschedule: unlimited rescheduling is not supported',
        'group["report"].task["main"].driver: podman runs as agora\'s docker engine',
        "${...} interpolation is not evaluated",
        "groups have different counts [2, 1]",
    ):
        assert expected in w, expected


def test_unsupported_driver() -> None:
    hcl = 'job "j" {\n group "g" {\n task "t" {\n driver = "java"\n config { jar_path = "a.jar" }\n }\n }\n}\n'
    with pytest.raises(AgoraError) as info:
        convert(hcl, "nomad")
    assert info.value.code == "convert_unsupported_kind" and "java" in info.value.message
    assert "docker" in info.value.hint


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ('job "x" {\n  group = \n', None),
        ('group "g" {}\n', "hcl"),
        ('job "a" {\n group "g" {}\n}\njob "b" {\n group "g" {}\n}\n', None),
        ('job "a" {\n type = "batch"\n}\n', None),
        ('job "a" {\n type = "weird"\n group "g" {\n task "t" {\n driver = "exec"\n }\n }\n}\n', None),
        ('{"Job": {"Name": "x"}}', None),
        ("{not json", "json"),
        ("[1, 2]", "json"),
        (b"\xff", None),
    ],
)
def test_unparsable_inputs(text: str | bytes, fmt: str | None) -> None:
    with pytest.raises(AgoraError) as info:
        convert(text, "nomad", fmt=fmt)
    assert info.value.code == "convert_parse_failed"


def test_unknown_format_for_nomad() -> None:
    with pytest.raises(AgoraError) as info:
        convert('job "a" {}', "nomad", fmt="yaml")
    assert info.value.code == "invalid_argument"
