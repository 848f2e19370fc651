"""`EventRecorder`: write a state transition to the persistent event log and to the log, in one call.

Why a Protocol instead of importing `agora.store`: telemetry and store sit in the same layer and must
not import each other. Anything with an `append_event(kind, subject, data)` coroutine is a sink; a
`Store` is one, and so is anything a test or the simulator wants to collect events in.

Event data is redacted like log fields before it is stored: the event log is queryable through the
API, so it must never hold a secret either. A sink failure is logged and raised, never swallowed:
a transition that was not recorded must not look as if it had been.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Final, Protocol

from agora.errors import AgoraError
from agora.telemetry.logging import log_event, redact

KIND_RE: Final = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+){1,15}\Z")

NODE_STARTED: Final = "node.started"
NODE_STOPPED: Final = "node.stopped"
PEER_JOINED: Final = "peer.joined"
PEER_LOST: Final = "peer.lost"
ALLOC_STATE: Final = "alloc.state"
JOB_STATE: Final = "job.state"
CONTRACT_STATE: Final = "contract.state"
POOL_STATE: Final = "pool.state"


class EventSink(Protocol):
    async def append_event(self, kind: str, subject: str, data: dict[str, Any], /) -> Any: ...


class EventRecorder:
    def __init__(
        self,
        sink: EventSink | None,
        *,
        logger: logging.Logger | str = "agora.events",
        level: int = logging.INFO,
    ) -> None:
        self._sink = sink
        self._logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self._level = level

    async def record(self, kind: str, subject: str, /, **data: Any) -> Any:
        """Store and log one event; return what the sink returned (a `Store` returns the `Event`).

        `kind` is a dotted lower-case name with at least two parts ("peer.joined"); `subject` names
        what the event is about (a DID, a job id). Without a sink the event is only logged.
        """
        if not isinstance(kind, str) or not KIND_RE.match(kind):
            raise AgoraError(
                "invalid_argument", f"event kind {kind!r} must be a dotted lower-case name such as 'peer.joined'"
            )
        if not isinstance(subject, str) or not subject:
            raise AgoraError("invalid_argument", "an event needs a non-empty subject (a DID, a job id...)")
        clean = redact(data)
        assert isinstance(clean, dict)
        result: Any = None
        if self._sink is not None:
            try:
                result = await self._sink.append_event(kind, subject, clean)
            except Exception as exc:
                log_event(
                    self._logger,
                    f"event {kind} could not be recorded",
                    logging.ERROR,
                    event=kind,
                    subject=subject,
                    data=clean,
                    error=str(exc),
                )
                raise
        fields: dict[str, Any] = {"event": kind, "subject": subject, "data": clean}
        seq = getattr(result, "seq", None)
        if isinstance(seq, int):
            fields["seq"] = seq
        log_event(self._logger, f"event {kind}", self._level, **fields)
        return result


__all__ = [
    "ALLOC_STATE",
    "CONTRACT_STATE",
    "JOB_STATE",
    "NODE_STARTED",
    "NODE_STOPPED",
    "PEER_JOINED",
    "PEER_LOST",
    "POOL_STATE",
    "EventRecorder",
    "EventSink",
]
