"""The pieces an allocation's life is built from (compute/lifecycle.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from agora.compute.lifecycle import uninterrupted


async def test_a_cancelled_thread_step_is_waited_for_before_the_cancel_goes_on() -> None:
    """A cancel during `to_thread(mkdir)` must not let the cleanup run while the thread still makes files."""
    release, entered = threading.Event(), threading.Event()
    done: list[str] = []

    def step() -> str:
        entered.set()
        assert release.wait(10)
        done.append("made")
        return "made"

    task = asyncio.create_task(uninterrupted(asyncio.to_thread(step)))
    assert await asyncio.to_thread(entered.wait, 10)
    task.cancel()
    for _ in range(20):  # let the cancel land and propagate (loop turns, not time)
        await asyncio.sleep(0)
    assert not task.done()  # still waiting for the thread
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert done == ["made"]  # the step finished before the cancel reached the caller


async def test_an_uncancelled_step_returns_its_value() -> None:
    assert await uninterrupted(asyncio.to_thread(lambda: 42)) == 42
