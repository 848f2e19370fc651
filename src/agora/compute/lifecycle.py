"""One allocation's life as an object that owns what it holds and gives it back in order.

An `AllocationRun` owns:

* an exit stack (`held`) of what the allocation holds on this node: its capacity reservation (entered
  first, given back last), its work dir (entered before the dir is made), and, nested inside the body,
  its executor handle (`executor_handle`: cleaned up before the outputs are collected, since the process
  executor gives the outputs dir back to the node only then). Closing the stack gives them back in the
  reverse order; nothing depends on a flag saying how far the run got.
* a task group holding its `body` (staging, running, collecting) and its log pump. A cancel cancels the
  body, never the task that records the ending: once the body is over, the ending (close `held`, sign,
  record) runs to completion whatever arrives, because nothing can interrupt it.

The body reports how it ended in `result`/`error`/`outputs`/`uris` instead of raising, so the owner
always reaches the ending with a full account (see `AllocationManager._run`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from agora.compute.allocation import Allocation
from agora.compute.logring import LogRing
from agora.errors import AgoraError
from agora.executors import ExecHandle, ExecRequest, ExecResult, Executor
from agora.models.job import TaskSpec
from agora.wire import OutputDigest

T = TypeVar("T")


@dataclass(eq=False)
class AllocationRun:
    alloc: Allocation
    spec: TaskSpec
    ring: LogRing
    work: Path
    started_at: float = 0.0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    held: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    tg: asyncio.TaskGroup | None = None
    task: asyncio.Task[None] | None = None  # the owner: runs the body, then the ending
    body: asyncio.Task[None] | None = None
    executor: Executor | None = None
    handle: ExecHandle | None = None
    cancel_cause: str | None = None
    uses: set[str] = field(default_factory=set)  # CAS digests it reads (module, inputs): never swept meanwhile
    stopping: bool = False  # the node is stopping: a cancel is an interruption, not the requester's
    # how the body ended
    result: ExecResult | None = None
    error: AgoraError | None = None
    outputs: list[OutputDigest] = field(default_factory=list)
    uris: dict[str, str] = field(default_factory=dict)  # output path -> where it is published

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    async def cancel(self, cause: str) -> None:
        """Stop the task (running: through its executor; staging: interrupt the body). Once the body is
        over this only notes the cause: the ending is already being recorded."""
        if self.alloc.ended or self.cancel_cause is not None:
            return
        self.cancel_cause = cause
        if self.handle is not None and self.executor is not None:
            await self.executor.cancel(self.handle)
        elif self.body is not None and not self.body.done():
            self.body.cancel()

    def interrupted(self) -> AgoraError:
        """What a cancelled body ended with."""
        code = "alloc_interrupted" if self.stopping else "task_cancelled"
        return AgoraError(code, self.cancel_cause or "cancelled")


@contextlib.asynccontextmanager
async def executor_handle(executor: Executor, request: ExecRequest) -> AsyncIterator[ExecHandle]:
    """A started task, cleaned up (processes, cgroup, sandbox) when the block is left, however."""
    handle = await executor.start(request)
    try:
        yield handle
    finally:
        with contextlib.suppress(Exception):
            await executor.cleanup(handle)


async def uninterrupted(step: Awaitable[T]) -> T:
    """Await `step` (a worker thread's work, say) to its end even when cancelled, then re-raise the cancel.

    A thread cannot be interrupted: abandoning it on a cancel would let it go on making files after the
    cleanup that was meant to remove them."""
    future = asyncio.ensure_future(step)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await future
        raise


__all__ = ["AllocationRun", "executor_handle", "uninterrupted"]
