"""Bacalhau job (YAML or JSON, v1.x "Tasks" format) -> agora job.

Keys are matched case-insensitively, as Bacalhau's Go decoder does (`Name` and `name` are the same).
Mapping (table in docs/jobspec.md): engine docker -> docker (Entrypoint -> command, Parameters ->
args), wasm -> wasm (EntryModule URL/path -> module), noop -> a process task running `true`;
InputSources (s3, urlDownload, inline, localDirectory) -> inputs; ResultPaths + Publisher (local,
s3) -> outputs; Resources (CPU, Memory "1Gb" = 10^9 bytes, Disk, GPU) -> resources; Timeouts
ExecutionTimeout -> timeout and TotalTimeout -> deadline; Network None -> no network, else network.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from agora.errors import AgoraError
from agora.jobs.convert.common import (
    ConvertResult,
    Fields,
    Warnings,
    finish_spec,
    load_yaml_or_json,
    mount_path,
    parse_failed,
    slug,
    str_list,
    str_map,
    unique_names,
)
from agora.jobs.quantities import parse_bytes, parse_cpu
from agora.models.capability import normalize_arch
from agora.models.job import INPUT_ROOTS, OUTPUT_ROOTS

_TYPES = {"batch": "batch", "service": "service", "ops": "batch", "daemon": "service"}
_NODE_KEYS = {"architecture": "arch", "operating-system": "os"}
_OPS = {"=": "==", "==": "==", "in": "in", "!=": "!=", "notin": "not_in", "exists": "exists", "gt": ">", "lt": "<"}


def _constraint(f: Fields) -> dict[str, Any] | None:
    key = str(f.take("Key") or "")
    op = _OPS.get(str(f.take("Operator") or "").lower())
    values = str_list(f.take("Values"))
    f.finish()
    agora_key = _NODE_KEYS.get(key.lower(), f"labels.{key}")
    if agora_key == "arch":
        values = [normalize_arch(v) for v in values]
    if op == "exists":
        return {"key": agora_key, "op": "exists"}
    if op in ("==", "in") and values:
        return (
            {"key": agora_key, "op": "in", "value": values}
            if len(values) > 1
            else {
                "key": agora_key,
                "op": "==",
                "value": values[0],
            }
        )
    if op in ("!=", "not_in") and values:
        return (
            {"key": agora_key, "op": "not_in", "value": values}
            if len(values) > 1
            else {
                "key": agora_key,
                "op": "!=",
                "value": values[0],
            }
        )
    if op in (">", "<") and len(values) == 1 and values[0].lstrip("-").isdigit():
        n = int(values[0])
        return {"key": agora_key, "op": ">=" if op == ">" else "<=", "value": n + 1 if op == ">" else n - 1}
    f.warn.add(f.path, f"constraint on {key!r} with this operator has no agora equivalent, ignored")
    return None


def _inline_data(data: str) -> dict[str, Any]:
    """Bacalhau inline data is usually a data: URL (RFC 2397)."""
    if data.startswith("data:") and "," in data:
        header, payload = data[5:].split(",", 1)
        if header.endswith(";base64"):
            return {"type": "inline", "content": payload, "encoding": "base64"}
        return {"type": "inline", "content": urllib.parse.unquote(payload)}
    return {"type": "inline", "content": data}


def _source(f: Fields) -> dict[str, Any] | None:
    """An InputSource's Source -> an agora source, or None with a warning."""
    kind = str(f.take("Type") or "").lower()
    params = Fields(f.take("Params"), f.path_of("Params"), f.warn, ci=True)
    out: dict[str, Any] | None = None
    if kind == "s3":
        out = {"type": "s3", "bucket": params.take("Bucket"), "key": str(params.take("Key", default=""))}
        for ours, theirs in (("region", "Region"), ("endpoint", "Endpoint")):
            if params.has(theirs):
                out[ours] = params.take(theirs)
    elif kind in ("urldownload", "url", "http"):
        out = {"type": "http", "url": params.take("URL", "Url")}
    elif kind == "inline":
        out = _inline_data(str(params.take("Data") or ""))
    elif kind == "localdirectory":
        out = {"type": "local", "path": params.take("SourcePath")}
        if params.take("ReadWrite"):
            params.warn.add(params.path, "ReadWrite local inputs are mounted read-only in agora")
    else:
        f.warn.add(f.path, f"input source type {kind or '(none)'!r} is not supported, ignored")
        return None
    params.finish()
    f.finish()
    return out


