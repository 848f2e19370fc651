"""The allocation record: one task running (or that ran) on this node for a requester (pure data).

States and the only moves between them:

    accepted -> staging -> running -> completed
        \\          \\          \\---> failed | cancelled
         \\          \\---------------> failed | cancelled
          \\--------------------------> failed | cancelled

Each move is appended to `history` with its time and cause, so "what happened to my task?" always
has an answer; a move not in the table is a bug and raises `alloc_invalid_state` instead of silently
rewriting history. The record is what the store keeps (`to_doc`/`from_doc`, JSON) and what
`/agora/alloc/status` returns (`to_wire`, DAG-CBOR: the signed usage receipt travels as bytes).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from agora.errors import AgoraError
from agora.wire.alloc import ACCEPTED, CANCELLED, COMPLETED, FAILED, RUNNING, STAGING
from agora.wire.alloc import ALLOC_STATES as STATES  # the protocol's states are the record's: one definition
from agora.wire.alloc import ALLOC_TERMINAL as TERMINAL

MOVES: dict[str, frozenset[str]] = {
    ACCEPTED: frozenset({STAGING, FAILED, CANCELLED}),
    STAGING: frozenset({RUNNING, FAILED, CANCELLED}),
    RUNNING: frozenset({COMPLETED, FAILED, CANCELLED}),
    COMPLETED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}
COLLECTION = "allocations"


@dataclass
class Allocation:
    id: str
    requester: str
    job: str
    job_id: str
    task: str
    engine: str
    need: dict[str, Any]  # the Capability reserved for it (to_dict form)
    invocation: str  # CID of the invocation that started it
    created_at: float
    state: str = ACCEPTED
    updated_at: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    exit_code: int | None = None
    reason: str | None = None
    outputs: list[dict[str, Any]] = field(default_factory=list)
    receipt: bytes | None = None

    def __post_init__(self) -> None:
        if not self.history:
            self.history.append({"state": self.state, "at": self.created_at, "cause": "start accepted"})
            self.updated_at = self.created_at

    @property
    def ended(self) -> bool:
        return self.state in TERMINAL

    def move(self, state: str, at: float, cause: str) -> None:
        if state not in MOVES.get(self.state, frozenset()):
            raise AgoraError("alloc_invalid_state", f"allocation {self.id} cannot go from {self.state} to {state}")
        self.state = state
        self.updated_at = at
        self.history.append({"state": state, "at": at, "cause": cause[:1000]})

    def _common(self) -> dict[str, Any]:
        return {
            "alloc_id": self.id,
            "requester": self.requester,
            "job": self.job,
            "job_id": self.job_id,
            "task": self.task,
            "engine": self.engine,
            "need": self.need,
            "invocation": self.invocation,
            "state": self.state,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "history": list(self.history),
            "error": self.error,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "outputs": list(self.outputs),
        }

    def to_doc(self) -> dict[str, Any]:
        """JSON for the store (the receipt as base64)."""
        doc = self._common()
        doc["receipt"] = base64.b64encode(self.receipt).decode("ascii") if self.receipt is not None else None
        return doc

    def to_wire(self) -> dict[str, Any]:
        """DAG-CBOR for a status reply (the receipt as the signed bytes themselves)."""
        doc = self._common()
        doc["receipt"] = self.receipt
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Allocation:
        receipt = doc.get("receipt")
        alloc = cls(
            id=doc["alloc_id"],
            requester=doc["requester"],
            job=doc["job"],
            job_id=doc["job_id"],
            task=doc["task"],
            engine=doc["engine"],
            need=doc["need"],
            invocation=doc["invocation"],
            created_at=doc["created_at"],
            state=doc["state"],
            updated_at=doc["updated_at"],
            history=list(doc["history"]),
            error=doc.get("error"),
            exit_code=doc.get("exit_code"),
            reason=doc.get("reason"),
            outputs=list(doc.get("outputs") or []),
            receipt=base64.b64decode(receipt) if isinstance(receipt, str) else None,
        )
        return alloc


__all__ = [
    "ACCEPTED",
    "CANCELLED",
    "COLLECTION",
    "COMPLETED",
    "FAILED",
    "MOVES",
    "RUNNING",
    "STAGING",
    "STATES",
    "TERMINAL",
    "Allocation",
]
