"""Races in the allocation lifecycle found in review (end_race.py, max_allocs.py): a cancel that lands
while the allocation is already ending, and many starts at once against `max_allocations`."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agora.compute import AllocationManager
from agora.compute.manager import _Live
from agora.errors import AgoraError
from agora.executors import ExecResult
from agora.transport import MemoryNetwork
from agora.wire import OutputDigest
from tests.unit.compute.harness import Provider, Requester, grant, leftovers, make_provider, until
from tests.unit.compute.test_allocations import call, start, task, wait_end

MISSING = "sha256:" + "ab" * 32  # not in the provider's CAS: staging fails at once, before any executor


class _GatedEnd(AllocationManager):
    """Holds every allocation at the door of `_end` until the test opens the gate."""

    entered: asyncio.Event
    gate: asyncio.Event

    async def _end(
        self,
        live: _Live,
        result: ExecResult | None,
        error: AgoraError | None,
        outputs: list[OutputDigest],
        started_at: float,
        work: Path,
        uris: dict[str, str],
    ) -> None:
        self.entered.set()
        await self.gate.wait()
        await super()._end(live, result, error, outputs, started_at, work, uris)


async def test_a_cancel_while_ending_does_not_leak(net: MemoryNetwork, tmp_path: Path, requester: Requester) -> None:
    p = await make_provider(net, tmp_path / "gated", manager_cls=_GatedEnd)
    m = p.manager
    assert isinstance(m, _GatedEnd)
    m.entered, m.gate = asyncio.Event(), asyncio.Event()
    try:
        await grant(p, requester)
        alloc_id = await start(requester, p, task(module=MISSING))
        await asyncio.wait_for(m.entered.wait(), 10)  # staging failed, no exec handle: it is ending
        reply = await call(requester, p, "/agora/alloc/cancel", {"alloc_id": alloc_id})
        assert reply["ended"] is False
        m.gate.set()
        st = await wait_end(requester, p, alloc_id)
        assert st["state"] == "failed" and st["error"]["code"] == "module_invalid", st
        await until(lambda: alloc_id not in m._live, "the allocation to leave _live")
        assert leftovers(p) == []
    finally:
        m.gate.set()
        await m.stop()
        await p.runtime.transport.close()
        await p.store.close()


async def _left(m: AllocationManager, alloc_id: str) -> bool:
    await until(lambda: alloc_id not in m._live, f"allocation {alloc_id} to leave _live")
    return True


async def test_timed_cancels_never_leak(provider: Provider, requester: Requester) -> None:
    """Cancels landing at every point of a start that fails in staging (the reviewer's loop)."""
    await grant(provider, requester)
    m = provider.manager
    for delay in range(40):
        alloc_id = await start(requester, provider, task(module=MISSING))
        for _ in range(delay):
            await asyncio.sleep(0)
        if alloc_id in m._live:
            await call(requester, provider, "/agora/alloc/cancel", {"alloc_id": alloc_id})
        st = await wait_end(requester, provider, alloc_id)
        assert st["state"] in ("failed", "cancelled"), st
        gone = alloc_id not in m._live or await _left(m, alloc_id)
        assert gone, f"allocation {alloc_id} (delay {delay}) is still in _live"
        assert leftovers(provider) == [], f"delay {delay}"
