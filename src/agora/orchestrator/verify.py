"""Checks the requester makes before believing a provider: the usage receipt, then every output byte.

A receipt is accepted only when the provider's signature verifies over the exact bytes received, it
is the provider the task was sent to, it names this node as the requester, the allocation the start
call returned, and the CID of the start invocation this node signed itself (so a receipt for some
other run cannot be passed off for this one), and it lists the same outputs the status did. Outputs
are then fetched and hashed; a file whose SHA-256 or size differs from the receipt is refused
(`storage_integrity`) and removed. Output paths come from the provider, so they are checked before
they touch the disk: relative, no `..`, no empty parts.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from agora.codec import CID
from agora.errors import AgoraError
from agora.wire import UsageReceipt


def verify_receipt(
    raw: object,
    *,
    provider: str,
    requester: str,
    alloc_id: str,
    invocation: CID,
    outputs: list[dict[str, Any]] | None = None,
) -> UsageReceipt:
    if not isinstance(raw, bytes):
        raise AgoraError("receipt_invalid", f"allocation {alloc_id} ended without a signed usage receipt")
    receipt = UsageReceipt.open(raw, expected_provider=provider)
    if receipt.alloc_id != alloc_id:
        raise AgoraError("receipt_invalid", f"the receipt is for allocation {receipt.alloc_id}, not {alloc_id}")
    if receipt.requester != requester:
        raise AgoraError("receipt_invalid", f"the receipt names requester {receipt.requester}, not this node")
    if receipt.invocation != invocation:
        raise AgoraError("receipt_invalid", "the receipt cites another start invocation than the one sent")
    if outputs is not None:
        listed = sorted((str(o.get("path")), str(o.get("sha256")), o.get("size"), o.get("uri")) for o in outputs)
        signed = sorted((o.path, o.sha256, o.size, o.uri) for o in receipt.outputs)
        if listed != signed:
            raise AgoraError("receipt_invalid", "the outputs in the status differ from those in the signed receipt")
    return receipt


def safe_output_path(root: Path, rel: str) -> Path:
    p = PurePosixPath(rel)
    if not rel or p.is_absolute() or any(part in ("", ".", "..") for part in rel.split("/")) or "\x00" in rel:
        raise AgoraError("receipt_invalid", f"output path {rel[:200]!r} is not a safe relative path")
    return root.joinpath(*p.parts)


__all__ = ["safe_output_path", "verify_receipt"]
