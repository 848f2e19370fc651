"""Nomad job (HCL via python-hcl2, or the API's JSON `{"Job": {...}}`) -> agora job.

Mapping (table in docs/jobspec.md): every task of every group becomes an agora task (named
`<group>.<task>` when the job has several groups); drivers docker/podman -> docker, exec/exec2/raw_exec
-> process; `resources.cpu` in MHz -> millicores at 1 MHz = 1 millicore (a nominal 1 GHz core;
`cores` -> 1000 millicores each); memory MB -> MiB; group count -> count; restart (+ reschedule)
attempts -> retry.attempts (on task failure, restart, and node loss, reschedule: `retry.on`
[task_failed, node_lost, transient]), delay -> retry.backoff; lifecycle prestart/poststop -> depends_on;
artifacts (http) -> inputs; templates -> inline inputs. Nomad's own defaults apply when a block is
absent (100 MHz, 300 MB, restart 3 attempts for batch / 2 for service, 15 s delay).
"""

from __future__ import annotations

import json
import posixpath
from typing import Any
from urllib.parse import urlparse

import yaml

from agora.errors import AgoraError
from agora.jobs.convert.common import (
    ConvertResult,
    Fields,
    Warnings,
    finish_spec,
    mount_path,
    parse_failed,
    slug,
    str_list,
    unique_names,
)
from agora.jobs.convert.nomad_blocks import block, blocks, integer, mapping, match, named, seconds
from agora.models.job import INPUT_ROOTS, MIB

DEFAULT_CPU_MHZ = 100
DEFAULT_MEMORY_MB = 300
DEFAULT_RESTART = {"batch": 3, "service": 2}
DEFAULT_DELAY_S = 15
DRIVERS = {"docker": "docker", "podman": "docker", "exec": "process", "exec2": "process", "raw_exec": "process"}
_ARCHIVES = (".tar", ".tar.gz", ".tgz", ".zip", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".gz", ".bz2", ".xz")
# Server-side bookkeeping that `nomad job inspect` adds: never part of what the user asked for.
_API_SILENT = (
    "ID", "ParentID", "Status", "StatusDescription", "Stable", "Version", "SubmitTime", "CreateIndex",
    "ModifyIndex", "JobModifyIndex", "Stop", "Dispatched", "DispatchIdempotencyToken", "NomadTokenID",
    "VaultToken", "ConsulToken", "Payload", "Region", "Namespace", "Priority", "AllAtOnce", "NodePool",
)  # fmt: skip


_OTHER_SOURCES = (  # (keys of which any one marks it, what it then likely is)
    (("apiVersion", "kind"), "a Kubernetes object: use --from kubernetes"),
    (("Tasks",), "a Bacalhau job: use --from bacalhau"),
    (("tasks",), "an agora job spec: run it as it is"),
)


def _looks_like_yaml(text: str) -> dict[str, Any] | None:
    """The YAML mapping `text` is, if it is one (HCL never is: a block or an attribute is not a mapping)."""
    try:
        doc = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) and doc else None


def _hcl_failed(text: str, exc: Exception) -> AgoraError:
    """A clear `convert_parse_failed` for text HCL cannot read: YAML is named as such (with what it
    likely is), a syntax error is reduced to its place and the unexpected token (no parser dump)."""
    doc = _looks_like_yaml(text)
    if doc is not None:
        what = next((w for keys, w in _OTHER_SOURCES if any(k in doc for k in keys)), None)
        return parse_failed(
            "Nomad",
            "this looks like YAML; Nomad jobs are HCL or JSON" + (f" (it looks like {what})" if what else ""),
            hint='A Nomad job is HCL (job "name" { group "g" { task "t" { ... } } }) or the API\'s JSON '
            '({"Job": {...}}); for a Kubernetes or Bacalhau YAML file use --from kubernetes or --from bacalhau.',
        )
    token, char = getattr(exc, "token", None), getattr(exc, "char", None)
    if token is not None:
        shown = (str(token).splitlines() or [""])[0][:40]
        reason = "unexpected end of file" if getattr(token, "type", "") == "$END" else f"unexpected {shown!r}"
    elif char is not None:
        reason = f"unexpected character {char!r}"
    else:
        reason = f"not valid HCL ({type(exc).__name__})"
    line, column = getattr(exc, "line", None), getattr(exc, "column", None)
    return parse_failed("Nomad", reason, line=line, column=column)


