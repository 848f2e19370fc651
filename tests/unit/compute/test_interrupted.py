"""A provider killed under a running allocation: after its restart the allocation ends with a signed
statement of interruption, which the requester accepts as retryable and retries per the job's policy."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agora.clock import SYSTEM_CLOCK
from agora.codec import CID
from agora.compute import AllocationManager, ComputeSettings
from agora.errors import AgoraError
from agora.orchestrator.verify import check_end, verify_receipt
from agora.resources import CapacityTracker
from agora.store import MemoryStore
from tests.unit.compute import wat
from tests.unit.compute.harness import TOTAL, Provider, Requester, grant, until
from tests.unit.compute.test_allocations import call, start, task


def serve(provider: Provider, new: AllocationManager) -> None:
    """The restarted manager takes over the commands in one step (no await between)."""
    provider.runtime.unregister(provider.manager)
    provider.runtime.register(new)
    provider.manager = new


def restarted(provider: Provider) -> AllocationManager:
    """What `kill -9` and a restart do: the old manager's writes no longer reach the node's store (its
    process is gone), and a new manager on the same store, keys and work root recovers. The caller swaps the
    two on the runtime with `serve` once `recover()` is done: a restarted node answers nothing before it has
    recovered, so there is no moment where the commands are unknown (a real caller sees a timeout there)."""
    old = provider.manager
    old.store = MemoryStore(SYSTEM_CLOCK)  # the dead process's writes go nowhere
    new = AllocationManager(
        keypair=provider.keypair,
        store=provider.store,
        registry=provider.registry,
        capacity=CapacityTracker(TOTAL),
        cas=provider.cas,
        work_root=provider.home / "work-after-restart",
        settings=ComputeSettings(max_wait_s=2.0, log_drain_s=2.0),
    )
    return new


async def test_an_interrupted_allocation_ends_with_a_signed_retryable_statement(
    provider: Provider, requester: Requester
) -> None:
    await grant(provider, requester)
    alloc_id = await start(requester, provider, task(timeout=120), wat.spin())
    await until(lambda: provider.manager.running() != [] and provider.manager.running()[0]["state"] == "running", "run")
    old = provider.manager
    new = restarted(provider)
    try:
        assert await new.recover() == 1
        serve(provider, new)
        st = await call(requester, provider, "/agora/alloc/status", {"alloc_id": alloc_id})
    finally:
        await old.stop()
    assert st["state"] == "failed" and st["error"]["code"] == "alloc_interrupted"
    doc = await provider.store.get("allocations", alloc_id)
    assert doc is not None
    receipt = verify_receipt(
        st["receipt"],
        provider=provider.did,
        requester=requester.did,
        alloc_id=alloc_id,
        invocation=CID.parse(doc["invocation"]),
        outputs=st["outputs"],
    )
    check_end(st["state"], receipt, st["error"])  # the requester believes it
    assert receipt.error_code == "alloc_interrupted" and receipt.reason == "interrupted"
    assert receipt.exit_code is None and receipt.outputs == ()
    assert AgoraError.from_dict(st["error"]).retryable


async def test_the_requester_retries_a_unit_whose_provider_restarted(
    provider: Provider, requester: Requester, tmp_path: Path
) -> None:
    await grant(provider, requester)
    (tmp_path / "spin.wasm").write_bytes(wat.spin())
    spec = {
        "name": "restarted",
        "tasks": [{"name": "spin", "module": "spin.wasm", "resources": {"cpu": 1, "memory": "64Mi"}, "timeout": 120}],
        "retry": {"attempts": 1, "backoff": 1},
    }
    summary = await requester.runner.submit(spec, node=provider.did, base_dirs=[tmp_path])
    await until(lambda: provider.manager.running() != [] and provider.manager.running()[0]["state"] == "running", "run")
    old = provider.manager
    new = restarted(provider)
    try:
        await new.recover()
        serve(provider, new)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 90  # generous for a loaded machine; the loop ends as soon as attempt 2 starts
        while True:  # the first attempt ends interrupted, and a second one starts
            doc = await requester.runner.get(summary["id"])
            unit = doc["units"][0]
            if unit["attempts"] == 2:
                break
            assert loop.time() < deadline, (unit["state"], unit.get("error"))
            await requester.runner.wait(summary["id"], 0.2)
        seen = [h["state"] for h in unit["history"]]  # every move, not a sample of them
        assert "waiting_retry" in seen, seen
        events = await requester.store.events(subject=summary["id"])
        causes = [str(e.data.get("cause")) for e in events]
        assert any(c.startswith("alloc_interrupted") for c in causes), causes
        assert not any("receipt_invalid" in c for c in causes), causes
        await requester.runner.cancel(summary["id"])
        doc = await requester.runner.wait(summary["id"], 10)
        assert doc["state"] == "cancelled"
    finally:
        await old.stop()
