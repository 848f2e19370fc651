"""Checks the requester makes before believing a provider: the usage receipt, then every output byte.

A receipt is accepted only when the provider's signature verifies over the exact bytes received, it
is the provider the task was sent to, it names this node as the requester, the allocation the start
call returned, and the CID of the start invocation this node signed itself (so a receipt for some
other run cannot be passed off for this one), and it lists the same outputs the status did. Outputs
are then fetched and hashed; a file whose SHA-256 or size differs from the receipt is refused
(`storage_integrity`) and removed. Output paths come from the provider, so they are checked before
they touch the disk: relative, no `..`, no empty parts. The unsigned state in the status must agree with
the signed receipt (`check_end`), and the outputs must fit in the task's disk before any is fetched
(`limit_outputs`).
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


MAX_OUTPUTS = 10_000


def limit_outputs(receipt: UsageReceipt, disk: int) -> None:
    """Before any download: the outputs a provider signed for must fit in the disk the task was given
    (it could not have written more), so a provider cannot make this node fetch without bound."""
    total = sum(max(0, o.size) for o in receipt.outputs)
    n = len(receipt.outputs)
    if n > MAX_OUTPUTS or total > disk or any(o.size < 0 for o in receipt.outputs):
        raise AgoraError(
            "receipt_invalid",
            f"allocation {receipt.alloc_id} claims {n} output(s) of {total} bytes in all, more than the task's "
            f"disk of {disk} bytes (or {MAX_OUTPUTS} files) allows; nothing was downloaded",
            hint="The provider reports outputs it cannot have produced within its limits; do not trust it.",
            details={"outputs": n, "bytes": total, "disk": disk, "max_outputs": MAX_OUTPUTS},
        )


def check_end(state: object, receipt: UsageReceipt, error: object) -> None:
    """The status's state is not signed; the receipt is. They must tell the same story: `completed` only
    for a clean exit 0, `cancelled` only for a cancelled run, `failed` only for a run that did not succeed,
    and a failure's error code must be the one signed."""
    clean = receipt.ok and receipt.error_code is None
    cancelled = receipt.reason == "cancelled" or receipt.error_code == "task_cancelled"
    agrees = {
        "completed": clean,
        "cancelled": cancelled and not clean,
        "failed": not clean and not cancelled,
    }.get(str(state), False)
    if agrees and state != "completed" and isinstance(error, dict) and receipt.error_code is not None:
        agrees = error.get("code") == receipt.error_code
    if not agrees:
        raise AgoraError(
            "receipt_invalid",
            f"allocation {receipt.alloc_id} is reported {str(state)[:40]!r} but its signed receipt says "
            f"{receipt.reason} (exit code {receipt.exit_code}, error {receipt.error_code})",
            hint="The provider's status contradicts what it signed; do not trust this result.",
        )


def safe_output_path(root: Path, rel: str) -> Path:
    p = PurePosixPath(rel)
    if not rel or p.is_absolute() or any(part in ("", ".", "..") for part in rel.split("/")) or "\x00" in rel:
        raise AgoraError("receipt_invalid", f"output path {rel[:200]!r} is not a safe relative path")
    return root.joinpath(*p.parts)


__all__ = ["MAX_OUTPUTS", "check_end", "limit_outputs", "safe_output_path", "verify_receipt"]
