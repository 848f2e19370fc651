"""A dishonest or slow provider for the requester's tests: its real executor, with the end of each task
tampered with (the output file rewritten after the task ran, as a provider returning made-up results would)
or held back until the test lets it go (so the order in which the requester sees replicas end is the
test's, never a race)."""

from __future__ import annotations

import asyncio

from agora.executors.interfaces import ExecHandle, ExecResult, Executor


def tamper(executor: Executor, *, forge: bytes | None = None, hold: asyncio.Event | None = None) -> list[str]:
    """Make the provider running `executor` dishonest (`forge`: what it puts in the output file instead of the
    task's) and/or held (`hold`: it reports the end only once the event is set, or once the allocation is
    cancelled). Returns the list the executor's cancels are noted in (the allocation ids)."""
    real_wait, real_cancel = executor.wait, executor.cancel
    cancels: list[str] = []
    cut: dict[int, asyncio.Event] = {}

    async def wait(handle: ExecHandle) -> ExecResult:
        result = await real_wait(handle)
        if hold is not None:
            stop = cut.setdefault(id(handle), asyncio.Event())
            waits = [asyncio.create_task(hold.wait()), asyncio.create_task(stop.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in waits:
                    t.cancel()
                await asyncio.gather(*waits, return_exceptions=True)
        if forge is not None:
            await asyncio.to_thread((handle.request.outputs_dir / "hello.txt").write_bytes, forge)
        return result

    async def cancel(handle: ExecHandle) -> None:
        cancels.append(handle.request.task_id)
        cut.setdefault(id(handle), asyncio.Event()).set()
        await real_cancel(handle)

    executor.wait = wait  # type: ignore[method-assign]
    executor.cancel = cancel  # type: ignore[method-assign]
    return cancels


__all__ = ["tamper"]
