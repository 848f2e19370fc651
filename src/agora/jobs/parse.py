"""`parse_job`: YAML/JSON text or a dict -> a validated `JobSpec`, or one error listing every problem.

Order of checks: the document must parse; then every field is checked and all problems are raised
together as `job_spec_invalid`; only a spec without field errors is checked for dependency cycles
(`workflow_cycle`), since a cycle among misspelled tasks would only confuse.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from agora.errors import AgoraError
from agora.jobs.parse_task import parse_task
from agora.jobs.problems import Problems, child
from agora.jobs.quantities import parse_duration
from agora.jobs.readers import (
    LABEL_KEY_RE,
    read_choice,
    read_int,
    read_list,
    read_str_map,
)
from agora.jobs.workflow import check_acyclic
from agora.models.job import (
    CONSTRAINT_OPS,
    DEFAULT_BACKOFF_S,
    DEFAULT_RETRY_ON,
    JOB_TYPES,
    MAX_BIDS,
    MAX_REPLICAS,
    PAYMENT_MODES,
    RETRY_ON,
    STRATEGIES,
    Affinity,
    Constraint,
    ConstraintValue,
    JobSpec,
    Payment,
    Placement,
    RetryPolicy,
    TaskSpec,
    Verification,
)

Format = Literal["yaml", "json"]
JOB_FIELDS = (
    "name",
    "type",
    "count",
    "tasks",
    "constraints",
    "affinities",
    "placement",
    "payment",
    "retry",
    "deadline",
    "labels",
    "verification",
)
MAX_DOCUMENT = 1 << 20
MAX_COUNT = 10_000
DEFAULT_AFFINITY_WEIGHT = 50
_JOB_NAME_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,128}$")
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]{0,127}$")


def syntax_error(exc: Exception | str) -> tuple[str, int | None, int | None]:
    """(what is wrong, line, column) of a YAML or JSON syntax error; line and column are 1-based, None
    when the error has no position. A YAML message's own context and position are dropped from the
    text (they are in line/column), so a long message is never cut before the place it names."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        context = str(exc.context or "")
        if context and exc.context_mark is not None and exc.context_mark is not mark:
            context += f" (from line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
        parts = [context, str(exc.problem or "")]
        text = " ".join(p for p in parts if p).strip() or type(exc).__name__
        return text, (mark.line + 1 if mark else None), (mark.column + 1 if mark else None)
    if isinstance(exc, json.JSONDecodeError):
        return exc.msg, exc.lineno, exc.colno
    return str(exc).replace("\n", " ")[:300], None, None


def _invalid_document(what: str, exc: Exception | str) -> AgoraError:
    reason, line, column = syntax_error(exc)
    where = f"line {line}, column {column}: " if line is not None else ""
    error: dict[str, Any] = {"path": "(document)", "expected": f"valid {what}", "got": reason[:300]}
    if line is not None:
        error.update(line=line, column=column)
    # the catalog's hint ("Fix the fields listed in the details") fits a field error, not a syntax error
    at = f" at line {line}, column {column} (the mistake may be just before it)" if line is not None else ""
    hint = f"Fix the {what} syntax{at}."
    return AgoraError(
        "job_spec_invalid",
        f"the job spec is not valid {what}: {where}{reason[:300]}",
        hint=hint,
        details={"errors": [error]},
    )


