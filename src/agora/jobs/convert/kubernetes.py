"""Kubernetes Job / Pod -> agora job.

Mapping (see docs/jobspec.md for the table): each container becomes a docker task; init containers
become tasks that the main containers `depends_on`, in order; requests/limits become resources (the
limit wins when both are set, because agora reserves and caps with one number); completions (or
parallelism) become `count`; backoffLimit becomes `retry.attempts` (Kubernetes' default 6 when unset)
with `retry.on` [task_failed, node_lost, transient]: a failed pod is retried whether its container
exited non-zero or its node went away;
activeDeadlineSeconds becomes the task timeout; nodeSelector and required node affinity become
constraints, preferred node affinity becomes weighted affinities.
"""

from __future__ import annotations

from typing import Any

from agora.errors import AgoraError
from agora.jobs.convert.common import (
    ConvertResult,
    Fields,
    Warnings,
    finish_spec,
    join,
    load_yaml_or_json,
    parse_failed,
    slug,
    str_list,
    str_map,
    unique_names,
)
from agora.jobs.quantities import parse_bytes, parse_cpu
from agora.models.capability import normalize_arch

K8S_DEFAULT_BACKOFF_LIMIT = 6
K8S_BACKOFF_S = 10  # the first delay of Kubernetes' exponential pod backoff
# what a failed pod is in agora: backoffLimit counts container failures and lost nodes alike
POD_FAILURES = ("task_failed", "node_lost", "transient")
_GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu", "gpu.intel.com/i915")
_NODE_KEYS = {
    "kubernetes.io/arch": "arch",
    "beta.kubernetes.io/arch": "arch",
    "kubernetes.io/os": "os",
    "beta.kubernetes.io/os": "os",
    "topology.kubernetes.io/region": "location",
}
# Pod fields that API dumps always carry and that mean nothing to agora.
_POD_SILENT = ("terminationGracePeriodSeconds", "dnsPolicy", "schedulerName", "enableServiceLinks")
_CONTAINER_SILENT = ("terminationMessagePath", "terminationMessagePolicy")


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


def _node_key(key: str) -> str:
    return _NODE_KEYS.get(key, f"labels.{key}")


def _node_value(key: str, value: str) -> str:
    return normalize_arch(value) if _node_key(key) == "arch" else value


def _expression(f: Fields, warn: Warnings) -> dict[str, Any] | None:
    """One nodeSelectorRequirement -> an agora {key, op, value}, or None with a warning."""
    key = str(f.take("key") or "")
    op = f.take("operator")
    values = [_node_value(key, str(v)) for v in str_list(f.take("values"))]
    f.finish()
    agora_key = _node_key(key)
    if op == "In" and values:
        return (
            {"key": agora_key, "op": "==", "value": values[0]}
            if len(values) == 1
            else {
                "key": agora_key,
                "op": "in",
                "value": values,
            }
        )
    if op == "NotIn" and values:
        return (
            {"key": agora_key, "op": "!=", "value": values[0]}
            if len(values) == 1
            else {
                "key": agora_key,
                "op": "not_in",
                "value": values,
            }
        )
    if op == "Exists":
        return {"key": agora_key, "op": "exists"}
    if op in ("Gt", "Lt") and len(values) == 1 and values[0].lstrip("-").isdigit():
        n = int(values[0])
        return (
            {"key": agora_key, "op": ">=", "value": n + 1}
            if op == "Gt"
            else {"key": agora_key, "op": "<=", "value": n - 1}
        )
    warn.add(f.path, f"operator {op} on {key!r} has no agora equivalent, ignored")
    return None


def _node_affinity(f: Fields, warn: Warnings, constraints: list[Any], affinities: list[Any]) -> None:
    required = f.sub("requiredDuringSchedulingIgnoredDuringExecution")
    terms = list(required.items("nodeSelectorTerms"))
    for i, term in terms:
        if i > 0:
            warn.add(term.path, "alternative node selector terms (OR) are not supported; only the first is used")
            term.ignore("matchExpressions", "matchFields")
            continue
        for _, expr in term.items("matchExpressions"):
            if (c := _expression(expr, warn)) is not None:
                constraints.append(c)
        term.finish()
    required.finish()
    for _, pref in f.items("preferredDuringSchedulingIgnoredDuringExecution"):
        weight = pref.take("weight")
        preference = pref.sub("preference")
        for _, expr in preference.items("matchExpressions"):
            if (a := _expression(expr, warn)) is not None:
                w = weight if isinstance(weight, int) and not isinstance(weight, bool) else 1
                affinities.append({**a, "weight": max(1, min(100, w))})
        preference.finish()
        pref.finish()
    f.finish()


