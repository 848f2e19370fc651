"""The job record a requester keeps: the job's state, and one unit per task instance it runs (pure data).

Job states: submitted -> running -> completed | failed | cancelled (submitted may also end directly
in failed or cancelled). A job placed by the market (no `--node`) goes submitted -> matching ->
bidding -> awarded -> committed -> running, following the placement moves of its units until the
first one runs, and visits `pending` while a unit fits nowhere (the queue).

A unit (one instance of one task: `name`, or `name-<i>` when the job's count is above 1) goes
pending -> starting -> running -> completed | failed | cancelled, visits waiting_retry between
attempts, and is `skipped` when an earlier stage of the workflow failed. Placed by the market it goes
pending -> matching -> bidding -> awarded -> committed -> starting -> ..., back to `pending` when
nothing fits (or nothing committed), and from waiting_retry to `matching` when it is placed again
elsewhere (re-placement). Every move lands in the record's history with its time and cause; an
illegal move is a bug and raises `invalid_argument` instead of rewriting history.

Stored as rows: the job's own row in `jobs` (no units in it, only `unit_count`) and one row per unit in
`job_units` (id `<job id>/<unit key>`, with `job_id` and its `order`), so a unit's move rewrites that unit
alone, not a record that grows with `count` (which may be 10,000). `to_doc` is the whole record as the API
shows it; `from_doc` also reads a job row of the older layout that held its units inline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agora.errors import AgoraError

SUBMITTED = "submitted"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
PENDING = "pending"
MATCHING = "matching"
BIDDING = "bidding"
AWARDED = "awarded"
COMMITTED = "committed"
JOB_TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})
JOB_PLACING = frozenset({MATCHING, BIDDING, AWARDED, COMMITTED, PENDING})  # a market job before it runs
JOB_MOVES: dict[str, frozenset[str]] = {
    SUBMITTED: frozenset({MATCHING, RUNNING, FAILED, CANCELLED}),
    # before its first unit runs, a market job follows the placement of its units (in any order)
    **{s: (JOB_PLACING | {RUNNING, FAILED, CANCELLED}) - {s} for s in JOB_PLACING},
    RUNNING: frozenset({COMPLETED, FAILED, CANCELLED}),
}

STARTING = "starting"
WAITING_RETRY = "waiting_retry"
SKIPPED = "skipped"
UNIT_TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED, SKIPPED})
UNIT_MOVES: dict[str, frozenset[str]] = {
    PENDING: frozenset({MATCHING, STARTING, FAILED, CANCELLED, SKIPPED}),
    MATCHING: frozenset({BIDDING, PENDING, FAILED, CANCELLED}),
    BIDDING: frozenset({AWARDED, PENDING, FAILED, CANCELLED}),
    AWARDED: frozenset({COMMITTED, BIDDING, PENDING, FAILED, CANCELLED}),
    COMMITTED: frozenset({STARTING, PENDING, FAILED, CANCELLED}),
    STARTING: frozenset({RUNNING, WAITING_RETRY, FAILED, CANCELLED}),
    RUNNING: frozenset({COMPLETED, WAITING_RETRY, FAILED, CANCELLED}),
    WAITING_RETRY: frozenset({STARTING, MATCHING, FAILED, CANCELLED}),
}
MAX_ROUNDS_KEPT = 10  # placement rounds (their `why`) a unit keeps, the newest
PLACING = frozenset({PENDING, MATCHING, BIDDING, AWARDED, COMMITTED})  # a unit not started yet
COLLECTION = "jobs"
UNITS = "job_units"


def unit_row_id(job_id: str, key: str) -> str:
    return f"{job_id}/{key}"


def _check_move(moves: dict[str, frozenset[str]], what: str, old: str, new: str) -> None:
    if new not in moves.get(old, frozenset()):
        raise AgoraError("invalid_argument", f"{what} cannot go from {old} to {new}")


@dataclass
class UnitRecord:
    key: str
    task: str
    index: int
    node: str
    state: str = PENDING
    attempts: int = 0
    alloc_id: str | None = None
    error: dict[str, Any] | None = None
    receipt: dict[str, Any] | None = None  # UsageReceipt.to_dict() of the last attempt
    outputs: list[dict[str, Any]] = field(default_factory=list)
    started_at: float | None = None
    ended_at: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    placements: list[dict[str, Any]] = field(default_factory=list)  # the why of each market round, newest last
    excluded: list[str] = field(default_factory=list)  # providers lost under this unit: never placed there again
    replicas: list[dict[str, Any]] = field(default_factory=list)  # redundant execution: each replica (redundancy.py)

    @property
    def ended(self) -> bool:
        return self.state in UNIT_TERMINAL

    def add_round(self, why: dict[str, Any]) -> None:
        self.placements.append(why)
        del self.placements[:-MAX_ROUNDS_KEPT]

    def to_doc(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "task": self.task,
            "index": self.index,
            "node": self.node,
            "state": self.state,
            "attempts": self.attempts,
            "alloc_id": self.alloc_id,
            "error": self.error,
            "receipt": self.receipt,
            "outputs": list(self.outputs),
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "history": list(self.history),
            "placements": list(self.placements),
            "excluded": list(self.excluded),
            "replicas": list(self.replicas),
        }

    def row(self, job_id: str, order: int) -> dict[str, Any]:
        """The unit's own row in `job_units`."""
        return self.to_doc() | {"job_id": job_id, "order": order}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> UnitRecord:
        return cls(**{k: v for k, v in row.items() if k not in ("job_id", "order")})

    def move(self, state: str, at: float, cause: str) -> None:
        _check_move(UNIT_MOVES, f"task {self.key}", self.state, state)
        self.state = state
        self.history.append({"state": state, "at": at, "cause": cause[:1000]})
        if state == STARTING and self.started_at is None:
            self.started_at = at
        if state in UNIT_TERMINAL:
            self.ended_at = at


