"""The allocation protocol, `/agora/alloc/*`: the one schema the requester (orchestrator) and the provider
(compute) both import, so a message is built and checked in exactly one place (pure: no I/O).

Version `ALLOC_VERSION` (1). Every request and reply may carry `"v"`; a request without one is version 1,
a request naming another version is refused (`invalid_argument`), so a future change is explicit.

Requests (args of the signed invocation), checked by the provider with `from_args` (`invalid_argument`
naming the field; a task that is not a mapping is `job_spec_invalid`, as the spec parser says):
- `StartArgs`   `/agora/alloc/start`: the job's name and id, the task spec (a mapping the provider parses
  with the job spec parser), and the module and small inputs inline, or named by sha256 after an upload.
- `WatchArgs`   `/agora/alloc/watch`: one long-poll that follows both the state and the log: it returns as
  soon as the state differs from `known_state` or a log line after `after_seq` exists (or at `wait_s`).
- `/agora/alloc/status` and `/agora/alloc/logs` take `alloc_id` (`check_alloc_id`), `wait_s`
  (`check_wait`) and, for logs, `after` and `limit` (`check_cursor`).

Replies, checked by the requester with `from_wire` (a reply in the wrong shape is `receipt_invalid`:
the provider is not to be believed):
- `StatusReply` the allocation's state, error, outputs and, once it ended, its signed usage receipt (the
  bytes as signed; the requester verifies them, the rest of the status is unsigned and only a hint).
- `LogsPage`    log lines after a cursor, the next cursor, how many lines the provider no longer holds
  (`dropped`), whether the log is closed and read to its end (`done`) or forgotten (`expired`).
- `WatchReply`  a `StatusReply` and a `LogsPage` together.

States: `accepted -> staging -> running -> completed | failed | cancelled`; `ALLOC_TERMINAL` is the one
list of end states both sides use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agora.errors import AgoraError

ALLOC_VERSION = 1

START = "/agora/alloc/start"
STATUS = "/agora/alloc/status"
LOGS = "/agora/alloc/logs"
WATCH = "/agora/alloc/watch"
CANCEL = "/agora/alloc/cancel"
FETCH = "/agora/alloc/fetch"
UPLOAD = "/agora/alloc/upload"

ACCEPTED = "accepted"
STAGING = "staging"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
ALLOC_STATES = (ACCEPTED, STAGING, RUNNING, COMPLETED, FAILED, CANCELLED)
ALLOC_TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})
# An allocation's states only move forward (compute.allocation's legal moves): a reply that goes back is a lie
STATE_RANK = {ACCEPTED: 0, STAGING: 1, RUNNING: 2, COMPLETED: 3, FAILED: 3, CANCELLED: 3}

MAX_LOG_LIMIT = 5000
DEFAULT_LOG_LIMIT = 500
_MAX_ID = 64
_MAX_STATE = 40


def _arg(message: str) -> AgoraError:
    return AgoraError("invalid_argument", message)


def _reply(message: str) -> AgoraError:
    return AgoraError("receipt_invalid", message, hint="The provider answered outside the allocation protocol.")


def check_version(data: Mapping[str, Any]) -> None:
    v = data.get("v", ALLOC_VERSION)
    if v != ALLOC_VERSION or isinstance(v, bool):
        raise _arg(f"allocation protocol version {str(v)[:20]!r} is not supported (this node speaks {ALLOC_VERSION})")


def check_alloc_id(args: Mapping[str, Any]) -> str:
    alloc_id = args.get("alloc_id")
    if not isinstance(alloc_id, str) or not alloc_id.startswith("alloc-") or len(alloc_id) > _MAX_ID:
        raise _arg("args.alloc_id must be an allocation id (alloc-...)")
    return alloc_id


def check_wait(args: Mapping[str, Any], cap: float) -> float:
    """`wait_s`, a long-poll's longest wait, cut to the provider's `cap`."""
    w = args.get("wait_s", 0)
    if isinstance(w, bool) or not isinstance(w, int | float) or w < 0:
        raise _arg("wait_s must be a non-negative number of seconds")
    return float(min(w, cap))


def check_cursor(args: Mapping[str, Any], name: str = "after") -> tuple[int, int]:
    """A log cursor (`after` or `after_seq`) and a page `limit`."""
    after, limit = args.get(name, 0), args.get("limit", DEFAULT_LOG_LIMIT)
    if type(after) is not int or type(limit) is not int or after < 0 or not 1 <= limit <= MAX_LOG_LIMIT:
        raise _arg(f"{name} must be >= 0 and limit 1 to {MAX_LOG_LIMIT}")
    return after, limit


# -- requests -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartArgs:
    job: str  # the job's name
    job_id: str
    task: Mapping[str, Any]  # the task spec as a mapping; the provider parses it with the job spec parser
    module_bytes: bytes | None = None
    input_data: Mapping[str, bytes] = field(default_factory=dict)  # small local inputs, inline
    input_refs: Mapping[str, str] = field(default_factory=dict)  # bigger ones, uploaded first: name -> sha256
    # The job's fields the provider checks the task by (`jobs.start_context`): its type (None: batch, as before
    # the field existed) and its hard constraints (each a mapping; their meaning is checked by `agora.jobs`).
    job_type: str | None = None
    constraints: tuple[Mapping[str, Any], ...] = ()
    # Placed by the market: the committed bid request's id, so the allocation takes the capacity the commit
    # reserved (agora.wire.market_rpc). None: a plain start on a grant, capacity reserved at start.
    reservation: str | None = None

    def to_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"v": ALLOC_VERSION, "job": self.job, "job_id": self.job_id, "task": dict(self.task)}
        if self.job_type is not None:
            args["job_type"] = self.job_type
        if self.constraints:
            args["constraints"] = [dict(c) for c in self.constraints]
        if self.reservation is not None:
            args["reservation"] = self.reservation
        if self.module_bytes is not None:
            args["module_bytes"] = self.module_bytes
        if self.input_data:
            args["input_data"] = dict(self.input_data)
        if self.input_refs:
            args["input_refs"] = dict(self.input_refs)
        return args

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> StartArgs:
        check_version(args)
        job, job_id = args.get("job"), args.get("job_id", "")
        if not isinstance(job, str) or not isinstance(job_id, str):
            raise _arg("args.job (the job's name) and args.job_id must be strings")
        task = args.get("task")
        if not isinstance(task, Mapping):
            raise AgoraError("job_spec_invalid", "the start request's `task` must be a task spec mapping")
        module_bytes = args.get("module_bytes")
        input_data = args.get("input_data", {})
        input_refs = args.get("input_refs", {})
        if module_bytes is not None and not isinstance(module_bytes, bytes):
            raise _arg("args.module_bytes must be bytes")
        if not isinstance(input_data, Mapping) or not all(
            isinstance(k, str) and isinstance(v, bytes) for k, v in input_data.items()
        ):
            raise _arg("args.input_data maps input names to bytes")
        if not isinstance(input_refs, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in input_refs.items()
        ):
            raise _arg("args.input_refs maps input names to sha256 hex")
        job_type = args.get("job_type")
        if job_type is not None and not isinstance(job_type, str):
            raise AgoraError("job_spec_invalid", "the start request's `job_type` must be a string")
        constraints = args.get("constraints") or []
        if not isinstance(constraints, list) or not all(isinstance(c, Mapping) for c in constraints):
            raise AgoraError("job_spec_invalid", "the start request's `constraints` must be a list of mappings")
        reservation = args.get("reservation")
        if reservation is not None and (not isinstance(reservation, str) or not 0 < len(reservation) <= 128):
            raise _arg("args.reservation must be the committed bid request's id")
        data, refs = dict(input_data), dict(input_refs)
        return cls(job, job_id, task, module_bytes, data, refs, job_type, tuple(constraints), reservation)


@dataclass(frozen=True)
class WatchArgs:
    alloc_id: str
    after_seq: int = 0  # the last log line seen
    known_state: str | None = None  # the last state seen (None: answer at once)
    wait_s: float = 0.0
    limit: int = DEFAULT_LOG_LIMIT

    def to_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {
            "v": ALLOC_VERSION,
            "alloc_id": self.alloc_id,
            "after_seq": self.after_seq,
            "wait_s": self.wait_s,
            "limit": self.limit,
        }
        if self.known_state is not None:
            args["known_state"] = self.known_state
        return args

    @classmethod
    def from_args(cls, args: Mapping[str, Any], max_wait_s: float) -> WatchArgs:
        check_version(args)
        alloc_id = check_alloc_id(args)
        after, limit = check_cursor(args, "after_seq")
        known = args.get("known_state")
        if known is not None and (not isinstance(known, str) or len(known) > _MAX_STATE):
            raise _arg("known_state must be a state name")
        return cls(alloc_id, after, known, check_wait(args, max_wait_s), limit)


# -- replies ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogLine:
    seq: int
    stream: str
    line: str
    ts: float

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "stream": self.stream, "line": self.line, "ts": self.ts}

    @classmethod
    def from_dict(cls, data: Any) -> LogLine:
        if not isinstance(data, Mapping):
            raise _reply("a log line must be a mapping")
        seq, stream, line, ts = data.get("seq"), data.get("stream"), data.get("line"), data.get("ts", 0.0)
        if type(seq) is not int or not isinstance(stream, str) or not isinstance(line, str):
            raise _reply("a log line is {seq: int, stream: str, line: str, ts: number}")
        if isinstance(ts, bool) or not isinstance(ts, int | float):
            raise _reply("a log line's ts must be a number")
        return cls(seq, stream, line, float(ts))


@dataclass(frozen=True)
class LogsPage:
    lines: list[LogLine]
    next: int  # the cursor to pass as `after` next time
    dropped: int  # lines after the cursor that the provider no longer holds
    done: bool  # the log is closed and this page reaches its end
    expired: bool = False  # the provider no longer keeps this allocation's log at all

    def to_dict(self) -> dict[str, Any]:
        return {
            "lines": [e.to_dict() for e in self.lines],
            "next": self.next,
            "dropped": self.dropped,
            "done": self.done,
            "expired": self.expired,
        }

    @classmethod
    def gone(cls, after: int) -> LogsPage:
        """The page for a log the provider no longer keeps."""
        return cls([], after, 0, True, True)

    @classmethod
    def from_wire(cls, data: Any, after: int = 0) -> LogsPage:
        """Checks the shape, that the cursor only moves forward and that the lines lie in order between the
        cursor sent and `next` (a provider cannot make a reader loop, nor repeat lines)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("lines"), list):
            raise _reply("a logs page must carry a list of lines")
        lines = [LogLine.from_dict(x) for x in data["lines"]]
        nxt, dropped = data.get("next", after), data.get("dropped", 0)
        if type(nxt) is not int or type(dropped) is not int or nxt < after or dropped < 0:
            raise _reply("a logs page's cursor must be an integer that does not go back")
        last = after
        for line in lines:  # the same lines again at a cursor that does not move would look like news forever
            if not last < line.seq <= nxt:
                raise _reply("a logs page's lines must come in order, after the cursor and up to its next")
            last = line.seq
        return cls(lines, nxt, dropped, bool(data.get("done")), bool(data.get("expired")))