def _resources(f: Fields, warn: Warnings) -> dict[str, Any]:
    requests, limits = f.sub("requests"), f.sub("limits")
    out: dict[str, Any] = {}
    gpu = 0
    for key in sorted(set(requests.data) | set(limits.data)):
        req, lim = requests.take(key), limits.take(key)
        value = lim if lim is not None else req
        if req is not None and lim is not None and str(req) != str(lim):
            warn.add(
                join(f.path, key),
                f"requests ({req}) and limits ({lim}) differ; agora reserves and caps at the limit",
            )
        path = join(f.path, f"limits.{key}" if lim is not None else f"requests.{key}")
        try:
            if key == "cpu":
                out["cpu"] = f"{parse_cpu(str(value))}m"
            elif key == "memory":
                out["memory"] = parse_bytes(str(value))
            elif key == "ephemeral-storage":
                out["disk"] = parse_bytes(str(value))
            elif key in _GPU_RESOURCES:
                gpu = max(gpu, int(str(value)))
            else:
                warn.ignored(path)
        except ValueError:
            warn.add(path, f"quantity {value!r} could not be read, the agora default applies")
    if gpu:
        out["gpu"] = {"count": gpu}
    f.finish()
    return out


def _container(f: Fields, warn: Warnings, network: list[bool]) -> dict[str, Any]:
    task: dict[str, Any] = {"name": slug(f.take("name"), "main"), "engine": "docker"}
    image = f.take("image")
    if image is not None:
        task["image"] = str(image)
    command, args = str_list(f.take("command")), str_list(f.take("args"))
    if command:
        task["command"] = command
    if args:
        task["args"] = args
    if any("$(" in a for a in command + args):
        warn.add(f.path, "$(VAR) references in command/args are not expanded by agora")
    env: dict[str, str] = {}
    for _, e in f.items("env"):
        name = e.take("name")
        if e.has("valueFrom"):
            warn.add(e.path, f"valueFrom of {name} (secrets, config maps, field refs) not supported, ignored")
            e.ignore("valueFrom")
        elif name is not None:
            env[str(name)] = str(e.take("value", default=""))
        e.finish()
    if env:
        task["env"] = env
    task["resources"] = _resources(f.sub("resources"), warn)
    task["allow_pull"] = f.take("imagePullPolicy") != "Never"  # Kubernetes pulls missing images by default
    if f.has("ports"):
        network[0] = True
        warn.add(f.path_of("ports"), "ports are not published; the task gets network access (network: true)")
        f.ignore("ports")
    f.ignore(*_CONTAINER_SILENT)
    f.finish()
    return task


def _pod(f: Fields, warn: Warnings, kind: str) -> dict[str, Any]:
    """Pod spec -> {tasks, constraints, affinities, restart, timeout}."""
    network = [False]
    mains = [_container(c, warn, network) for _, c in f.items("containers")]
    if not mains:
        raise AgoraError("convert_parse_failed", f"{f.path or 'spec'}.containers: a pod needs at least one container")
    inits: list[dict[str, Any]] = []
    for _, c in f.items("initContainers"):
        if c.take("restartPolicy") == "Always":
            warn.add(c.path, "sidecar init container (restartPolicy Always) runs as a task that must finish first")
        inits.append(_container(c, warn, network))
    if len(mains) > 1:
        warn.add(
            f.path_of("containers"),
            f"{len(mains)} containers become {len(mains)} agora tasks that may run on different nodes; "
            "they do not share localhost or volumes",
        )
    names = unique_names([t["name"] for t in inits + mains])
    for t, n in zip(inits + mains, names, strict=True):
        t["name"] = n
    for i, t in enumerate(inits[1:], start=1):
        t["depends_on"] = [names[i - 1]]
    for t in mains:
        if inits:
            t["depends_on"] = [names[len(inits) - 1]]
    tasks = inits + mains
    for t in tasks:
        t["network"] = network[0]
    constraints: list[Any] = []
    affinities: list[Any] = []
    for k, v in str_map(f, "nodeSelector").items():
        constraints.append({"key": _node_key(k), "op": "==", "value": _node_value(k, v)})
    affinity = f.sub("affinity")
    _node_affinity(affinity.sub("nodeAffinity"), warn, constraints, affinities)
    affinity.finish()
    restart = f.take("restartPolicy", default="Always" if kind == "Pod" else "Never")
    deadline = f.take("activeDeadlineSeconds")
    f.ignore(*_POD_SILENT)
    f.finish()
    return {
        "tasks": tasks,
        "constraints": constraints,
        "affinities": affinities,
        "restart": restart,
        "timeout": deadline,
        "network": network[0],
    }


