"""A spec the requester accepts never fails on the provider for a spec reason.

For every job the repository knows (the shared converter fixtures, converted; the local converter data;
the examples; the full example of docs/jobspec.md), each task is checked the way a provider checks a
start request: the task as sent plus `start_context`, through `compute.taskprep.parse_task` and the
provider's own path mapping of inputs and outputs.
"""

from __future__ import annotations

import re

import pytest

from agora.compute.taskprep import INPUT_ROOTS, output_dirs, parse_task, relative_to_root
from agora.errors import AgoraError
from agora.jobs import JobSpec, convert, parse_constraints, parse_job, start_context, validate_task
from tests.support import FIXTURES, ROOT

JOBSPECS = FIXTURES / "jobspecs"
CONVERTED = sorted(p for p in JOBSPECS.glob("*/*") if p.is_file())
CONVERTED += [ROOT / "tests" / "unit" / "jobs" / "data" / "nomad-api-job.json"]
NATIVE = sorted((ROOT / "examples" / "jobs").glob("*.yaml"))


def _docs_example() -> str:
    text = (ROOT / "docs" / "jobspec.md").read_text()
    match = re.search(r"## A full example\n\n```yaml\n(.*?)```", text, re.S)
    assert match is not None
    return match.group(1)


def _accepted_specs() -> list[tuple[str, JobSpec]]:
    out: list[tuple[str, JobSpec]] = []
    for path in CONVERTED:
        source = path.parent.name if path.parent.parent == JOBSPECS else "nomad"
        result = convert(path.read_text(), source)
        out.append((f"{source}/{path.name}", parse_job(result.spec.to_dict())))
    out += [(f"examples/{p.name}", parse_job(p.read_text())) for p in NATIVE]
    out.append(("docs/jobspec.md", parse_job(_docs_example())))
    return out


SPECS = _accepted_specs()


def test_the_sample_holds_a_service_job_and_one_of_each_source() -> None:
    names = {n.split("/")[0] for n, _ in SPECS}
    assert {"kubernetes", "nomad", "bacalhau", "examples", "docs"} <= names
    assert any(s.type == "service" and any(t.timeout is None for t in s.tasks) for _, s in SPECS)


@pytest.mark.parametrize(("name", "spec"), SPECS, ids=[n for n, _ in SPECS])
def test_every_accepted_spec_passes_the_providers_checks(name: str, spec: JobSpec) -> None:
    context = start_context(spec)
    assert parse_constraints(context["constraints"]) == spec.constraints
    for task in spec.tasks:
        got = parse_task(task.to_dict(), spec.name, context["job_type"])  # what the provider runs
        assert got.to_dict() | {"depends_on": list(task.depends_on)} == task.to_dict(), name
        output_dirs(got)
        for inp in got.inputs:
            relative_to_root(inp.path, INPUT_ROOTS, f"input {inp.name!r}")


def test_a_task_is_judged_by_its_jobs_type() -> None:
    task = {"name": "svc", "module": "m.wasm", "timeout": None}
    assert validate_task(task, job_type="service").timeout is None
    for job_type in ("batch", None):  # None: a requester that does not send the type
        with pytest.raises(AgoraError) as err:
            validate_task(task, job_type=job_type)
        assert err.value.code == "job_spec_invalid"
        assert [e["path"] for e in err.value.details["errors"]] == ["tasks[0].timeout"]
    with pytest.raises(AgoraError) as err:
        validate_task(task, job_type="cron")
    assert "type" in [e["path"] for e in err.value.details["errors"]]


@pytest.mark.parametrize(
    ("field", "path", "expected"),
    [
        ("inputs", "/data", "tasks[0].inputs[0].path"),
        ("outputs", "/output_custom", "tasks[0].outputs[0].path"),
        ("outputs", "/inputs/x", "tasks[0].outputs[0].path"),
        ("inputs", "/outputs/x", "tasks[0].inputs[0].path"),
    ],
)
def test_a_mount_the_provider_cannot_map_is_refused_at_submit(field: str, path: str, expected: str) -> None:
    item = {"name": "x", "path": path}
    if field == "inputs":
        item["source"] = {"type": "inline", "content": "hi"}
    spec = {"name": "j", "tasks": [{"name": "t", "module": "m.wasm", field: [item]}]}
    with pytest.raises(AgoraError) as err:
        parse_job(spec)
    [problem] = err.value.details["errors"]
    assert problem["path"] == expected and problem["got"] == path
    assert "under /" in problem["expected"]


def test_mounts_under_either_root_spelling_are_accepted() -> None:
    spec = parse_job(
        {
            "name": "j",
            "tasks": [
                {
                    "name": "t",
                    "module": "m.wasm",
                    "inputs": [{"name": "a", "source": {"type": "inline", "content": "x"}, "path": "/work/inputs/a"}],
                    "outputs": [{"name": "o", "path": "/work/outputs/o"}, {"name": "p", "path": "/outputs"}],
                }
            ],
        }
    )
    assert [o.path for o in spec.tasks[0].outputs] == ["/work/outputs/o", "/outputs"]
