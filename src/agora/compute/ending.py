"""How an allocation ends: the terminal state, cause and error from what happened, and the signed receipt.

Every ending goes through here, whether the task ran (`outcome` over the executor's result and the
error raised around it) or the node went down under it (`interrupted`: found in flight at start-up).
Both end with a usage receipt signed by this node: a requester trusts only what is signed, so an
allocation that ends without one reads as a broken or hostile provider (`receipt_invalid`) and is
never retried. An interruption is signed like any other ending, with error code `alloc_interrupted`
(retryable in the catalog) and reason `interrupted`, so the requester retries it per its policy.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from agora.codec import CID
from agora.compute.allocation import CANCELLED, COMPLETED, FAILED, RUNNING, Allocation
from agora.errors import AgoraError
from agora.executors import ExecResult, ExecStats
from agora.identity import Keypair
from agora.wire import OutputDigest, UsageReceipt

log = logging.getLogger("agora.compute")

INTERRUPTED = "interrupted"  # the receipt's reason when the node stopped or restarted under the task


@dataclass(frozen=True)
class Outcome:
    state: str  # completed | failed | cancelled
    cause: str  # the history line
    error: AgoraError | None
    reason: str  # the receipt's reason
    exit_code: int | None


def outcome(result: ExecResult | None, error: AgoraError | None) -> Outcome:
    """The terminal state of an allocation from the executor's result and the error raised around it."""
    if error is None and result is not None and result.ok:
        return Outcome(COMPLETED, "exited 0", None, result.reason, result.exit_code)
    if error is None and result is not None:
        state = CANCELLED if result.reason == "cancelled" else FAILED
        code = result.error_code or "task_failed"
        text = result.message or (f"exit code {result.exit_code}" if result.reason == "exited" else result.reason)
        error = AgoraError(code, text, details={"stderr_tail": result.stderr[-2000:].decode(errors="replace")})
        return Outcome(state, f"{result.reason}: {text}", error, result.reason, result.exit_code)
    assert error is not None
    state = CANCELLED if error.code == "task_cancelled" else FAILED
    reason: str
    if result is not None and not result.ok:
        reason = result.reason
    elif state == CANCELLED:
        reason = "cancelled"
    else:  # no result, or the task exited 0 and what followed failed (publishing its outputs)
        reason = INTERRUPTED if error.code == "alloc_interrupted" else "error"
    return Outcome(state, f"{error.code}: {error.message}", error, reason, result.exit_code if result else None)


def sign_usage(
    keypair: Keypair,
    alloc: Allocation,
    *,
    error_code: str | None,
    started_at: float,
    ended_at: float,
    stats: ExecStats | None,
    outputs: Sequence[OutputDigest],
) -> bytes | None:
    """The usage receipt's bytes, or None (logged, never raised) when it cannot be signed."""
    try:
        receipt = UsageReceipt.issue(
            keypair,
            alloc_id=alloc.id,
            requester=alloc.requester,
            job=alloc.job,
            task=alloc.task,
            engine=alloc.engine,
            exit_code=alloc.exit_code,
            reason=alloc.reason or "error",
            error_code=error_code,
            started_at=started_at,
            ended_at=ended_at,
            wall_s=stats.wall_seconds if stats else 0.0,
            cpu_s=stats.cpu_seconds if stats else 0.0,
            peak_memory_bytes=stats.peak_memory_bytes if stats else 0,
            outputs=outputs,
            invocation=CID.parse(alloc.invocation),
            iat=int(ended_at),
        )
    except Exception:
        log.exception("could not sign the usage receipt of %s", alloc.id)
        return None
    return receipt.raw


def interrupted(keypair: Keypair, alloc: Allocation, now: float) -> None:
    """Mark an allocation found in flight at start-up failed with `alloc_interrupted`, signed.

    The task's process died with the node, so nothing of it is reported: no exit code, no outputs,
    no usage; the receipt's start is when it began running (or was accepted)."""
    error = AgoraError("alloc_interrupted", "the node stopped while the allocation ran")
    started_at = next((h["at"] for h in alloc.history if h.get("state") == RUNNING), alloc.created_at)
    alloc.error = error.to_dict()
    alloc.exit_code = None
    alloc.reason = INTERRUPTED
    alloc.outputs = []
    alloc.receipt = sign_usage(
        keypair,
        alloc,
        error_code=error.code,
        started_at=float(started_at),
        ended_at=max(now, float(started_at)),
        stats=None,
        outputs=[],
    )
    alloc.move(FAILED, now, "node restarted")


__all__ = ["INTERRUPTED", "Outcome", "interrupted", "outcome", "sign_usage"]
