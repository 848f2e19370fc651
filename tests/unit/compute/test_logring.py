"""Log rings are bounded by lines, bytes and count (review: logring.py, ring_pin.py)."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest

from agora.compute.logring import MAX_LINE, LogRing
from agora.compute.manager import AllocationManager, ComputeSettings
from agora.transport import MemoryNetwork
from tests.unit.compute import wat
from tests.unit.compute.harness import Provider, Requester, grant, make_provider
from tests.unit.compute.test_allocations import call, start, task, wait_end


def test_a_long_line_is_cut_and_marked() -> None:
    ring = LogRing(10)
    ring.append("stdout", "a" * (MAX_LINE * 4), 1.0)
    ring.append("stdout", "short", 2.0)
    page = ring.read(0)
    assert page.lines[0].line.startswith("a" * MAX_LINE) and "truncated" in page.lines[0].line
    assert len(page.lines[0].line) < MAX_LINE + 64
    assert page.lines[1].line == "short"


def test_a_ring_is_bounded_by_bytes_and_tells_what_it_dropped() -> None:
    ring = LogRing(2000, max_bytes=64 * 1024)
    for i in range(2000):
        ring.append("stdout", f"{i:04d}" + "x" * (MAX_LINE - 4), float(i))
    assert ring.bytes <= 64 * 1024
    page = ring.read(0, limit=5000)
    assert page.lines[-1].line.startswith("1999") and page.next == 2000
    assert page.dropped > 1900 and page.dropped + len(page.lines) == 2000
    kept = [int(e.line[:4]) for e in page.lines]
    assert kept == list(range(2000 - len(kept), 2000))  # the newest, in order, without holes
    ring.append("stderr", "y", 3.0)  # still appends, the count bound and the byte bound together
    assert ring.bytes <= 64 * 1024 and ring.read(ring.last_seq - 1).lines[0].line == "y"


def test_a_ring_rejects_a_byte_bound_smaller_than_one_line() -> None:
    with pytest.raises(ValueError):
        LogRing(10, max_bytes=100)


def _bare_manager(finished_logs: int) -> AllocationManager:
    """The reviewer's ring_pin.py: only what _keep_ring touches."""
    m = object.__new__(AllocationManager)
    m.settings = ComputeSettings(finished_logs=finished_logs)
    m._rings = OrderedDict()
    m._live = {}
    return m


def test_a_long_running_allocation_does_not_pin_finished_rings() -> None:
    m = _bare_manager(4)
    m._live["alloc-long"] = object()  # type: ignore[assignment]
    m._keep_ring("alloc-long", LogRing(1, max_bytes=8192))
    for i in range(1000):
        m._live[f"alloc-{i}"] = object()  # type: ignore[assignment]
        m._keep_ring(f"alloc-{i}", LogRing(1, max_bytes=8192))
        del m._live[f"alloc-{i}"]
    m._keep_ring("alloc-999", m._rings["alloc-999"])  # what _end does when an allocation ends
    assert list(m._rings) == ["alloc-long", "alloc-996", "alloc-997", "alloc-998", "alloc-999"]


async def test_finished_rings_are_evicted_while_one_runs(
    net: MemoryNetwork, tmp_path: Path, requester: Requester
) -> None:
    """End to end: a long task runs while short ones come and go; only `finished_logs` rings stay."""
    p: Provider = await make_provider(net, tmp_path / "p")
    m = p.manager
    m.settings = ComputeSettings(max_wait_s=2.0, log_drain_s=2.0, finished_logs=2)
    try:
        await grant(p, requester)
        long_id = await start(requester, p, task(timeout=120), wat.spin())
        short = []
        for _ in range(5):
            alloc_id = await start(requester, p, task(), wat.hello())
            assert (await wait_end(requester, p, alloc_id))["state"] == "completed"
            short.append(alloc_id)
        assert set(m._rings) == {long_id, *short[-2:]}
        gone = await call(requester, p, "/agora/alloc/logs", {"alloc_id": short[0]})
        assert gone["expired"] is True
        kept = await call(requester, p, "/agora/alloc/logs", {"alloc_id": short[-1]})
        assert kept["expired"] is False and kept["lines"]
        await call(requester, p, "/agora/alloc/cancel", {"alloc_id": long_id})
        await wait_end(requester, p, long_id)
    finally:
        await m.stop()
        await p.runtime.transport.close()
        await p.store.close()