def _engine(f: Fields, task: dict[str, Any], warn: Warnings) -> None:
    kind = str(f.take("Type") or "").lower()
    params = Fields(f.take("Params"), f.path_of("Params"), warn, ci=True)
    if kind == "docker":
        task.update(engine="docker", image=str(params.take("Image") or ""), allow_pull=True)
        command, args = str_list(params.take("Entrypoint")), str_list(params.take("Parameters"))
        task.update({k: v for k, v in (("command", command), ("args", args)) if v})
        for item in str_list(params.take("EnvironmentVariables")):
            k, _, v = item.partition("=")
            task.setdefault("env", {})[k] = v
    elif kind == "wasm":
        task["engine"] = "wasm"
        entry = Fields(params.take("EntryModule"), params.path_of("EntryModule"), warn, ci=True)
        source = _source(entry.sub("Source")) if entry.has("Source") else None
        entry.ignore("Alias", "Target")
        entry.finish()
        if source is None or source["type"] not in ("http", "local"):
            raise AgoraError(
                "convert_unsupported_kind",
                f"{params.path}.EntryModule: only a URL or a local path can name the wasm module in agora",
            )
        task["module"] = source.get("url") or source.get("path")
        if str(params.take("Entrypoint") or "_start") != "_start":
            warn.add(params.path_of("Entrypoint"), "agora runs the WASI _start function; other entry points ignored")
        if args := str_list(params.take("Parameters")):
            task["args"] = args
        if env := str_map(params, "EnvironmentVariables"):
            task.setdefault("env", {}).update(env)
    elif kind == "noop":
        task.update(engine="process", command=["true"])
        warn.add(f.path_of("Type"), "noop engine becomes a process task that runs `true`")
    else:
        raise AgoraError(
            "convert_unsupported_kind",
            f"{f.path}: Bacalhau engine {kind or '(none)'!r} has no agora engine",
            hint="Supported Bacalhau engines: docker, wasm, noop",
        )
    params.finish({"WorkingDirectory": "agora starts tasks in their work directory"})
    f.finish()


def _resources(f: Fields) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ours, theirs in (("cpu", "CPU"), ("memory", "Memory"), ("disk", "Disk"), ("gpu", "GPU")):
        value = f.take(theirs)
        if value is None or value == "":
            continue
        try:
            if ours == "cpu":
                out["cpu"] = f"{parse_cpu(str(value))}m"
            elif ours == "gpu":
                if int(str(value)) > 0:
                    out["gpu"] = {"count": int(str(value))}
            else:
                out[ours] = parse_bytes(str(value), loose=True)
        except ValueError:
            f.warn.add(f.path_of(theirs), f"quantity {value!r} could not be read, the agora default applies")
    f.finish()
    return out


def _outputs(task: Fields, warn: Warnings) -> list[dict[str, Any]]:
    pub = task.sub("Publisher")
    kind = str(pub.take("Type") or "local").lower()
    params = Fields(pub.take("Params"), pub.path_of("Params"), warn, ci=True)
    publish: dict[str, Any] = {"type": "local"}
    if kind == "s3":
        publish = {"type": "s3", "bucket": params.take("Bucket")}
        for ours, theirs in (("key", "Key"), ("region", "Region"), ("endpoint", "Endpoint")):
            if params.has(theirs):
                publish[ours] = params.take(theirs)
    elif kind != "local":
        warn.add(pub.path_of("Type"), f"publisher {kind} is not supported; results stay in the provider's local store")
    params.finish()
    pub.finish()
    outputs = []
    for i, r in task.items("ResultPaths"):
        path = mount_path(r.take("Path"), OUTPUT_ROOTS, r.path_of("Path"), warn)
        outputs.append({"name": slug(r.take("Name"), f"output-{i}"), "path": path, "publish": publish})
        r.finish()
    return outputs