def convert_kubernetes(text: str | bytes, fmt: str | None = None) -> ConvertResult:
    docs = load_yaml_or_json(text, "Kubernetes", fmt)
    if len(docs) != 1:
        raise parse_failed("Kubernetes", f"expected one object, found {len(docs)} documents; convert them one by one")
    doc = docs[0]
    if not isinstance(doc, dict):
        raise parse_failed("Kubernetes", "the document is not a mapping")
    kind = doc.get("kind")
    if kind not in ("Job", "Pod"):
        raise AgoraError("convert_unsupported_kind", f"cannot convert a Kubernetes {kind or 'object without kind'}")
    warn = Warnings()
    top = Fields(doc, "", warn)
    top.ignore("apiVersion", "kind", "status")
    meta = top.sub("metadata")
    name = meta.take("name", "generateName") or "kubernetes-job"
    labels = str_map(meta, "labels")
    meta.ignore("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink")
    meta.finish({"namespace": "agora has no namespaces"})
    spec = top.sub("spec")
    out: dict[str, Any] = {"name": str(name).rstrip("-"), "labels": labels}
    if kind == "Job":
        completions, parallelism = spec.take("completions"), spec.take("parallelism")
        count = completions if completions is not None else parallelism
        out["count"] = count if isinstance(count, int) and count >= 1 else 1
        if isinstance(parallelism, int) and completions is not None and parallelism < out["count"]:
            warn.add(
                spec.path_of("parallelism"),
                f"agora does not limit how many of the {out['count']} instances run at once "
                f"(Kubernetes runs {parallelism} at a time)",
            )
        elif completions is None and isinstance(parallelism, int) and parallelism > 1:
            warn.add(spec.path_of("parallelism"), "work-queue semantics not supported; every instance must succeed")
        backoff = spec.take("backoffLimit", default=K8S_DEFAULT_BACKOFF_LIMIT)
        job_deadline = spec.take("activeDeadlineSeconds")
        template = spec.sub("template")
        tmeta = template.sub("metadata")
        labels.update(str_map(tmeta, "labels"))
        tmeta.finish()
        pod = _pod(template.sub("spec"), warn, "Job")
        template.finish()
        spec.finish()
        backoff = _int(backoff, K8S_DEFAULT_BACKOFF_LIMIT)
        out["type"] = "batch"
        out["retry"] = {"attempts": min(backoff, 100), "backoff": K8S_BACKOFF_S, "on": list(POD_FAILURES)}
        if backoff > 100:
            warn.add(spec.path_of("backoffLimit"), f"{backoff} retries capped at agora's maximum of 100")
        deadlines = [d for d in (job_deadline, pod["timeout"]) if isinstance(d, int) and d > 0]
    else:
        pod = _pod(spec, warn, "Pod")
        out["type"] = "service" if pod["restart"] == "Always" else "batch"
        attempts = K8S_DEFAULT_BACKOFF_LIMIT if pod["restart"] == "OnFailure" else 0
        if pod["restart"] == "OnFailure":
            warn.add("spec.restartPolicy", f"OnFailure restarts without limit; agora retries {attempts} times")
        out["retry"] = {"attempts": attempts, "backoff": K8S_BACKOFF_S, "on": list(POD_FAILURES)}
        deadlines = [d for d in (pod["timeout"],) if isinstance(d, int) and d > 0]
    top.finish()
    if not labels:
        del out["labels"]
    for t in pod["tasks"]:
        if deadlines:
            t["timeout"] = min(deadlines)
    if not deadlines and out["type"] == "batch":
        warn.add("activeDeadlineSeconds", "not set; agora's default task timeout of 60s applies")
    if not pod["network"]:
        warn.add("network", "Kubernetes pods have network access; the agora tasks run without (set network: true)")
    out["tasks"] = pod["tasks"]
    if pod["constraints"]:
        out["constraints"] = pod["constraints"]
    if pod["affinities"]:
        out["affinities"] = pod["affinities"]
    return finish_spec(out, warn, "Kubernetes")


__all__ = ["convert_kubernetes"]