def load_document(text: str | bytes, fmt: Format | None = None) -> Any:
    """Parse YAML (safe_load only: no object tags) or JSON; without `fmt`, JSON first when it looks like JSON."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _invalid_document("UTF-8 text", exc) from exc
    if len(text) > MAX_DOCUMENT:
        raise _invalid_document("job spec", f"larger than {MAX_DOCUMENT} bytes")
    json_error: ValueError | None = None
    if fmt is None:  # JSON is also YAML; try the stricter parser first for its clearer messages
        if text.lstrip().startswith("{"):
            try:
                return json.loads(text)
            except ValueError as exc:
                json_error = exc
        fmt = "yaml"
    if fmt == "json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise _invalid_document("JSON", exc) from exc
    if fmt != "yaml":
        raise AgoraError("invalid_argument", f"unknown format {fmt!r}: use yaml or json")
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        if json_error is not None:  # it looked like JSON and is neither: JSON's message is the clearer
            raise _invalid_document("JSON", json_error) from exc
        raise _invalid_document("YAML", exc) from exc


def _finite_scalar(value: Any) -> bool:
    return isinstance(value, (str, int)) or (isinstance(value, float) and math.isfinite(value))


def _match_value(p: Problems, path: str, op: str, m: Mapping[str, Any]) -> tuple[bool, ConstraintValue]:
    vpath = child(path, "value")
    value = m.get("value")
    if op == "exists":
        if value is not None:
            p.add(vpath, "no value: exists only checks that the key is present", value)
            return False, None
        return True, None
    scalar = _finite_scalar(value) and (op in ("==", "!=") or not isinstance(value, bool))
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value or not all(_finite_scalar(v) for v in value):
            p.add(vpath, f"a non-empty list of strings or numbers (op {op})", value)
            return False, None
        return True, tuple(value)
    if not scalar:
        what = "a string, number or boolean" if op in ("==", "!=") else "a number or a string like 8Gi"
        p.add(vpath, f"{what} (op {op})", value)
        return False, None
    return True, value


def read_matches(p: Problems, path: str, raw: Any, weighted: bool) -> list[Any]:
    out: list[Any] = []
    fields = ("key", "op", "value", "weight") if weighted else ("key", "op", "value")
    for i, item in enumerate(read_list(p, path, raw)):
        ipath = child(path, i)
        m = p.mapping(ipath, item, fields)
        if m is None:
            continue
        key = m.get("key")
        if not isinstance(key, str) or not _KEY_RE.match(key):
            p.add(child(ipath, "key"), "a key like arch, gpu.model or labels.region", key)
            key = None
        op = read_choice(p, child(ipath, "op"), m.get("op", "=="), CONSTRAINT_OPS)
        ok, value = _match_value(p, ipath, op, m) if op else (False, None)
        weight = None
        if weighted:
            weight = read_int(p, child(ipath, "weight"), m.get("weight", DEFAULT_AFFINITY_WEIGHT), lo=-100, hi=100)
            if weight == 0:
                p.add(child(ipath, "weight"), "a non-zero integer from -100 to 100", 0)
        if key is None or op is None or not ok:
            continue
        if weighted:
            out.append(Affinity(key=key, op=op, value=value, weight=weight or DEFAULT_AFFINITY_WEIGHT))
        else:
            out.append(Constraint(key=key, op=op, value=value))
    return out


def _placement(p: Problems, raw: Any) -> Placement:
    m = p.mapping("placement", raw, ("max_price", "min_trust", "strategy", "bids", "min_stake"))
    if m is None:
        return Placement()
    max_price = read_int(p, "placement.max_price", m["max_price"]) if "max_price" in m else None
    min_trust: float | None = None
    if "min_trust" in m:
        t = m["min_trust"]
        if isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t <= 1:
            min_trust = float(t)
        else:
            p.add("placement.min_trust", "a number from 0 to 1", t)
    strategy = read_choice(p, "placement.strategy", m.get("strategy", "balanced"), STRATEGIES)
    bids = read_int(p, "placement.bids", m["bids"], lo=1, hi=MAX_BIDS) if "bids" in m else None
    min_stake = read_int(p, "placement.min_stake", m["min_stake"], lo=1) if "min_stake" in m else None
    return Placement(
        max_price=max_price, min_trust=min_trust, strategy=strategy or "balanced", bids=bids, min_stake=min_stake
    )


def _verification(p: Problems, raw: Any, job_type: str | None) -> Verification | None:
    m = p.mapping("verification", raw, ("replicas", "agree"))
    if m is None:
        return None
    if "replicas" not in m:
        p.add("verification.replicas", f"an integer from 2 to {MAX_REPLICAS} (required)")
        return None
    replicas = read_int(p, "verification.replicas", m["replicas"], lo=2, hi=MAX_REPLICAS)
    if replicas is None:
        return None
    agree = read_int(p, "verification.agree", m["agree"], lo=1, hi=replicas) if "agree" in m else None
    if "agree" in m and agree is None:
        return None
    if job_type == "service":
        p.add("verification", "no verification block on a service job (it has no end whose outputs to compare)", raw)
        return None
    return Verification(replicas=replicas, agree=Verification.majority(replicas) if agree is None else agree)


def _payment(p: Problems, raw: Any) -> Payment:
    m = p.mapping("payment", raw, ("mode", "budget"))
    if m is None:
        return Payment()
    mode = read_choice(p, "payment.mode", m.get("mode", "pay_after"), PAYMENT_MODES)
    budget = read_int(p, "payment.budget", m["budget"]) if "budget" in m else None
    return Payment(mode=mode or "pay_after", budget=budget)


def _retry_on(p: Problems, raw: Any) -> tuple[str, ...]:
    expected = "a non-empty list of distinct failure classes: " + ", ".join(RETRY_ON)
    if not isinstance(raw, list) or not raw or len(set(map(str, raw))) != len(raw):
        p.add("retry.on", expected, raw)
        return DEFAULT_RETRY_ON
    for i, item in enumerate(raw):
        read_choice(p, f"retry.on[{i}]", item, RETRY_ON)
    return tuple(str(x) for x in raw)


def _retry(p: Problems, raw: Any) -> RetryPolicy:
    if isinstance(raw, Mapping) and True in raw and "on" not in raw:
        # YAML 1.1 reads a bare `on:` key as the boolean true (as GitHub Actions files know): it is `on`
        raw = {("on" if k is True else k): v for k, v in raw.items()}
    m = p.mapping("retry", raw, ("attempts", "backoff", "on"))
    if m is None:
        return RetryPolicy()
    attempts = read_int(p, "retry.attempts", m.get("attempts", 0), hi=100)
    backoff = p.check("retry.backoff", m.get("backoff", DEFAULT_BACKOFF_S), parse_duration, "seconds or like 30s")
    on = _retry_on(p, m["on"]) if "on" in m else DEFAULT_RETRY_ON
    return RetryPolicy(attempts=attempts or 0, backoff=DEFAULT_BACKOFF_S if backoff is None else backoff, on=on)


def _positive_seconds(p: Problems, raw: Any, expected: str) -> int | None:
    secs = p.check("deadline", raw, parse_duration, expected)
    if secs == 0:
        p.add("deadline", "more than 0 seconds", raw)
    return secs or None


def _deadline(p: Problems, raw: Any) -> int | str | None:
    expected = "seconds after submission (or like 2h) or an ISO-8601 time with a timezone"
    when: datetime | None = None
    if isinstance(raw, datetime):  # YAML turns unquoted timestamps into datetimes
        when = raw
    elif isinstance(raw, date):
        p.add("deadline", expected + " (a date alone has no time)", raw.isoformat())
        return None
    elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return _positive_seconds(p, raw, expected)
    elif isinstance(raw, str):
        try:
            parse_duration(raw)
            return _positive_seconds(p, raw, expected)
        except ValueError:
            pass
        try:
            when = datetime.fromisoformat(raw.strip())
        except ValueError:
            p.add("deadline", expected, raw)
            return None
    else:
        p.add("deadline", expected, raw)
        return None
    if when.tzinfo is None:
        p.add("deadline", "an ISO-8601 time with a timezone (e.g. 2030-01-01T12:00:00Z)", str(raw))
        return None
    text = when.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def _check_names(p: Problems, tasks: list[tuple[int, TaskSpec]]) -> None:
    names: dict[str, int] = {}
    for i, t in tasks:
        if t.name in names:
            p.add(f"tasks[{i}].name", f"a name not already used by tasks[{names[t.name]}]", t.name)
        else:
            names[t.name] = i
    known = ", ".join(names) or "none"
    for i, t in tasks:
        for j, dep in enumerate(t.depends_on):
            if dep not in names:
                p.add(f"tasks[{i}].depends_on[{j}]", f"the name of another task of this job ({known})", dep)


def spec_from_data(data: Any) -> JobSpec:
    """Validate an already-decoded document (what `parse_job` does after YAML/JSON)."""
    p = Problems()
    m = p.mapping("", data, JOB_FIELDS)
    if m is None:
        p.raise_if_any()
        raise AssertionError("unreachable")  # pragma: no cover
    name = m.get("name")
    if not isinstance(name, str) or not name.strip() or not _JOB_NAME_RE.match(name):
        p.add("name", "a job name of 1-128 printable characters", name)
    job_type = read_choice(p, "type", m.get("type", "batch"), JOB_TYPES)
    count = read_int(p, "count", m.get("count", 1), lo=1, hi=MAX_COUNT)
    raw_tasks = read_list(p, "tasks", m.get("tasks"))
    if "tasks" in m and isinstance(m["tasks"], list) and not m["tasks"]:
        p.add("tasks", "at least one task", [])
    parsed = [(i, parse_task(p, f"tasks[{i}]", raw, job_type)) for i, raw in enumerate(raw_tasks)]
    tasks = [(i, t) for i, t in parsed if t is not None]
    _check_names(p, tasks)
    constraints = read_matches(p, "constraints", m.get("constraints", []), weighted=False)
    affinities = read_matches(p, "affinities", m.get("affinities", []), weighted=True)
    placement = _placement(p, m.get("placement", {}))
    payment = _payment(p, m.get("payment", {}))
    if placement.max_price is not None and payment.budget is not None and placement.max_price > payment.budget:
        p.add("placement.max_price", f"at most payment.budget ({payment.budget})", placement.max_price)
    retry = _retry(p, m.get("retry", {}))
    deadline = _deadline(p, m["deadline"]) if "deadline" in m else None
    labels = read_str_map(
        p, "labels", m.get("labels", {}), LABEL_KEY_RE, "a label key like team or app.kubernetes.io/name"
    )
    verification = _verification(p, m["verification"], job_type) if "verification" in m else None
    p.raise_if_any()
    spec = JobSpec(
        name=str(name),
        type=job_type or "batch",
        count=count or 1,
        tasks=tuple(t for _, t in tasks),
        constraints=tuple(constraints),
        affinities=tuple(affinities),
        placement=placement,
        payment=payment,
        retry=retry,
        deadline=deadline,
        labels=labels,
        verification=verification,
    )
    check_acyclic(spec)
    return spec


def parse_job(source: str | bytes | Mapping[str, Any], *, fmt: Format | None = None) -> JobSpec:
    """A validated `JobSpec` from YAML/JSON text or a decoded mapping (raises `job_spec_invalid`)."""
    data = source if isinstance(source, Mapping) else load_document(source, fmt)
    return spec_from_data(data)


def load_job_file(path: str | Path) -> JobSpec:
    """Read and parse a spec file (.json is JSON, anything else YAML). Blocking: async callers use a thread."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise AgoraError("not_found", f"cannot read job file {str(p)!r}: {exc.strerror}") from exc
    return parse_job(data, fmt="json" if p.suffix.lower() == ".json" else "yaml")


__all__ = [
    "JOB_FIELDS",
    "Format",
    "load_document",
    "load_job_file",
    "parse_job",
    "read_matches",
    "spec_from_data",
    "syntax_error",
]
