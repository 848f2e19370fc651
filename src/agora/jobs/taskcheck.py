"""One task as a provider receives it, validated by exactly the rules the requester applied.

A start request carries one task (`TaskSpec.to_dict`) and, beside it, what the provider must know of
the job to judge that task the same way: its type (a `service` task may have `timeout: null`) and its
hard constraints. `start_context(spec)` writes those fields on the requester's side;
`validate_task(task, job_type=)` and `parse_constraints(raw)` read them on the provider's side with
the very functions `parse_job` uses (`parse_task`, the constraint reader), so a spec the requester
accepts can never fail on a provider for a spec reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agora.errors import AgoraError
from agora.jobs.parse import read_matches
from agora.jobs.parse_task import parse_task
from agora.jobs.problems import Problems
from agora.jobs.readers import read_choice
from agora.models.job import JOB_TYPES, Constraint, JobSpec, TaskSpec

TASK_PATH = "tasks[0]"


def start_context(spec: JobSpec) -> dict[str, Any]:
    """The job's fields a start request carries beside the task (`job_type`, `constraints`)."""
    return {"job_type": spec.type, "constraints": [c.to_dict() for c in spec.constraints]}


def validate_task(task: Any, *, job_type: Any = "batch") -> TaskSpec:
    """One task dict of a job of type `job_type`, checked as `parse_job` checks it (field paths read
    `tasks[0].<field>`); `depends_on` is dropped: the task's siblings are the requester's business.
    Raises `job_spec_invalid` listing every problem. A start request from a requester that does not
    send `job_type` is a batch task, as before the field existed."""
    if not isinstance(task, Mapping):
        raise AgoraError("job_spec_invalid", "the start request's `task` must be a task spec mapping")
    p = Problems()
    kind = read_choice(p, "type", "batch" if job_type is None else job_type, JOB_TYPES)
    data = {k: v for k, v in task.items() if k != "depends_on"}
    spec = parse_task(p, TASK_PATH, data, kind)
    p.raise_if_any()
    assert spec is not None  # parse_task returns None only after recording a problem
    return spec


def parse_constraints(raw: Any) -> tuple[Constraint, ...]:
    """A start request's `constraints` (absent: none), read by the job parser's own rules."""
    p = Problems()
    out = read_matches(p, "constraints", [] if raw is None else raw, weighted=False)
    p.raise_if_any()
    return tuple(out)


__all__ = ["TASK_PATH", "parse_constraints", "start_context", "validate_task"]
