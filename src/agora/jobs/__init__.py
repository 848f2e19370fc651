"""Job specs: parsing and validation, workflow DAGs, and converters from other schedulers.

- `parse.py`: `parse_job`, `load_job_file`, `spec_from_data` (top level of the spec).
- `parse_task.py`: one task (engine rules, resources, inputs, outputs).
- `problems.py`, `readers.py`: error collection and typed field readers (every error in one pass).
- `quantities.py`: bytes / CPU / duration units -> integers.
- `taskcheck.py`: `validate_task` / `parse_constraints` (the provider's checks, by the requester's rules)
  and `start_context` (the job fields a start request carries).
- `constraints.py`: a job's hard constraints against a node's facts (`check_constraints`,
  `require_constraints`, `node_facts`, `announced_facts`).
- `validate.py`: `validate` / `validate_file` -> `(spec, warnings)`; `spec_warnings` names the fields
  that are accepted but have no effect yet (`NO_EFFECT_YET`).
- `workflow.py`: `depends_on` DAG: cycle detection, `topological_order`, `stages`.
- `convert/`: Kubernetes Job/Pod, Nomad (HCL and JSON), Bacalhau -> `JobSpec` with warnings.

The data classes live in `agora.models.job`; they are re-exported here for convenience.
"""

from agora.jobs.constraints import (
    announced_facts,
    check_constraints,
    node_facts,
    require_constraints,
    require_start_constraints,
)
from agora.jobs.convert import ConvertResult, convert
from agora.jobs.parse import load_job_file, parse_job, spec_from_data
from agora.jobs.quantities import format_bytes, parse_bytes, parse_cpu, parse_duration
from agora.jobs.taskcheck import parse_constraints, start_context, validate_task
from agora.jobs.validate import NO_EFFECT_YET, spec_warnings, validate, validate_file
from agora.jobs.workflow import check_acyclic, dependency_graph, dependents_of, find_cycle, stages, topological_order
from agora.models.job import (
    Affinity,
    Constraint,
    Gpu,
    InputSpec,
    JobSpec,
    OutputSpec,
    Payment,
    Placement,
    Publish,
    Resources,
    RetryPolicy,
    Source,
    TaskSpec,
)

__all__ = [
    "NO_EFFECT_YET",
    "Affinity",
    "Constraint",
    "ConvertResult",
    "Gpu",
    "InputSpec",
    "JobSpec",
    "OutputSpec",
    "Payment",
    "Placement",
    "Publish",
    "Resources",
    "RetryPolicy",
    "Source",
    "TaskSpec",
    "announced_facts",
    "check_acyclic",
    "check_constraints",
    "convert",
    "dependency_graph",
    "dependents_of",
    "find_cycle",
    "format_bytes",
    "load_job_file",
    "node_facts",
    "parse_bytes",
    "parse_constraints",
    "parse_cpu",
    "parse_duration",
    "parse_job",
    "require_constraints",
    "require_start_constraints",
    "spec_from_data",
    "spec_warnings",
    "stages",
    "start_context",
    "topological_order",
    "validate",
    "validate_file",
    "validate_task",
]