@dataclass(frozen=True)
class StatusReply:
    alloc_id: str
    state: str
    error: dict[str, Any] | None = None
    outputs: list[dict[str, Any]] = field(default_factory=list)  # unsigned: must match the receipt's
    receipt: bytes | None = None  # the signed usage receipt, once the allocation ended
    extra: Mapping[str, Any] = field(default_factory=dict)  # the rest of the record (history, times...)

    @property
    def ended(self) -> bool:
        return self.state in ALLOC_TERMINAL

    def to_wire(self) -> dict[str, Any]:
        return {
            **self.extra,
            "v": ALLOC_VERSION,
            "alloc_id": self.alloc_id,
            "state": self.state,
            "error": self.error,
            "outputs": list(self.outputs),
            "receipt": self.receipt,
        }

    @classmethod
    def of_record(cls, record: Mapping[str, Any]) -> StatusReply:
        """The provider's side: its allocation record as sent (`Allocation.to_wire()`)."""
        known = {"alloc_id", "state", "error", "outputs", "receipt", "v"}
        return cls(
            alloc_id=record["alloc_id"],
            state=record["state"],
            error=record.get("error"),
            outputs=list(record.get("outputs") or []),
            receipt=record.get("receipt"),
            extra={k: v for k, v in record.items() if k not in known},
        )

    @classmethod
    def from_wire(cls, data: Any, alloc_id: str) -> StatusReply:
        if not isinstance(data, Mapping) or data.get("alloc_id") != alloc_id:
            raise _reply(f"the status reply is not for allocation {alloc_id}")
        state, error, outputs, receipt = data.get("state"), data.get("error"), data.get("outputs"), data.get("receipt")
        if not isinstance(state, str) or not state or len(state) > _MAX_STATE:
            raise _reply("the status reply has no state")
        if state not in STATE_RANK:
            raise _reply(f"the status reply's state {state[:40]!r} is not an allocation state")
        if error is not None and not isinstance(error, dict):
            raise _reply("the status reply's error must be a mapping")
        if outputs is None:
            outputs = []
        if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
            raise _reply("the status reply's outputs must be a list of mappings")
        if receipt is not None and not isinstance(receipt, bytes):
            raise _reply("the status reply's receipt must be the signed bytes")
        known = {"alloc_id", "state", "error", "outputs", "receipt", "v"}
        return cls(alloc_id, state, error, outputs, receipt, {k: v for k, v in data.items() if k not in known})


