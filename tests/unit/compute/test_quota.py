"""The provider's disk: per-requester quotas on its store, and what the sweep removes (compute/quota.py)."""

from __future__ import annotations

import hashlib

import pytest

from agora.compute import StoreLimits
from agora.errors import AgoraError
from agora.wire import UsageReceipt
from tests.unit.compute import wat
from tests.unit.compute.harness import Provider, Requester, grant, leftovers, until
from tests.unit.compute.test_allocations import call, start, task, wait_end

FETCH = "/agora/alloc/fetch"


def limits(provider: Provider, **kw: float) -> None:
    provider.manager.ledger.limits = StoreLimits(**kw)  # type: ignore[arg-type]


def stored(provider: Provider, data: bytes) -> bool:
    return provider.cas.path_of(hashlib.sha256(data).hexdigest()).exists()


async def test_outputs_over_the_requesters_quota_end_the_allocation_with_a_clear_code(
    provider: Provider, requester: Requester
) -> None:
    await grant(provider, requester)
    module = wat.hello(content="hello output\n")  # 13 bytes of output
    limits(provider, quota_bytes=len(module) + 5)  # room for the module, not for the output
    alloc_id = await start(requester, provider, task(), module)
    st = await wait_end(requester, provider, alloc_id)
    assert st["state"] == "failed" and st["error"]["code"] == "storage_quota_exceeded", st["error"]
    assert st["error"]["details"] == {"used": len(module), "quota": len(module) + 5, "needed": 13}
    receipt = UsageReceipt.open(st["receipt"], expected_provider=provider.did)
    assert receipt.error_code == "storage_quota_exceeded" and receipt.outputs == ()
    assert not stored(provider, b"hello output\n")
    assert await provider.manager.ledger.usage(requester.did) == len(module)
    assert leftovers(provider) == []


async def test_an_inline_module_and_an_upload_over_the_quota_are_refused(
    provider: Provider, requester: Requester
) -> None:
    await grant(provider, requester)
    module = wat.hello()
    limits(provider, quota_bytes=len(module) - 1)
    st = await wait_end(requester, provider, await start(requester, provider, task(), module))
    assert st["state"] == "failed" and st["error"]["code"] == "storage_quota_exceeded"
    assert not stored(provider, module)
    blob = b"x" * 1000
    args = {"sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob), "offset": 0, "data": blob}
    with pytest.raises(AgoraError) as err:
        await call(requester, provider, "/agora/alloc/upload", args)
    assert err.value.code == "storage_quota_exceeded"
    assert not stored(provider, blob) and await provider.manager.ledger.usage(requester.did) == 0


async def test_a_fetched_output_is_swept_after_the_grace_and_the_module_after_its_retention(
    provider: Provider, requester: Requester
) -> None:
    await grant(provider, requester)
    limits(provider, fetched_grace_s=0.0)
    module = wat.hello(content="fetch me\n")
    alloc_id = await start(requester, provider, task(), module)
    st = await wait_end(requester, provider, alloc_id)
    [out] = st["outputs"]
    assert await provider.manager.sweep() == 0  # nothing fetched, nothing expired
    assert stored(provider, b"fetch me\n")
    chunk = await call(requester, provider, FETCH, {"alloc_id": alloc_id, "sha256": out["sha256"], "offset": 0})
    assert chunk["eof"] and chunk["data"] == b"fetch me\n"
    assert await provider.manager.sweep() == 1
    assert not stored(provider, b"fetch me\n") and stored(provider, module)
    assert not await provider.manager.owners.owns(requester.did, out["sha256"])
    with pytest.raises(AgoraError) as err:
        await call(requester, provider, FETCH, {"alloc_id": alloc_id, "sha256": out["sha256"], "offset": 0})
    assert err.value.code == "input_missing"
    limits(provider, retention_s=0.0)
    alloc_id = await start(requester, provider, task(), module)  # renews the module's holding, at 0 s
    await wait_end(requester, provider, alloc_id)
    assert await provider.manager.sweep() == 2  # the module and this run's output
    assert not stored(provider, module) and await provider.manager.ledger.usage(requester.did) == 0


async def test_the_sweep_leaves_what_a_live_allocation_uses(provider: Provider, requester: Requester) -> None:
    await grant(provider, requester)
    limits(provider, retention_s=0.0)
    module = wat.spin()
    alloc_id = await start(requester, provider, task(timeout=120), module)
    await until(lambda: provider.manager.running() != [] and provider.manager.running()[0]["state"] == "running", "run")
    assert await provider.manager.sweep() == 0  # expired, but the running task reads it
    assert stored(provider, module)
    await call(requester, provider, "/agora/alloc/cancel", {"alloc_id": alloc_id})
    await wait_end(requester, provider, alloc_id)
    assert await provider.manager.sweep() == 1
    assert not stored(provider, module)