def _load(text: str | bytes, fmt: str | None) -> tuple[Fields, str, Warnings]:
    """(job body, job name, warnings) from HCL or JSON text."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise parse_failed("Nomad", exc) from exc
    if len(text) > 1 << 20:
        raise parse_failed("Nomad", "larger than 1 MiB")
    warn = Warnings()
    if fmt is None:
        fmt = "json" if text.lstrip().startswith("{") else "hcl"
    if fmt == "json":
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise parse_failed("Nomad", exc) from exc
        job = doc.get("Job", doc) if isinstance(doc, dict) else None
        if not isinstance(job, dict) or "TaskGroups" not in job:
            raise parse_failed("Nomad", 'expected {"Job": {...}} with TaskGroups')
        body = Fields(job, "Job", warn)
        body.ignore(
            *(k for k in _API_SILENT if k not in ("Region", "Namespace") or job.get(k) in ("global", "default"))
        )
        return body, str(job.get("Name") or job.get("ID") or "nomad-job"), warn
    if fmt != "hcl":
        raise AgoraError("invalid_argument", f"unknown format {fmt!r} for Nomad: use hcl or json")
    import hcl2  # imported on first use: the parser (lark) costs ~0.1 s of start-up for every node

    options = hcl2.SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
    try:
        doc = hcl2.loads(text, serialization_options=options)
    except Exception as exc:  # python-hcl2 raises lark's many exception types
        raise _hcl_failed(text, exc) from exc
    top = Fields(doc, "", warn)
    jobs = named(top, "job", "Job")
    if len(jobs) != 1:
        raise parse_failed("Nomad", f"expected one job block, found {len(jobs)}")
    top.finish({"variable": "variables are not evaluated", "locals": "locals are not evaluated"})
    name, body = jobs[0]
    body.path = ""
    return body, name, warn


def _resources(task: Fields, out: dict[str, Any]) -> None:
    r = block(task, "resources", "Resources")
    cores = integer(r.take("cores", "Cores"))
    mhz = integer(r.take("cpu", "CPU"), DEFAULT_CPU_MHZ)
    res: dict[str, Any] = {"cpu": f"{cores * 1000}m" if cores else f"{max(mhz, 1)}m"}
    res["memory"] = integer(r.take("memory", "MemoryMB"), DEFAULT_MEMORY_MB) * MIB
    gpus = 0
    for name, dev in named(r, "device", "Devices"):
        parts = name.split("/")
        if "gpu" in parts:
            gpus += integer(dev.take("count", "Count"), 1)
            if len(parts) == 3:
                res.setdefault("gpu", {})["model"] = parts[2]
            dev.finish()
        else:
            dev.warn.ignored(dev.path, "only GPU devices are mapped")
    if gpus:
        res.setdefault("gpu", {})["count"] = gpus
    r.ignore("DiskMB", "IOPS")
    r.finish({"memory_max": "agora caps memory at resources.memory", "MemoryMaxMB": "agora caps at resources.memory"})
    out["resources"] = res


def _config(task: Fields, driver: str, out: dict[str, Any]) -> None:
    cfg = block(task, "config", "Config")
    entrypoint, command, args = str_list(cfg.take("entrypoint")), cfg.take("command"), str_list(cfg.take("args"))
    if driver == "docker":
        out["image"] = str(cfg.take("image") or "")
        out["allow_pull"] = True  # the docker driver pulls missing images
        cfg.take("force_pull")
        if entrypoint:
            out["command"] = entrypoint
            args = ([str(command)] if command else []) + args
        elif command:
            out["command"] = [str(command)]
    elif command:
        out["command"] = [str(command)]
    if args:
        out["args"] = args
    if cfg.has("ports"):
        out["network"] = True
        cfg.warn.add(cfg.path_of("ports"), "ports are not published; the task gets network access")
        cfg.ignore("ports")
    if any("${" in s or "{{" in s for s in [*out.get("command", []), *args, out.get("image", "")]):
        cfg.warn.add(cfg.path, "${...} interpolation is not evaluated by agora")
    cfg.finish()


def _files(task: Fields, out: dict[str, Any]) -> None:
    inputs: list[dict[str, Any]] = []
    for a in blocks(task, "artifact", "Artifacts"):
        source = str(a.take("source", "GetterSource") or "")
        dest = str(a.take("destination", "RelativeDest", default="local/"))
        if urlparse(source).scheme not in ("http", "https"):
            a.warn.add(a.path, f"artifact source {source!r}: only http(s) URLs are mapped, ignored")
            continue
        base = posixpath.basename(urlparse(source).path) or "artifact"
        if base.endswith(_ARCHIVES):
            a.warn.add(a.path, "archives are not unpacked by agora; the file is passed as downloaded")
        path = "/" + dest.strip("/") + "/" + base if dest.endswith("/") or not dest else "/" + dest.strip("/")
        path = mount_path(path, INPUT_ROOTS, a.path_of("destination"), a.warn)
        inputs.append({"name": slug(base, "artifact"), "source": {"type": "http", "url": source}, "path": path})
        a.finish()
    for t in blocks(task, "template", "Templates"):
        data, dest = t.take("data", "EmbeddedTmpl"), t.take("destination", "DestPath")
        if not isinstance(data, str) or not dest:
            t.warn.add(t.path, "only templates with inline data and a destination are mapped, ignored")
            continue
        if "{{" in data:
            t.warn.add(t.path, "template syntax is not rendered; the text is passed as is")
        t.ignore("change_mode", "ChangeMode", "perms", "Perms", "splay", "Splay")
        base = posixpath.basename(str(dest))
        inline = {"type": "inline", "content": data}
        path = mount_path("/" + str(dest).strip("/"), INPUT_ROOTS, t.path_of("destination"), t.warn)
        inputs.append({"name": slug(base, "template"), "source": inline, "path": path})
        t.finish()
    if inputs:
        names = unique_names([i["name"] for i in inputs])
        for i, n in zip(inputs, names, strict=True):
            i["name"] = n
        out["inputs"] = inputs


def _task(name: str, task: Fields, job_type: str) -> tuple[dict[str, Any], str | None, list[Any], list[Any], bool]:
    """-> (agora task, lifecycle hook, constraints, affinities, distinct_hosts)."""
    driver = str(task.take("driver", "Driver") or "")
    if driver not in DRIVERS:
        raise AgoraError(
            "convert_unsupported_kind",
            f"{task.path}: Nomad driver {driver!r} has no agora engine",
            hint="Supported drivers: " + ", ".join(DRIVERS),
        )
    if driver == "podman":
        task.warn.add(task.path_of("driver"), "podman runs as agora's docker engine")
    out: dict[str, Any] = {"name": slug(name, "task"), "engine": DRIVERS[driver]}
    _config(task, DRIVERS[driver], out)
    env = mapping(task, "env", "Env")
    if env:
        out["env"] = env
    _resources(task, out)
    _files(task, out)
    life = block(task, "lifecycle", "Lifecycle")
    hook = life.take("hook", "Hook")
    if life.take("sidecar", "Sidecar"):
        life.warn.add(life.path, "sidecar tasks are not supported; it runs as an ordinary task")
    life.finish()
    constraints, affinities, distinct = [], [], False
    for c in blocks(task, "constraint", "Constraints"):
        m, d = match(c, weighted=False)
        constraints += [m] if m else []
        distinct |= d
    for a in blocks(task, "affinity", "Affinities"):
        m, _ = match(a, weighted=True)
        affinities += [m] if m else []
    task.ignore("Name", "LogConfig")
    task.finish(
        {
            "kill_timeout": "agora stops tasks at once",
            "KillTimeout": "agora stops tasks at once",
            "logs": "agora keeps task logs itself",
        }
    )
    return out, str(hook) if hook else None, constraints, affinities, distinct


def convert_nomad(text: str | bytes, fmt: str | None = None) -> ConvertResult:
    job, name, warn = _load(text, fmt)
    raw_type = str(job.take("type", "Type", default="service"))
    job_type = {"system": "service", "sysbatch": "batch"}.get(raw_type, raw_type)
    if job_type not in ("batch", "service"):
        raise parse_failed("Nomad", f"unknown job type {raw_type!r}")
    if raw_type != job_type:
        warn.add(job.path_of("type"), f"{raw_type} jobs run on every node in Nomad; agora runs `count` instances")
    dcs = str_list(job.take("datacenters", "Datacenters"))
    if dcs and dcs != ["*"]:
        warn.ignored(job.path_of("datacenters"), "agora has no datacenters; use constraints on labels")
    spec: dict[str, Any] = {"name": name, "type": job_type}
    labels = mapping(job, "meta", "Meta")
    constraints, affinities, distinct = [], [], False
    for c in blocks(job, "constraint", "Constraints"):
        m, d = match(c, weighted=False)
        constraints += [m] if m else []
        distinct |= d
    for a in blocks(job, "affinity", "Affinities"):
        m, _ = match(a, weighted=True)
        affinities += [m] if m else []
    groups = named(job, "group", "TaskGroups")
    if not groups:
        raise parse_failed("Nomad", "the job has no task groups")
    tasks: list[dict[str, Any]] = []
    counts: list[int] = []
    attempts: list[int] = []
    delays: list[int] = []
    network = False
    for gname, g in groups:
        counts.append(integer(g.take("count", "Count"), 1))
        restart = block(g, "restart", "RestartPolicy")
        tries = integer(restart.take("attempts", "Attempts"), DEFAULT_RESTART[job_type])
        delays.append(seconds(restart.take("delay", "Delay")) or DEFAULT_DELAY_S)
        mode = restart.take("mode", "Mode")
        if mode == "delay":
            restart.warn.add(restart.path_of("mode"), "mode delay (retry forever) is not supported; tries are limited")
        restart.finish({"interval": "agora counts attempts per job, not per interval"})
        resched = block(g, "reschedule", "ReschedulePolicy")
        if resched.take("unlimited", "Unlimited"):
            resched.warn.add(resched.path, "unlimited rescheduling is not supported; tries are limited")
        tries += integer(resched.take("attempts", "Attempts"))
        resched.finish({"interval": "agora counts attempts per job, not per interval"})
        attempts.append(tries)
        disk = block(g, "ephemeral_disk", "EphemeralDisk")
        disk_mb = integer(disk.take("size", "SizeMB"))
        disk.finish()
        group_network = bool(blocks(g, "network", "Networks"))
        network |= group_network
        if group_network:
            where = g.path_of("network") if g.key_of("network") else g.path_of("Networks")
            warn.add(where, "ports and network modes are not mapped; the tasks get network access (network: true)")
        labels.update(mapping(g, "meta", "Meta"))
        for c in blocks(g, "constraint", "Constraints"):
            m, d = match(c, weighted=False)
            constraints += [m] if m else []
            distinct |= d
        for a in blocks(g, "affinity", "Affinities"):
            m, _ = match(a, weighted=True)
            affinities += [m] if m else []
        group_tasks: list[tuple[dict[str, Any], str | None]] = []
        for tname, t in named(g, "task", "Tasks"):
            task, hook, tc, ta, td = _task(f"{gname}.{tname}" if len(groups) > 1 else tname, t, job_type)
            constraints += tc
            affinities += ta
            distinct |= td
            if disk_mb:
                task["resources"]["disk"] = disk_mb * MIB
            task["network"] = group_network or task.get("network", False)
            group_tasks.append((task, hook))
        prestart = [t["name"] for t, h in group_tasks if h == "prestart"]
        mains = [t["name"] for t, h in group_tasks if h not in ("prestart", "poststop")]
        for task, hook in group_tasks:
            if hook == "poststart":
                warn.add(g.path, f"task {task['name']}: poststart hook runs alongside the main tasks")
            if hook in (None, "poststart") and prestart:
                task["depends_on"] = prestart
            elif hook == "poststop":
                task["depends_on"] = mains
            tasks.append(task)
        g.ignore("Name")
        g.finish()
    if len(set(counts)) > 1:
        warn.add(job.path_of("group"), f"groups have different counts {counts}; agora runs {max(counts)} of each")
    if distinct:
        warn.add("constraint", "distinct_hosts becomes placement strategy spread (a preference, not a guarantee)")
        spec["placement"] = {"strategy": "spread"}
    network |= any(t.get("network") for t in tasks)
    if not network:
        warn.add("network", "Nomad tasks have network access; the agora tasks run without (set network: true)")
    if job_type == "batch":
        warn.add("timeout", "Nomad batch tasks have no time limit; agora's default task timeout of 60s applies")
    spec.update(
        count=max(counts),
        tasks=tasks,
        retry={
            "attempts": min(max(attempts), 100),
            "backoff": max(delays),
            "on": ["task_failed", "node_lost", "transient"],
        },
        constraints=constraints,
        affinities=affinities,
        labels=labels,
    )
    job.ignore("Name")
    job.finish({"update": "agora has no rolling updates", "periodic": "agora has no cron scheduling"})
    return finish_spec(spec, warn, "Nomad")


__all__ = ["convert_nomad"]
