"""Turn a task of a parsed job into what a provider can run: files of this machine become bytes.

A job spec may name files on the requester's machine: a wasm module by path, or an input with
`source: {type: local, path: ...}`. A provider cannot read them, so they are read here (relative paths
against the submitter's directories, e.g. the CLI's working directory), hashed, and either sent with
the start request (small ones) or uploaded in chunks first; the task then names its module as
`sha256:<hex>`, which the provider checks against the bytes it got. Everything is read once, at
submit, so a missing file fails the submit with a clear error instead of failing a task later.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agora.errors import AgoraError
from agora.jobs import start_context
from agora.models.job import JobSpec, TaskSpec
from agora.wire.alloc import StartArgs

INLINE_LIMIT = 192 * 1024  # bytes sent inside the start request; bigger ones are uploaded first
MAX_FILE = 256 * 1024 * 1024


@dataclass(frozen=True)
class Blob:
    sha256: str
    data: bytes = field(repr=False)

    @classmethod
    def of(cls, data: bytes) -> Blob:
        return cls(hashlib.sha256(data).hexdigest(), data)


@dataclass(frozen=True)
class PreparedTask:
    spec: TaskSpec
    wire: dict[str, Any]  # the task as sent: module rewritten to sha256:<hex> when it was a local file
    module: Blob | None
    local_inputs: dict[str, Blob]

    def start_args(
        self, job: str, job_id: str, inline_limit: int = INLINE_LIMIT, *, spec: JobSpec | None = None
    ) -> tuple[StartArgs, list[Blob]]:
        """The /agora/alloc/start args, and the blobs to upload before sending them. With the job's `spec`
        they carry its type and constraints (`jobs.start_context`): the provider checks the task by them."""
        uploads: list[Blob] = []
        module_bytes: bytes | None = None
        if self.module is not None:
            if len(self.module.data) <= inline_limit:
                module_bytes = self.module.data
            else:
                uploads.append(self.module)
        data: dict[str, bytes] = {}
        refs: dict[str, str] = {}
        budget = inline_limit
        for name, blob in sorted(self.local_inputs.items()):
            if len(blob.data) <= budget:
                data[name] = blob.data
                budget -= len(blob.data)
            else:
                refs[name] = blob.sha256
                uploads.append(blob)
        ctx = start_context(spec) if spec is not None else {}
        job_type, constraints = ctx.get("job_type"), tuple(ctx.get("constraints", ()))
        return StartArgs(job, job_id, self.wire, module_bytes, data, refs, job_type, constraints), uploads


def _find(path: str, base_dirs: Sequence[Path]) -> Path | None:
    p = Path(path).expanduser()
    if p.is_absolute():
        return p if p.is_file() else None
    for base in base_dirs:
        candidate = base / p
        if candidate.is_file():
            return candidate
    return None


def _read(path: Path, what: str) -> bytes:
    size = path.stat().st_size
    if size > MAX_FILE:
        raise AgoraError("input_too_large", f"{what} {path} is {size} bytes, over {MAX_FILE}")
    return path.read_bytes()


def _module_bytes(task: str, path: Path) -> bytes:
    """A module file as sent to the provider; a `.wat` text module is compiled here, so examples and
    first jobs need no compiler (the provider only ever receives binary wasm)."""
    data = _read(path, "module")
    if path.suffix != ".wat":
        return data
    import wasmtime  # only requesters that submit WAT pay for this import

    try:
        return bytes(wasmtime.wat2wasm(data.decode("utf-8")))
    except (UnicodeDecodeError, wasmtime.WasmtimeError) as exc:
        raise AgoraError("module_invalid", f"task {task}: {path.name} is not valid WAT: {exc}") from None


def prepare_task(task: TaskSpec, base_dirs: Sequence[Path]) -> PreparedTask:
    """Read the task's local files (blocking: call from a thread)."""
    wire = task.to_dict()
    module: Blob | None = None
    if task.engine == "wasm" and task.module is not None:
        ref = task.module
        if ref.startswith("cid:"):
            raise AgoraError(
                "module_invalid",
                f"task {task.name}: modules named by CID are not supported yet",
                hint="Name the module by path, http(s) URL or sha256:<hex>.",
            )
        if not ref.startswith(("sha256:", "http://", "https://")):
            found = _find(ref, base_dirs)
            if found is None:
                looked = ", ".join(str(b) for b in base_dirs) or "(no base directory)"
                raise AgoraError(
                    "module_invalid",
                    f"task {task.name}: module file {ref!r} does not exist (looked in {looked})",
                    hint="Check the path; relative paths are taken from where you ran the command.",
                )
            module = Blob.of(_module_bytes(task.name, found))
            wire["module"] = f"sha256:{module.sha256}"
    local: dict[str, Blob] = {}
    for spec in task.inputs:
        if spec.source.type != "local":
            continue
        raw = str(spec.source.params.get("path", ""))
        found = _find(raw, base_dirs)
        if found is None:
            raise AgoraError(
                "input_missing",
                f"task {task.name}: input {spec.name!r}: local file {raw!r} does not exist",
                details={"input": spec.name},
            )
        blob = Blob.of(_read(found, f"input {spec.name!r}"))
        if spec.sha256 is not None and spec.sha256 != blob.sha256:
            raise AgoraError(
                "storage_integrity",
                f"task {task.name}: input {spec.name!r} hashes to {blob.sha256}, the spec says {spec.sha256}",
            )
        local[spec.name] = blob
    return PreparedTask(task, wire, module, local)


__all__ = ["INLINE_LIMIT", "Blob", "PreparedTask", "prepare_task"]
