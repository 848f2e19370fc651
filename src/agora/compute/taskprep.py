"""From a task as the requester sent it to what the executor and the storage layer take.

A start request carries one task in the job spec's own form (`TaskSpec.to_dict`). The provider
validates it with the same parser the requester used (`agora.jobs`), so a node never runs something
the spec language does not allow, and every problem names its field.

Paths: a task sees its inputs and outputs under `/inputs` and `/outputs` (wasm) or `/work/inputs` and
`/work/outputs` (the process sandbox's work dir); both spellings are accepted here and mapped to the
allocation's `inputs/` and `outputs/` dirs. A declared output is a directory the task writes into
(as in Bacalhau), created before the task starts, unless its last path part has a dot (`result.txt`),
in which case only its parent is created. Every regular file under `outputs/` is collected, declared
or not; its output name is that of the declared output containing it, else its first path part.

Input sources map onto the storage layer: inline text/base64 as is; `http` by URL; `s3` by bucket
and key; `hub` by `hub://<bucket>/<name>` (the name is the object's sha256, the bucket defaults to the
node's hub bucket); `local` means a file on the *requester's* machine, so its
bytes must come with the request (`input_data`) or have been uploaded first (`input_refs`: sha256 of
an object in this node's CAS). A plain module path is likewise the requester's: its bytes come as
`module_bytes` or it is named `sha256:<hex>` of an earlier upload. The CAS is shared by all requesters,
so such a reference must name an object of the same requester: `cas_references` lists them for the
manager to check with `transfer.CasOwners.require` before anything is staged.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from agora.errors import AgoraError
from agora.executors import ExecRequest, Limits
from agora.jobs import validate_task
from agora.models.capability import Capability
from agora.models.job import INPUT_ROOTS, OUTPUT_ROOTS, Scalar, TaskSpec
from agora.models.job import InputSpec as JobInput
from agora.storage import InputSource, InputSpec
from agora.storage.hub import DEFAULT_BUCKET as DEFAULT_HUB_BUCKET

NO_TIMEOUT_S = 30 * 24 * 3600.0  # a service task (timeout null) still ends some day
_HUB_BUCKET_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def parse_task(task: Any, job: str, job_type: Any = "batch") -> TaskSpec:
    """Validate one task dict with the requester's own rules for a job of `job_type` (`jobs.validate_task`;
    field paths read `tasks[0].<field>`). `job` names the job in messages only."""
    del job
    return validate_task(task, job_type=job_type)


def need_of(task: TaskSpec) -> Capability:
    """What the task reserves on this node (its engine is checked against the executor registry)."""
    r = task.resources
    return Capability(
        cpu_millis=r.cpu,
        memory_bytes=r.memory,
        disk_bytes=r.disk,
        gpu_count=r.gpu.count,
        gpu_model=r.gpu.model if r.gpu.count else None,
        gpu_vram_bytes=r.gpu.vram if r.gpu.count else 0,
    )


def limits_of(task: TaskSpec) -> Limits:
    r = task.resources
    return Limits(
        memory_bytes=r.memory,
        cpu_millis=r.cpu,
        disk_bytes=r.disk,
        timeout_s=float(task.timeout) if task.timeout else NO_TIMEOUT_S,
    )


def relative_to_root(path: str, roots: tuple[str, ...], what: str) -> PurePosixPath:
    """`/inputs/a/b` -> `a/b`; anything outside the roots or climbing out is refused."""
    p = PurePosixPath(path)
    for root in roots:
        r = PurePosixPath(root)
        if p == r:
            return PurePosixPath(".")
        if r in p.parents:
            rel = p.relative_to(r)
            if any(part in ("..", ".") for part in rel.parts):
                break
            return rel
    raise AgoraError(
        "job_spec_invalid",
        f"{what} path {path!r} must be under {' or '.join(roots)}",
        details={"errors": [{"path": what, "expected": f"a path under {roots[0]}", "got": path}]},
    )


def output_dirs(task: TaskSpec) -> list[PurePosixPath]:
    """Directories to create under outputs/ before the task starts."""
    dirs: list[PurePosixPath] = []
    for out in task.outputs:
        rel = relative_to_root(out.path, OUTPUT_ROOTS, f"output {out.name!r}")
        if rel == PurePosixPath("."):
            continue
        target = rel.parent if "." in rel.name else rel
        if target != PurePosixPath("."):
            dirs.append(target)
    return dirs


def output_name(task: TaskSpec, rel_path: str) -> str:
    """The declared output a collected file belongs to (or its first path part)."""
    p = PurePosixPath(rel_path)
    for out in task.outputs:
        root = relative_to_root(out.path, OUTPUT_ROOTS, f"output {out.name!r}")
        if root == PurePosixPath(".") or p == root or root in p.parents:
            return out.name
    return p.parts[0] if p.parts else rel_path


def spec_error(where: str, expected: str, got: object) -> AgoraError:
    return AgoraError(
        "job_spec_invalid",
        f"{where}: expected {expected}, got {got!r}",
        details={"errors": [{"path": where, "expected": expected, "got": str(got)}]},
    )


def hub_bucket_of(where: str, params: Mapping[str, Scalar], default: str = DEFAULT_HUB_BUCKET) -> str:
    """The hub bucket a source or publish block names, else the node's."""
    bucket = params.get("bucket", default)
    if not isinstance(bucket, str) or not _HUB_BUCKET_RE.fullmatch(bucket):
        raise spec_error(f"{where}.bucket", "a hub bucket name: 1-64 letters, digits, '-' or '_'", bucket)
    return bucket