def _task(f: Fields, job_type: str, warn: Warnings) -> tuple[dict[str, Any], int | None]:
    """-> (agora task, TotalTimeout seconds)."""
    task: dict[str, Any] = {"name": slug(f.take("Name"), "main")}
    _engine(f.sub("Engine"), task, warn)
    if env := str_map(f, "Env"):
        task.setdefault("env", {}).update(env)
    inputs: list[dict[str, Any]] = []
    for i, src in f.items("InputSources"):
        source = _source(src.sub("Source"))
        if source is not None:
            name = slug(src.take("Alias"), f"input-{i}")
            target = mount_path(src.take("Target"), INPUT_ROOTS, src.path_of("Target"), warn)
            inputs.append({"name": name, "source": source, "path": target or f"/inputs/{name}"})
        src.ignore("Alias", "Target")
        src.finish()
    if inputs:
        for item, n in zip(inputs, unique_names([x["name"] for x in inputs]), strict=True):
            item["name"] = n
        task["inputs"] = inputs
    if outputs := _outputs(f, warn):
        task["outputs"] = outputs
    task["resources"] = _resources(f.sub("Resources"))
    net = f.sub("Network")
    net_type = str(net.take("Type") or "None").lower()
    task["network"] = net_type not in ("none", "")
    if net.has("Domains"):
        warn.add(net.path_of("Domains"), "domain allow-lists are not supported; the task gets full network access")
        net.ignore("Domains")
    net.finish()
    timeouts = f.sub("Timeouts")
    execution, total = timeouts.take("ExecutionTimeout"), timeouts.take("TotalTimeout")
    if isinstance(execution, int) and not isinstance(execution, bool) and execution > 0:
        task["timeout"] = execution
    elif job_type == "batch":
        warn.add(timeouts.path_of("ExecutionTimeout"), "not set; agora's default task timeout of 60s applies")
    timeouts.finish({"QueueTimeout": "agora waits in its queue until the job's deadline"})
    f.finish()
    ok_total = isinstance(total, int) and not isinstance(total, bool) and total > 0
    return task, total if ok_total else None


def convert_bacalhau(text: str | bytes, fmt: str | None = None) -> ConvertResult:
    docs = load_yaml_or_json(text, "Bacalhau", fmt)
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise parse_failed("Bacalhau", "expected one job object")
    warn = Warnings()
    top = Fields(docs[0], "", warn, ci=True)
    raw_type = str(top.take("Type", default="batch")).lower()
    if raw_type not in _TYPES:
        raise parse_failed("Bacalhau", f"unknown job type {raw_type!r}")
    job_type = _TYPES[raw_type]
    if raw_type in ("ops", "daemon"):
        warn.add(top.path_of("Type"), f"{raw_type} jobs run on every matching node in Bacalhau; agora runs `count`")
    spec: dict[str, Any] = {"name": str(top.take("Name") or "bacalhau-job"), "type": job_type}
    count = top.take("Count", default=1)
    spec["count"] = count if isinstance(count, int) and not isinstance(count, bool) and count >= 1 else 1
    namespace = top.take("Namespace")
    if namespace not in (None, "", "default"):
        warn.ignored(top.path_of("Namespace"), "agora has no namespaces")
    if labels := str_map(top, "Labels"):
        spec["labels"] = labels
    constraints = [c for _, f in top.items("Constraints") if (c := _constraint(f)) is not None]
    if constraints:
        spec["constraints"] = constraints
    tasks, totals = [], []
    for _, t in top.items("Tasks"):
        task, total = _task(t, job_type, warn)
        tasks.append(task)
        totals += [total] if total else []
    if not tasks:
        raise parse_failed("Bacalhau", "the job has no tasks")
    for task, n in zip(tasks, unique_names([t["name"] for t in tasks]), strict=True):
        task["name"] = n
    spec["tasks"] = tasks
    if totals:
        spec["deadline"] = min(totals)
    top.ignore("ID", "Version", "Revision", "CreateTime", "ModifyTime", "State")
    top.finish({"Meta": "free-form metadata is not kept; use Labels", "Priority": "agora has no job priorities"})
    return finish_spec(spec, warn, "Bacalhau")


__all__ = ["convert_bacalhau"]