@dataclass(frozen=True)
class WatchReply:
    status: StatusReply
    logs: LogsPage

    def to_wire(self) -> dict[str, Any]:
        return {"v": ALLOC_VERSION, "status": self.status.to_wire(), "logs": self.logs.to_dict()}

    @classmethod
    def from_wire(cls, data: Any, alloc_id: str, after: int) -> WatchReply:
        if not isinstance(data, Mapping):
            raise _reply("a watch reply must be a mapping")
        return cls(StatusReply.from_wire(data.get("status"), alloc_id), LogsPage.from_wire(data.get("logs"), after))


__all__ = [
    "ACCEPTED",
    "ALLOC_STATES",
    "ALLOC_TERMINAL",
    "ALLOC_VERSION",
    "CANCEL",
    "CANCELLED",
    "COMPLETED",
    "DEFAULT_LOG_LIMIT",
    "FAILED",
    "FETCH",
    "LOGS",
    "MAX_LOG_LIMIT",
    "RUNNING",
    "STAGING",
    "START",
    "STATE_RANK",
    "STATUS",
    "UPLOAD",
    "WATCH",
    "LogLine",
    "LogsPage",
    "StartArgs",
    "StatusReply",
    "WatchArgs",
    "WatchReply",
    "check_alloc_id",
    "check_cursor",
    "check_version",
    "check_wait",
]
