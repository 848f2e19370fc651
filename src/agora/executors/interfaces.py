"""The Executor interface every sandbox implements, and the data it takes and gives.

An executor runs one task: a wasm module, a sandboxed process or a container. It knows nothing of
jobs, markets or UCAN; `compute` turns a job's task into an `ExecRequest` and reads the `ExecResult`.
Every executor passes the same conformance suite (tests/integration/executors/conformance.py).

Lifecycle: `handle = await ex.start(req)`; then `await ex.wait(handle)` (returns when the task ends,
for any reason), `await ex.cancel(handle)`, `ex.logs(handle)` (async iterator of `LogLine`, live,
ends when the task ends), `await ex.stats(handle)`, and always `await ex.cleanup(handle)`, which
removes every process, cgroup, container and temp dir the task created. `cleanup` is idempotent.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Engine = Literal["wasm", "process", "docker", "firecracker"]
EndReason = Literal["exited", "timeout", "oom", "disk_limit", "cancelled", "trap", "error"]


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 256 * 1024 * 1024
    cpu_millis: int = 1000  # 1000 = one full core
    pids: int = 64
    disk_bytes: int = 1024 * 1024 * 1024  # cap on what the task may write into its output dir
    timeout_s: float = 60.0  # wall clock, from start


@dataclass(frozen=True)
class ExecRequest:
    """What to run. `work_dir` belongs to the task: `inputs/` (mounted read-only) and `outputs/`
    (writable, collected afterwards) live under it; the executor creates neither."""

    task_id: str
    engine: Engine
    work_dir: Path
    # wasm: path to the module file; docker: image reference; process: unused
    module: str | None = None
    image: str | None = None
    command: list[str] = field(default_factory=list)  # process/docker argv[0:]; wasm: argv[1:] are args
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    stdin: bytes | None = None
    limits: Limits = field(default_factory=Limits)
    network: bool = False  # off unless the task asks for it
    allow_pull: bool = False  # docker only: never pull implicitly

    @property
    def inputs_dir(self) -> Path:
        return self.work_dir / "inputs"

    @property
    def outputs_dir(self) -> Path:
        return self.work_dir / "outputs"


@dataclass(frozen=True)
class LogLine:
    stream: Literal["stdout", "stderr"]
    line: str
    ts: float


@dataclass(frozen=True)
class ExecStats:
    cpu_seconds: float = 0.0
    peak_memory_bytes: int = 0
    wall_seconds: float = 0.0


@dataclass(frozen=True)
class ExecResult:
    task_id: str
    exit_code: int | None  # None when it never exited normally (killed, trap, timeout)
    reason: EndReason
    stats: ExecStats
    stdout: bytes = b""  # bounded tail (see MAX_CAPTURE), the full stream goes through logs()
    stderr: bytes = b""
    error_code: str | None = None  # an errors.CATALOG code when reason is not a clean exit 0
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.reason == "exited" and self.exit_code == 0


MAX_CAPTURE = 1024 * 1024


@dataclass(frozen=True)
class Availability:
    engine: Engine
    available: bool
    reason: str = ""  # why not, in words a person can act on
    details: dict[str, str] = field(default_factory=dict)


class ExecHandle:
    """Opaque per-task token returned by `start`; executors subclass it to hold their state."""

    def __init__(self, request: ExecRequest) -> None:
        self.request = request


class Executor(abc.ABC):
    engine: Engine

    @abc.abstractmethod
    def probe(self) -> Availability:
        """Can this engine run here? Cheap, side-effect free, never raises."""

    @abc.abstractmethod
    async def start(self, req: ExecRequest) -> ExecHandle:
        """Begin running; raises AgoraError (executor_unavailable, module_invalid, image_not_found,
        executor_failed) when it cannot start, leaving nothing behind."""

    @abc.abstractmethod
    async def wait(self, handle: ExecHandle) -> ExecResult: ...

    @abc.abstractmethod
    async def cancel(self, handle: ExecHandle) -> None: ...

    @abc.abstractmethod
    def logs(self, handle: ExecHandle) -> AsyncIterator[LogLine]: ...

    @abc.abstractmethod
    async def stats(self, handle: ExecHandle) -> ExecStats: ...

    @abc.abstractmethod
    async def cleanup(self, handle: ExecHandle) -> None: ...

    async def run(self, req: ExecRequest) -> ExecResult:
        """start + wait + cleanup, for callers that need nothing in between."""
        handle = await self.start(req)
        try:
            return await self.wait(handle)
        finally:
            await self.cleanup(handle)


__all__ = [
    "MAX_CAPTURE",
    "Availability",
    "EndReason",
    "Engine",
    "ExecHandle",
    "ExecRequest",
    "ExecResult",
    "ExecStats",
    "Executor",
    "Limits",
    "LogLine",
]