@dataclass
class JobRecord:
    id: str
    name: str
    node: str  # where its tasks run (this node's own DID when run locally)
    requester: str
    spec: dict[str, Any]
    submitted_at: float
    dir: str
    units: list[UnitRecord]
    state: str = SUBMITTED
    updated_at: float = 0.0
    ended_at: float | None = None
    error: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    market: bool = False  # placed by the market (no --node, or --node without a grant: `only` that node)
    deadline: float | None = None  # a market job that fits nowhere waits in the queue until then
    prepared: dict[str, Any] | None = None  # a market job's prepared tasks (blobs kept in `dir`): it survives a restart

    def __post_init__(self) -> None:
        if not self.history:
            self.history.append({"state": self.state, "at": self.submitted_at, "cause": "submitted"})
            self.updated_at = self.submitted_at

    @property
    def ended(self) -> bool:
        return self.state in JOB_TERMINAL

    @property
    def queued(self) -> bool:
        """A market job none of whose units started: it waits in the queue, and survives a restart."""
        return (
            self.market
            and self.prepared is not None
            and (self.state == SUBMITTED or self.state in JOB_PLACING)
            and all(u.state in PLACING for u in self.units)
        )

    def move(self, state: str, at: float, cause: str) -> None:
        _check_move(JOB_MOVES, f"job {self.id}", self.state, state)
        self.state = state
        self.updated_at = at
        self.history.append({"state": state, "at": at, "cause": cause[:1000]})
        if state in JOB_TERMINAL:
            self.ended_at = at

    def unit(self, key: str) -> UnitRecord:
        for u in self.units:
            if u.key == key:
                return u
        raise KeyError(key)

    def units_of(self, task: str) -> list[UnitRecord]:
        return [u for u in self.units if u.task == task]

    def to_doc(self) -> dict[str, Any]:
        """JSON for the store; shallow copies (asdict's deep walk is the hot spot of every state change)."""
        return {
            "id": self.id,
            "name": self.name,
            "node": self.node,
            "requester": self.requester,
            "spec": self.spec,
            "submitted_at": self.submitted_at,
            "dir": self.dir,
            "units": [u.to_doc() for u in self.units],
            "state": self.state,
            "updated_at": self.updated_at,
            "ended_at": self.ended_at,
            "error": self.error,
            "history": list(self.history),
            "market": self.market,
            "deadline": self.deadline,
            "prepared": self.prepared,
        }

    def row(self) -> dict[str, Any]:
        """The job's own row in `jobs`: the record without its units (they are rows of their own)."""
        doc = self.to_doc()
        del doc["units"]
        return doc | {"unit_count": len(self.units)}

    @classmethod
    def from_doc(cls, doc: dict[str, Any], unit_rows: list[dict[str, Any]] | None = None) -> JobRecord:
        """A whole record (`to_doc`), or a job row and its unit rows (in any order)."""
        data = {k: v for k, v in doc.items() if k not in ("unit_count", "queue")}  # queue: a live view
        if unit_rows is not None:
            data["units"] = [UnitRecord.from_row(r) for r in sorted(unit_rows, key=lambda r: int(r["order"]))]
        else:
            data["units"] = [UnitRecord.from_row(u) for u in doc.get("units", [])]
        return cls(**data)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "node": self.node,
            "state": self.state,
            "submitted_at": self.submitted_at,
            "ended_at": self.ended_at,
            "tasks": {u.key: u.state for u in self.units},
            "error": self.error,
        }


__all__ = [
    "AWARDED",
    "BIDDING",
    "CANCELLED",
    "COLLECTION",
    "COMMITTED",
    "COMPLETED",
    "FAILED",
    "JOB_PLACING",
    "JOB_TERMINAL",
    "MATCHING",
    "PENDING",
    "PLACING",
    "RUNNING",
    "SKIPPED",
    "STARTING",
    "SUBMITTED",
    "UNITS",
    "UNIT_TERMINAL",
    "WAITING_RETRY",
    "JobRecord",
    "UnitRecord",
    "unit_row_id",
]
