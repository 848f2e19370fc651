"""Limits on what starts may take (review: max_allocs.py): `max_allocations` holds under concurrent
starts, a failed start gives its slot back, and a wasm task is accounted as at least one core."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from typing import Any

from agora.errors import AgoraError
from agora.wire import UsageReceipt
from agora.wire.usage import MAX_OUTPUTS
from tests.unit.compute import wat
from tests.unit.compute.harness import Provider, Requester, grant, leftovers, until
from tests.unit.compute.test_allocations import START, call, start, task, wait_end

MISSING = "sha256:" + "ab" * 32


async def test_max_allocations_bounds_concurrent_starts(provider: Provider, requester: Requester) -> None:
    m = provider.manager
    m.settings = dataclasses.replace(m.settings, max_allocations=3)
    await grant(provider, requester)
    module = wat.spin()
    await provider.cas.put(module)
    spin: dict[str, Any] = task(
        module="sha256:" + hashlib.sha256(module).hexdigest(),
        resources={"cpu": "1m", "memory": "2Mi", "disk": 0},
        timeout=60,
    )
    args = {"job": "unit", "job_id": "job-1", "task": spin}

    async def one() -> dict[str, Any] | str:
        try:
            return dict(await call(requester, provider, START, args))
        except AgoraError as exc:
            return exc.code

    results = await asyncio.gather(*(one() for _ in range(30)))
    accepted = [r["alloc_id"] for r in results if isinstance(r, dict)]
    assert len(accepted) == 3 and len(m._live) == 3
    assert [r for r in results if not isinstance(r, dict)] == ["insufficient_capacity"] * 27
    for alloc_id in accepted:
        await call(requester, provider, "/agora/alloc/cancel", {"alloc_id": alloc_id})
    for alloc_id in accepted:
        assert (await wait_end(requester, provider, alloc_id))["state"] == "cancelled"
    await until(lambda: not m._live, "every allocation to end")
    assert leftovers(provider) == []


async def test_a_failed_record_releases_the_reserved_slot(provider: Provider, requester: Requester) -> None:
    """A start whose first record cannot be written holds neither a slot nor capacity."""
    await grant(provider, requester)
    m = provider.manager

    async def broken(alloc: Any, cause: str) -> None:
        raise AgoraError("internal", "the store is down")

    m._persist = broken  # type: ignore[method-assign]
    try:
        await call(requester, provider, START, {"job": "unit", "job_id": "j", "task": task(module=MISSING)})
    except AgoraError as exc:
        assert exc.code == "internal"
    else:
        raise AssertionError("the start should have failed")
    assert m._live == {} and leftovers(provider) == []


async def test_a_wasm_task_reserves_at_least_one_core(provider: Provider, requester: Requester) -> None:
    """A wasm task runs a whole thread with no CPU-rate limit: asking 1m still takes a core."""
    await grant(provider, requester)
    m = provider.manager
    m.settings = dataclasses.replace(m.settings, max_allocations=64)
    total = provider.capacity.total.cpu_millis
    assert total == 4000
    module = wat.spin()
    spin = task(resources={"cpu": "1m", "memory": "2Mi", "disk": 0}, timeout=60)
    ids = [await start(requester, provider, spin, module) for _ in range(4)]
    assert provider.capacity.free.cpu_millis == 0
    assert all(m._live[a].alloc.need["cpu_millis"] == 1000 for a in ids)
    try:
        await call(requester, provider, START, {"job": "unit", "job_id": "j", "task": spin, "module_bytes": module})
    except AgoraError as exc:
        assert exc.code == "insufficient_capacity" and exc.retryable
    else:
        raise AssertionError("a fifth wasm task should not fit on 4 cores")
    for a in ids:
        await call(requester, provider, "/agora/alloc/cancel", {"alloc_id": a})
    for a in ids:
        await wait_end(requester, provider, a)
    await until(lambda: not m._live, "every allocation to end")
    assert leftovers(provider) == []


async def test_a_task_writing_thousands_of_files_ends_recorded_with_a_clear_code(
    provider: Provider, requester: Requester
) -> None:
    """More files than a receipt can list (the wire's MAX_OUTPUTS): no traceback, a signed end."""
    await grant(provider, requester)
    n = MAX_OUTPUTS + 100
    big_disk = {"cpu": 1, "memory": "64Mi", "disk": "64Mi"}  # a small file takes a 4 KiB block on disk
    alloc_id = await start(requester, provider, task(timeout=120, resources=big_disk), wat.many_files(n))
    st = await wait_end(requester, provider, alloc_id)
    assert st["state"] == "failed" and st["error"]["code"] == "task_output_limit", st["error"]
    assert "none were collected" in st["error"]["message"] and st["outputs"] == []
    receipt = UsageReceipt.open(st["receipt"], expected_provider=provider.did)
    assert receipt.error_code == "task_output_limit" and receipt.exit_code == 0 and receipt.outputs == ()
    assert leftovers(provider) == []


async def test_the_operator_bounds_output_files_per_task(provider: Provider, requester: Requester) -> None:
    provider.manager.settings = dataclasses.replace(provider.manager.settings, max_output_files=3)
    await grant(provider, requester)
    ok = await wait_end(requester, provider, await start(requester, provider, task(), wat.many_files(3)))
    assert ok["state"] == "completed" and len(ok["outputs"]) == 3
    over = await wait_end(requester, provider, await start(requester, provider, task(), wat.many_files(4)))
    assert over["state"] == "failed" and over["error"]["code"] == "task_output_limit"
    assert over["error"]["details"]["max_files"] == 3
    assert leftovers(provider) == []
