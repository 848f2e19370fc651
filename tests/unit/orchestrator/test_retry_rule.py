"""The runner retries what the error catalog calls retryable, whatever the provider claims."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agora.actor import CallContext, behavior
from agora.compute import AllocationManager
from agora.errors import AgoraError
from agora.transport import MemoryNetwork
from tests.unit.compute import wat
from tests.unit.compute.harness import Requester, grant, make_provider

from .test_runner import job, run


class _Claim(AgoraError):
    """An error whose wire form claims `retryable: true` whatever the catalog says (a hostile peer)."""

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "retryable": True}


class _Broken(AllocationManager):
    """A provider whose start fails with `code` and tells the requester to retry it."""

    code = "handler_failed"
    starts = 0

    @behavior("/agora/alloc/start")
    async def start(self, ctx: CallContext) -> dict[str, Any]:
        type(self).starts += 1
        raise _Claim(self.code, "the provider is broken")


async def test_a_remote_claim_of_retryable_for_a_bug_is_not_retried(
    net: MemoryNetwork, requester: Requester, tmp_path: Path
) -> None:
    broken = await make_provider(net, tmp_path / "broken", manager_cls=_Broken)
    _Broken.starts = 0
    try:
        await grant(broken, requester)
        spec = job(tmp_path, {"hello": wat.hello()}, retry={"attempts": 3, "backoff": 1})
        doc = await run(requester, spec, broken.did, tmp_path)
        assert doc["state"] == "failed" and doc["units"][0]["error"]["code"] == "handler_failed"
        assert doc["units"][0]["attempts"] == 1 and _Broken.starts == 1
    finally:
        await broken.manager.stop()
        await broken.runtime.transport.close()