def hub_input_uri(inp: JobInput, default_bucket: str = DEFAULT_HUB_BUCKET) -> str:
    """hub://<bucket>/<hex>: a hub input's `name` is the object's sha256, as a hub output's URI ends."""
    where = f"input {inp.name!r}.source"
    bucket = hub_bucket_of(where, inp.source.params, default_bucket)
    name = inp.source.params.get("name")
    if not isinstance(name, str) or not _HEX64.fullmatch(name.lower()):
        raise spec_error(f"{where}.name", "the object's sha256 (64 hex characters, as a hub output's uri ends)", name)
    return f"hub://{bucket}/{name.lower()}"


def storage_inputs(
    task: TaskSpec,
    input_data: Mapping[str, bytes],
    input_refs: Mapping[str, str],
    hub_bucket: str = DEFAULT_HUB_BUCKET,
) -> list[InputSpec]:
    """The task's inputs as the storage layer fetches them (`hub_bucket`: the node's default bucket)."""
    out: list[InputSpec] = []
    for spec in task.inputs:
        rel = relative_to_root(spec.path, INPUT_ROOTS, f"input {spec.name!r}")
        if rel == PurePosixPath("."):
            rel = PurePosixPath(spec.name)
        params = dict(spec.source.params)
        kind = spec.source.type
        if kind == "inline":
            enc = "base64" if params.get("encoding") == "base64" else "text"
            source = InputSource(type="inline", content=str(params.get("content", "")), encoding=enc)
        elif kind == "http":
            source = InputSource(type="http", url=str(params.get("url", "")))
        elif kind == "s3":
            source = InputSource(type="s3", bucket=str(params.get("bucket", "")), key=str(params.get("key", "")))
        elif kind == "hub":
            source = InputSource(type="hub", uri=hub_input_uri(spec, hub_bucket))
        elif kind == "local":
            if spec.name in input_data:
                content = base64.b64encode(input_data[spec.name]).decode("ascii")
                source = InputSource(type="inline", content=content, encoding="base64")
            elif spec.name in input_refs:
                digest = _ref_digest(spec.name, input_refs[spec.name])
                source = InputSource(type="local", uri=f"cas://sha256/{digest}")
            else:
                raise AgoraError(
                    "input_missing",
                    f"input {spec.name!r}: a local input lives on the requester's machine, and its bytes did not come"
                    " with the request",
                    hint="Submit the job through `agora job run` (which sends local files), or use inline/http/s3.",
                    details={"input": spec.name},
                )
        else:  # the parser only lets the types above through
            raise AgoraError("invalid_argument", f"input {spec.name!r}: unknown source type {kind!r}")
        out.append(InputSpec(name=spec.name, source=source, path=rel.as_posix(), sha256=spec.sha256))
    return out


def _ref_digest(name: str, ref: object) -> str:
    if not isinstance(ref, str) or not _HEX64.fullmatch(ref.lower()):
        raise AgoraError("invalid_argument", f"input_refs[{name!r}] must be a sha256 (64 hex characters), got {ref!r}")
    return ref.lower()


def cas_references(
    task: TaskSpec, input_data: Mapping[str, bytes], input_refs: Mapping[str, str], *, module_sent: bool = False
) -> list[tuple[str, str]]:
    """(what, digest) of every object of this node's CAS the task names by hash: "module" or an input's name.

    These are the references a requester may only make to objects it owns (see `transfer.CasOwners`).
    A module sent as bytes (`module_sent`) and inputs sent inline are not listed: the bytes prove possession.
    """
    refs: list[tuple[str, str]] = []
    named = module_sha256(task)
    if task.engine == "wasm" and named is not None and not module_sent:
        refs.append(("module", named))
    for spec in task.inputs:
        if spec.source.type == "local" and spec.name not in input_data and spec.name in input_refs:
            refs.append((spec.name, _ref_digest(spec.name, input_refs[spec.name])))
    return refs


def exec_request(task: TaskSpec, alloc_id: str, work_dir: Path, module_path: Path | None) -> ExecRequest:
    return ExecRequest(
        task_id=alloc_id,
        engine=task.engine,  # type: ignore[arg-type]  # the parser only allows known engines
        work_dir=work_dir,
        module=str(module_path) if module_path is not None else None,
        image=task.image,
        command=list(task.command),
        args=list(task.args),
        env=dict(task.env),
        limits=limits_of(task),
        network=task.network,
        allow_pull=task.allow_pull,
    )


def module_sha256(task: TaskSpec) -> str | None:
    """The digest a `sha256:<hex>` module names, else None."""
    if task.module is not None and task.module.startswith("sha256:"):
        return task.module[len("sha256:") :].lower()
    return None


__all__ = [
    "INPUT_ROOTS",
    "OUTPUT_ROOTS",
    "cas_references",
    "exec_request",
    "hub_bucket_of",
    "hub_input_uri",
    "limits_of",
    "module_sha256",
    "need_of",
    "output_dirs",
    "output_name",
    "parse_task",
    "relative_to_root",
    "spec_error",
    "storage_inputs",
]
