"""`ProviderLink`: the requester's calls to one provider's /agora/alloc behaviors, with the right proofs.

Proofs: a task run on this node itself needs none (the node invokes about itself); on another node,
the delegation that node granted this one is picked from the held ones (`proofs_for`) for every call.
A refusal for lack of authority is re-raised with the one hint that helps: ask that node's operator
for `agora node grant <this DID>`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agora.actor import Runtime
from agora.codec import CID
from agora.errors import AgoraError
from agora.orchestrator.prepare import Blob
from agora.ucan import Delegation
from agora.wire import alloc
from agora.wire.alloc import LogsPage, StartArgs, StatusReply, WatchArgs, WatchReply

ProofSource = Callable[[str, str], list[Delegation]]
CHUNK = 256 * 1024
_AUTH_CODES = frozenset({"ucan_unauthorized", "ucan_invalid_claim", "ucan_command_not_delegated"})


class ProviderLink:
    def __init__(self, runtime: Runtime, target: str, proofs_for: ProofSource, *, timeout: float = 10.0) -> None:
        self.runtime = runtime
        self.target = target
        self.proofs_for = proofs_for
        self.timeout = timeout

    @property
    def local(self) -> bool:
        return self.target == self.runtime.did

    def _proofs(self, command: str) -> list[Delegation]:
        return [] if self.local else self.proofs_for(self.target, command)

    def _explain(self, err: AgoraError, command: str, had_proofs: bool) -> AgoraError:
        if err.code not in _AUTH_CODES:
            return err
        me = self.runtime.did
        what = "the delegation it holds does not cover" if had_proofs else "it holds no delegation for"
        return AgoraError(
            err.code,
            f"{self.target} refused {command} from this node ({what} it): {err.message}",
            hint=f"On {self.target}'s machine run `agora node grant {me}`, or import a token it gave you with "
            "`agora grant add TOKEN`.",
            retryable=False,
            details={**err.details, "provider": self.target, "requester": me},
        )

    async def _call_with(self, command: str, args: dict[str, Any], timeout: float | None) -> tuple[Any, CID]:
        proofs = self._proofs(command)
        request = self.runtime.build_request(self.target, command, args, proofs=proofs)
        try:
            receipt = await self.runtime.send_request(self.target, request, timeout=timeout or self.timeout)
            return receipt.result(), request.invocation.cid
        except AgoraError as err:
            raise self._explain(err, command, bool(proofs)) from None

    async def call(self, command: str, args: dict[str, Any], *, timeout: float | None = None) -> Any:
        result, _ = await self._call_with(command, args, timeout)
        return result

    async def start(self, args: StartArgs) -> tuple[str, CID]:
        """Start an allocation; returns its id and the CID of the invocation (the receipt must cite it)."""
        result, cid = await self._call_with(alloc.START, args.to_args(), None)
        if not isinstance(result, dict) or not isinstance(result.get("alloc_id"), str):
            raise AgoraError("receipt_invalid", f"{self.target} answered start without an allocation id")
        return str(result["alloc_id"]), cid

    async def status(self, alloc_id: str, known_state: str | None = None, wait_s: float = 0.0) -> StatusReply:
        args: dict[str, Any] = {"alloc_id": alloc_id, "wait_s": wait_s}
        if known_state is not None:
            args["known_state"] = known_state
        result = await self.call(alloc.STATUS, args, timeout=self.timeout + wait_s)
        return StatusReply.from_wire(result, alloc_id)

    async def logs(self, alloc_id: str, after: int, wait_s: float = 0.0) -> LogsPage:
        args = {"alloc_id": alloc_id, "after": after, "wait_s": wait_s}
        result = await self.call(alloc.LOGS, args, timeout=self.timeout + wait_s)
        return LogsPage.from_wire(result, after)

    async def watch(self, args: WatchArgs) -> WatchReply:
        """One long-poll for the allocation's state and its log lines after `args.after_seq`."""
        result = await self.call(alloc.WATCH, args.to_args(), timeout=self.timeout + args.wait_s)
        return WatchReply.from_wire(result, args.alloc_id, args.after_seq)

    async def cancel(self, alloc_id: str) -> dict[str, Any]:
        return dict(await self.call(alloc.CANCEL, {"alloc_id": alloc_id}))

    async def upload(self, blob: Blob) -> None:
        size = len(blob.data)
        for offset in range(0, size, CHUNK):
            args = {"sha256": blob.sha256, "size": size, "offset": offset, "data": blob.data[offset : offset + CHUNK]}
            reply = await self.call(alloc.UPLOAD, args)
            if reply.get("complete"):
                return
        raise AgoraError("storage_integrity", f"{self.target} did not complete the upload of {blob.sha256}")

    async def fetch_to(self, alloc_id: str, sha256: str, size: int, dest: Path) -> None:
        """Download one output to `dest`, verifying its hash and size; nothing is left on a mismatch."""
        await asyncio.to_thread(dest.parent.mkdir, parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part-{secrets.token_hex(4)}")
        h = hashlib.sha256()
        got = 0
        try:
            f = await asyncio.to_thread(open, tmp, "wb")
            try:
                for _ in range(size // CHUNK + 2):  # bounded: one more round than the size needs
                    args = {"alloc_id": alloc_id, "sha256": sha256, "offset": got, "length": CHUNK}
                    reply = await self.call(alloc.FETCH, args)
                    data = reply.get("data") if isinstance(reply, dict) else None
                    if not isinstance(data, bytes):
                        raise AgoraError("receipt_invalid", f"{self.target} answered fetch without data")
                    h.update(data)
                    got += len(data)
                    await asyncio.to_thread(f.write, data)
                    if reply.get("eof") or not data or got > size:
                        break
            finally:
                await asyncio.to_thread(f.close)
            if got != size or h.hexdigest() != sha256:
                raise AgoraError(
                    "storage_integrity",
                    f"output {dest.name}: got {got} bytes hashing to {h.hexdigest()}, the signed receipt says "
                    f"{size} bytes with sha256 {sha256}",
                    hint="The provider sent different bytes than it signed for; do not trust this result.",
                    details={"expected_sha256": sha256, "actual_sha256": h.hexdigest()},
                )
            await asyncio.to_thread(os.replace, tmp, dest)
        finally:
            await asyncio.to_thread(tmp.unlink, True)


__all__ = ["ProofSource", "ProviderLink"]
