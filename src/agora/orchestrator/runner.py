"""`JobRunner`: runs a job submitted to this node, on a chosen node, to a recorded end.

Submit parses and validates the spec (errors name their field), reads the files it names on this
machine (`prepare`), writes the job record (`submitted`) and returns its id; the job then runs in the
background. Stages of the workflow DAG run in order, the units of one stage at most `units_at_once` at
a time. Each unit: start on the target (`/agora/alloc/start` with this node's delegation from the
target), follow it through one stream (`/agora/alloc/watch`: state and log lines, pushed by long-poll,
resumable by sequence), then on the end verify the signed usage receipt (signature, provider,
requester, allocation, the start invocation's CID, the outputs) and fetch every output into
`<jobs dir>/<job id>/<unit>/` (from the hub or S3 where the provider published it and this node can
read it, else from the provider), checking each file's SHA-256 and size against the receipt.

Failures: a failure of a class the spec's `retry.on` lists (`RetryPolicy.should_retry`; by default a
lost node or an error the catalog calls retryable) is retried after `retry.backoff`, up to
`retry.attempts` more times; anything else fails the unit at once. A failed unit fails the job: later
stages are `skipped`. Cancel reaches every running
allocation on its provider, and waiting retries stop. Whatever happens, the job and every unit end in
a recorded state with their cause, and each move is an event (`job.state`, `job.task`) written with the
row it changed (the job's, or that one unit's: units are rows of their own).

The market (a `Placer`, when the node has a market index): a job submitted with no `--node` (or with a
`--node` this node holds no grant from: that node is then the only candidate) has each unit placed by a
round of bid -> award -> commit (`placement.py`) before its start, which cites the bid's delegation as
proof and the committed request id as `StartArgs.reservation`. Each round's `why` is kept on the unit.
When nothing fits (or nothing commits), the unit waits `pending` in this node's queue until the index
changes (its watch, not a poll), a provider's trust cooldown that blocked it ends, or the job's deadline
(spec `deadline`, else the placer's default) passes: then it fails `deadline_exceeded` with the last
diagnostics. A unit whose provider is lost (a failure of the `node_lost` class) is placed again elsewhere
within the retry policy, that provider excluded; a unit whose commit is lost before its start
(`lostcommit.py`) is placed again without spending an attempt. Outcomes become trust evidence about their
providers (`evidence.py`, when `trust` is given).
Each committed placement is a contract whose money moves per the spec's `payment` block: the runner only
calls the `Settler`'s hooks (`settle.py`: placed, started, delivered, attempt failed, job ended).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import shutil
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agora.actor import Actor, Runtime
from agora.clock import SYSTEM_CLOCK, Clock
from agora.codec import CID
from agora.errors import AgoraError
from agora.identity import public_from_did
from agora.jobs import parse_job, stages
from agora.market import JobNeed, round_outcomes
from agora.models.job import JobSpec, failure_class
from agora.orchestrator.evidence import TrustRecorder
from agora.orchestrator.joblog import JobLog
from agora.orchestrator.lostcommit import MAX_LOST_COMMITS, CommitLost, commit_lost
from agora.orchestrator.outputs import PublishedOutputs, fetch_output
from agora.orchestrator.placement import Placed, Placer
from agora.orchestrator.prepare import Blob, PreparedTask, prepare_task
from agora.orchestrator.provider import ProofSource, ProviderLink
from agora.orchestrator.record import (
    CANCELLED,
    COLLECTION,
    COMMITTED,
    COMPLETED,
    FAILED,
    JOB_PLACING,
    MATCHING,
    PENDING,
    RUNNING,
    SKIPPED,
    STARTING,
    UNITS,
    WAITING_RETRY,
    JobRecord,
    UnitRecord,
    unit_row_id,
)
from agora.orchestrator.redundancy import run_redundant
from agora.orchestrator.replicas import replica_orphans, replicas_summary, verification_needs_market
from agora.orchestrator.settle import Settler
from agora.orchestrator.slashing import Slasher
from agora.orchestrator.verify import check_end, limit_outputs, safe_output_path, verify_receipt
from agora.store import Scalar, Store
from agora.wire import alloc
from agora.wire.alloc import ACCEPTED, STATE_RANK, LogsPage, StatusReply, WatchArgs

log = logging.getLogger("agora.orchestrator")
PREPARED_DIR = ".prepared"  # under a market job's dir: its prepared blobs, so the queue survives a restart

MAX_POLLS = 10_000_000  # a bound, not a plan: a watch waits up to status_wait_s


@dataclass(frozen=True)
class RunnerSettings:
    status_wait_s: float = 5.0  # longest wait of one watch (long-poll of state and logs) on the provider
    call_timeout: float = 10.0
    transient_errors: int = 8  # consecutive watch failures tolerated before the attempt fails
    log_drain_s: float = 3.0  # after the end, how long to keep reading log lines still to come
    finished_logs: int = 256  # jobs whose logs stay readable after they ended
    orphan_cancel_tries: int = 5  # cancels sent, after a restart, for allocations left running
    end_grace_s: float = 60.0  # past the task's timeout, how long the provider has to report its end
    min_poll_s: float = 0.2  # after a watch reply with nothing new, the least wait before the next
    units_at_once: int = 32  # units of one stage running at once (a stage of count=10,000 is not 10,000 starts)


@dataclass
class _Run:
    record: JobRecord
    spec: JobSpec
    prepared: dict[str, PreparedTask]
    log: JobLog
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_cause: str = ""
    done: asyncio.Event = field(default_factory=asyncio.Event)
    active: dict[str, tuple[ProviderLink, str]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    order: dict[str, int] = field(default_factory=dict)  # unit key -> its place in the record
    only: str | None = None  # a market job's one candidate (--node without a grant)
    placed: dict[str, Placed] = field(default_factory=dict)  # unit key -> its committed placement
    parked: bool = False  # left in the queue by a stop: resumed by the next start's `recover`
    lost: dict[str, tuple[str, asyncio.Event]] = field(default_factory=dict)  # unit key -> (provider, lost)
    lost_cause: str = ""

    def __post_init__(self) -> None:
        self.order = {u.key: i for i, u in enumerate(self.record.units)}


class JobRunner(Actor):
    """Registered as an actor (no behaviors) so the node stops it with the others."""

    name = "jobs"

    def __init__(
        self,
        *,
        runtime: Runtime,
        store: Store,
        jobs_dir: Path,
        proofs_for: ProofSource,
        clock: Clock = SYSTEM_CLOCK,
        settings: RunnerSettings | None = None,
        published: PublishedOutputs | None = None,
        placer: Placer | None = None,
        trust: TrustRecorder | None = None,
        settler: Settler | None = None,
    ) -> None:
        """`published`: this node's storage backends, to read outputs a provider published to the hub or S3
        (None: always from the provider). `placer`: the market (None: a job with no --node runs here).
        `trust`: records what providers did as trust evidence (`evidence.py`; None: nothing recorded)."""
        self.runtime = runtime
        self.placer = placer
        self.trust = trust
        self.settler = settler  # contracts and their money for market placements (settle.py)
        self.slasher: Slasher | None = None  # slash claims on redundancy's proof (slashing.py; set by the node)
        self.idle_replies = 0  # watch replies that brought nothing new, each followed by a `min_poll_s` wait
        self._index_version = 0
        self._index_changed = asyncio.Event()
        self._index_watch: asyncio.Task[None] | None = None
        self.published = published
        self.did = runtime.did
        self.store = store
        self.jobs_dir = jobs_dir
        self.proofs_for = proofs_for
        self.clock = clock
        self.settings = settings or RunnerSettings()
        self._runs: dict[str, _Run] = {}
        self._logs: OrderedDict[str, JobLog] = OrderedDict()
        self._closed = False
        self._recovering: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    async def recover(self) -> int:
        """Jobs that were running when this node went down cannot be followed any more: fail them. Market
        jobs still waiting for a provider (none of their units started) go back to the queue instead."""
        n = 0
        orphans: list[tuple[str, str, str, str]] = []  # (job, unit, node, alloc_id) possibly still running
        for state in ("submitted", MATCHING, PENDING, RUNNING):
            for doc in await self.store.query(COLLECTION, {"state": state}, limit=10_000):
                rec = await self._load(doc)
                if rec.queued and self.placer is not None and await self._resume(rec):
                    continue
                now = self.clock.now()
                err = AgoraError("alloc_interrupted", "this node stopped while the job ran")
                for u in rec.units:
                    if not u.ended:
                        if u.alloc_id:
                            orphans.append((rec.id, u.key, u.node, u.alloc_id))
                        orphans += replica_orphans(rec.id, u)
                        u.error = err.to_dict()
                        u.state, u.ended_at = FAILED, now
                        u.history.append({"state": FAILED, "at": now, "cause": "requester restarted"})
                rec.error = err.to_dict()
                rec.move(FAILED, now, "requester restarted")
                await self._persist(
                    rec, "job.state", rec.id, {"state": FAILED, "cause": "requester restarted"}, units=rec.units
                )
                n += 1
        if orphans:  # in the background: start-up must not wait on providers that may be gone
            self._recovering = asyncio.create_task(self._cancel_orphans(orphans), name="jobs:cancel-orphans")
        return n

    async def _cancel_orphans(self, orphans: list[tuple[str, str, str, str]]) -> None:
        """Ask each provider to cancel an allocation this node started before it went down (else it would
        run, and hold its capacity, until its timeout). Best effort: a few tries, each bounded; every
        outcome is an event (`job.orphan`), a failure also a warning."""
        for job_id, key, node, alloc_id in orphans:
            link = ProviderLink(self.runtime, node, self.proofs_for, timeout=self.settings.call_timeout)
            error: AgoraError | None = None
            for attempt in range(self.settings.orphan_cancel_tries):
                if self._closed:
                    return
                try:
                    await asyncio.wait_for(link.cancel(alloc_id), self.settings.call_timeout)
                    error = None
                    break
                except TimeoutError:
                    error = AgoraError("timeout", f"{node} did not answer the cancel of {alloc_id}", retryable=True)
                except AgoraError as err:
                    error = err
                    if not err.retryable:
                        break
                await asyncio.sleep(min(0.5 * 2**attempt, 10.0))
            data: dict[str, Any] = {"task": key, "node": node, "alloc_id": alloc_id, "cancelled": error is None}
            if error is not None:
                log.warning("job %s: could not cancel %s on %s after a restart: %s", job_id, alloc_id, node, error)
                data["error"] = error.to_dict()
            with contextlib.suppress(AgoraError):
                await self.store.append_event("job.orphan", job_id, data)

    async def _resume(self, rec: JobRecord) -> bool:
        """Put a queued market job back in the queue after a restart (its units placed again from the start);
        False when its prepared blobs are gone (it then fails as any other job cut by the restart)."""
        try:
            spec = parse_job(rec.spec)
            prepared = await asyncio.to_thread(_load_prepared, rec, spec)
        except (AgoraError, OSError) as err:
            log.warning("job %s cannot go back to the queue: %s", rec.id, err)
            return False
        now = self.clock.now()
        for u in rec.units:
            if u.state != PENDING:
                u.move(PENDING, now, "requester restarted: placed again")
        cause = "requester restarted: back in the queue"
        await self._persist(rec, "job.state", rec.id, {"state": rec.state, "cause": cause}, units=rec.units)
        run = _Run(rec, spec, prepared, JobLog(), only=rec.node or None)
        self._runs[rec.id] = run
        self._keep_log(rec.id, run.log)
        run.task = asyncio.create_task(self._run_job(run), name=f"job:{rec.id}")
        return True

    async def stop(self) -> None:
        """Cancel every job, except queued market jobs: they stay in the store's queue for the next start."""
        self._closed = True
        for bg in (self._recovering, self._index_watch):
            if bg is not None:
                bg.cancel()
                await asyncio.gather(bg, return_exceptions=True)
        runs = list(self._runs.values())
        for run in runs:
            if run.record.queued and run.task is not None:
                run.parked = True
                run.task.cancel()
            else:
                await self._cancel_run(run, "the node is stopping")
        tasks = [r.task for r in runs if r.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=30)

    # -- public API ---------------------------------------------------------------------------
    async def submit(
        self,
        source: str | bytes | Mapping[str, Any],
        *,
        node: str | None = None,
        base_dirs: Sequence[Path | str] = (),
    ) -> dict[str, Any]:
        """Validate, prepare and start a job; returns its summary (with `id`) at once."""
        if self._closed:
            raise AgoraError("unavailable", "the node is stopping", retryable=True)
        spec = parse_job(source)  # job_spec_invalid (every field) / workflow_cycle
        target = node or self.did
        if target != self.did:
            public_from_did(target)  # did_invalid / did_unsupported
        # the market places it: no --node, or a --node this node holds no grant from (the only candidate)
        market = self.placer is not None and (
            node is None or (node != self.did and not self.proofs_for(node, alloc.START))
        )
        if market and node is None:
            target = ""
        if spec.verification is not None and (not market or node is not None):
            raise verification_needs_market(spec.verification, node)
        if market and node is not None and self.placer is not None and await self.placer.index.get(node) is None:
            raise AgoraError(  # neither path can reach it: say so now rather than queue for the deadline
                "ucan_unauthorized",
                f"{node} has granted this node nothing and sells nothing on the market",
                hint=f"Ask its operator for a grant (`agora node grant {self.did}` on that node), or to sell "
                "(`agora offer create --from-node`); or leave --node out and let the market place the job.",
            )
        dirs = [Path(d) for d in base_dirs]
        prepared = await asyncio.to_thread(lambda: {t.name: prepare_task(t, dirs) for t in spec.tasks})
        job_id = "job-" + secrets.token_hex(8)
        kept = await asyncio.to_thread(_save_prepared, self.jobs_dir / job_id, prepared) if market else None
        units = [
            UnitRecord(key=t.name if spec.count == 1 else f"{t.name}-{i}", task=t.name, index=i, node=target)
            for t in spec.tasks
            for i in range(spec.count)
        ]
        now = self.clock.now()
        deadline = spec.deadline_at(now) if market else None
        if market and deadline is None and self.placer is not None:
            deadline = now + self.placer.settings.default_deadline_s
        rec = JobRecord(
            id=job_id,
            name=spec.name,
            node=target,
            requester=self.did,
            spec=spec.to_dict(),
            submitted_at=now,
            dir=str(self.jobs_dir / job_id),
            units=units,
            market=market,
            deadline=deadline,
            prepared=kept,
        )
        await self._persist(
            rec, "job.state", job_id, {"state": rec.state, "cause": "submitted", "node": target}, units=rec.units
        )
        run = _Run(rec, spec, prepared, JobLog(), only=node if market else None)
        self._runs[job_id] = run
        self._keep_log(job_id, run.log)
        run.task = asyncio.create_task(self._run_job(run), name=f"job:{job_id}")
        return rec.summary()

    async def get(self, job_id: str) -> dict[str, Any]:
        run = self._runs.get(job_id)
        if run is not None:
            return run.record.to_doc() | {"queue": self._queue_view(run)}
        doc = await self.store.get(COLLECTION, job_id)
        if doc is None:
            raise AgoraError("job_not_found", f"no job {job_id} on this node")
        return (await self._load(doc)).to_doc() | {"queue": None}

    def _queue_view(self, run: _Run) -> dict[str, Any] | None:
        """Where a pending job stands in this node's queue (by the time it started waiting) and what blocks it."""
        if run.record.state != PENDING:
            return None
        waiting = sorted(
            (r.record.history[-1]["at"], r.record.id) for r in self._runs.values() if r.record.state == PENDING
        )
        position = 1 + [j for _, j in waiting].index(run.record.id)
        blocking: dict[str, int] = {}
        for u in run.record.units:
            if u.state == PENDING and u.placements:
                for code, n in u.placements[-1].get("blocking", {}).items():
                    blocking[code] = blocking.get(code, 0) + n
        return {"position": position, "of": len(waiting), "deadline": run.record.deadline, "blocking": blocking}

    async def why(self, job_id: str) -> dict[str, Any]:
        """Why the job's units are where they are: every market round of each unit (its candidates, their
        verdicts, reasons and score breakdowns, bids, declines, failures), and a one-line summary."""
        doc = await self.get(job_id)
        units = {}
        lines = []
        for u in doc["units"]:
            placed = [str(r["provider"]) for r in u.get("replicas") or [] if r.get("provider")]
            rounds = [round_outcomes(r) for r in u.get("placements", [])]  # each candidate's outcome in its round
            if rounds:
                rounds[-1] = round_outcomes(u["placements"][-1], placed)
            last = rounds[-1] if rounds else None
            units[u["key"]] = {
                "state": u["state"],
                "node": u["node"],
                "excluded": u.get("excluded", []),
                "rounds": rounds,
                "last": last,
                "replicas": u.get("replicas", []),
            }
            line = f"{u['key']}: {u['state']}" + (f" ({_round_summary(last)})" if last else "")
            lines.append(line + replicas_summary(u.get("replicas", [])))
        return {
            "id": doc["id"],
            "state": doc["state"],
            "market": doc.get("market", False),
            "queue": doc.get("queue"),
            "error": doc.get("error"),
            "units": units,
            "summary": "; ".join(lines),
        }

    async def list_jobs(self, *, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        where: dict[str, Scalar] | None = {"state": state} if state else None
        docs = await self.store.query(COLLECTION, where, order_by="submitted_at", desc=True, limit=limit)
        return [(await self._load(d)).summary() for d in docs]

    async def logs(self, job_id: str, *, after: int = 0, limit: int = 1000, wait_s: float = 0.0) -> dict[str, Any]:
        await self.get(job_id)  # job_not_found
        jl = self._logs.get(job_id)
        if jl is None:
            return {"lines": [], "next": after, "dropped": 0, "done": True, "expired": True}
        await jl.wait(after, min(max(wait_s, 0.0), 30.0))
        return jl.read(after, limit) | {"expired": False}

    async def cancel(self, job_id: str, cause: str = "cancelled by the user") -> dict[str, Any]:
        run = self._runs.get(job_id)
        if run is None:
            return JobRecord.from_doc(await self.get(job_id)).summary()
        await self._cancel_run(run, cause)
        return run.record.summary()

    def placing(self, now: float) -> tuple[int, int]:
        """(market jobs waiting to be placed, those of them past their deadline) for /metrics: a job past its
        deadline should have failed `deadline_exceeded` at once, so any such job means the queue is stuck."""
        waiting = [r.record.deadline for r in self._runs.values() if r.record.state in JOB_PLACING]
        return len(waiting), sum(1 for d in waiting if d is not None and now > d)

    def provider_lost(self, provider: str, cause: str = "discovery marked it lost") -> int:
        """Discovery says `provider` is gone: every market unit running there stops following it at once
        and fails `alloc_interrupted` (the `node_lost` class), so it is placed again elsewhere within its
        retry policy, that provider excluded. Returns how many units were told."""
        n = 0
        for run in self._runs.values():
            for node, lost in run.lost.values():
                if node == provider and not lost.is_set():
                    run.lost_cause = cause
                    lost.set()
                    n += 1
        return n

    async def outputs(self, job_id: str) -> list[dict[str, Any]]:
        rec = JobRecord.from_doc(await self.get(job_id))
        return [{"task": u.key, **o} for u in rec.units for o in u.outputs]

    async def wait(self, job_id: str, timeout: float) -> dict[str, Any]:
        """The job record once it ended, or as it is when `timeout` runs out."""
        run = self._runs.get(job_id)
        if run is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.done.wait(), max(0.0, timeout))
        return await self.get(job_id)

    # -- internals ----------------------------------------------------------------------------
    def _keep_log(self, job_id: str, jl: JobLog) -> None:
        """Keep at most `finished_logs` logs of ended jobs, dropping the oldest ended ones: a live job's
        log is skipped over (never evicted, and never a reason to stop evicting the ended ones behind it)."""
        self._logs[job_id] = jl
        excess = len(self._logs) - self.settings.finished_logs - len(self._runs)
        if excess > 0:
            for old in [k for k in self._logs if k not in self._runs][:excess]:
                self._logs.pop(old)

    async def _load(self, row: dict[str, Any]) -> JobRecord:
        """A job from its row and its units' rows (or, for a row of the older layout, its inline units)."""
        if "units" in row:
            return JobRecord.from_doc(row)
        n = int(row.get("unit_count", 0))
        units = await self.store.query(UNITS, {"job_id": str(row["id"])}, limit=max(1, n))
        return JobRecord.from_doc(row, units)

    async def _persist(
        self, rec: JobRecord, kind: str, subject: str, data: dict[str, Any], *, units: Sequence[UnitRecord] = ()
    ) -> None:
        """The job's row with the rows of `units` and the event, in one step."""
        order = {id(u): i for i, u in enumerate(rec.units)} if units else {}
        async with self.store.transaction():
            await self.store.put(COLLECTION, rec.id, rec.row())
            for u in units:
                await self.store.put(UNITS, unit_row_id(rec.id, u.key), u.row(rec.id, order[id(u)]))
            await self.store.append_event(kind, subject, data)

    async def _persist_unit(self, run: _Run, unit: UnitRecord, data: dict[str, Any]) -> None:
        """One unit's move: its row and its event, nothing of the other units."""
        rec = run.record
        async with self.store.transaction():
            await self.store.put(UNITS, unit_row_id(rec.id, unit.key), unit.row(rec.id, run.order[unit.key]))
            await self.store.append_event("job.task", rec.id, data)

    async def _job_move(self, run: _Run, state: str, cause: str) -> None:
        run.record.move(state, self.clock.now(), cause)
        run.log.add("", "agora", f"job {run.record.id}: {state} ({cause})", self.clock.now())
        await self._persist(run.record, "job.state", run.record.id, {"state": state, "cause": cause})

    async def _unit_move(self, run: _Run, unit: UnitRecord, state: str, cause: str) -> None:
        unit.move(state, self.clock.now(), cause)
        run.log.add(unit.key, "agora", f"{unit.key}: {state} ({cause})", self.clock.now(), unit.attempts)
        data = {"task": unit.key, "state": state, "cause": cause, "attempt": unit.attempts, "alloc_id": unit.alloc_id}
        await self._persist_unit(run, unit, data)

    async def _cancel_run(self, run: _Run, cause: str) -> None:
        if run.cancel.is_set() or run.record.ended:
            return
        run.cancel_cause = cause
        run.cancel.set()
        for link, alloc_id in list(run.active.values()):
            try:
                await link.cancel(alloc_id)
            except AgoraError as err:
                log.warning("could not cancel %s on %s: %s", alloc_id, link.target, err)

    async def _run_job(self, run: _Run) -> None:
        rec = run.record
        try:
            if rec.market and rec.state == "submitted":  # (a job back from the queue is past this)
                where = f"only {run.only}" if run.only else "every provider in the market index"
                await self._job_move(run, MATCHING, f"placing {len(rec.units)} unit(s) on {where}")
            else:
                await self._job_move(run, RUNNING, f"running on {rec.node}")
            for stage in stages(run.spec):
                units = [u for name in stage for u in rec.units_of(name)]
                await self._run_stage(run, units)
                if any(u.state != COMPLETED for u in units):
                    break
            for u in rec.units:
                if u.state == PENDING:
                    cancelled = run.cancel.is_set()
                    why = run.cancel_cause if cancelled else "an earlier stage did not complete"
                    await self._unit_move(run, u, CANCELLED if cancelled else SKIPPED, why)
            if all(u.state == COMPLETED for u in rec.units):
                await self._job_running(run, "its units ran")
                await self._job_move(run, COMPLETED, f"{len(rec.units)} task(s) completed")
            elif run.cancel.is_set():
                rec.error = AgoraError("cancelled", run.cancel_cause).to_dict()
                await self._job_move(run, CANCELLED, run.cancel_cause)
            else:
                bad = next(u for u in rec.units if u.state in (FAILED, CANCELLED))
                rec.error = {**(bad.error or {"code": "task_failed", "message": "failed"}), "task": bad.key}
                await self._job_move(run, FAILED, f"task {bad.key}: {rec.error.get('code')}")
        except Exception as exc:
            log.exception("job %s failed inside the orchestrator", rec.id)
            rec.error = AgoraError("internal", f"{type(exc).__name__}: {exc}").to_dict()
            if not rec.ended:
                with contextlib.suppress(Exception):
                    await self._job_move(run, FAILED, "orchestrator error")
        finally:
            for key, placed in list(run.placed.items()):  # a placement never started: give it back
                run.placed.pop(key, None)
                if self.placer is not None:
                    await self.placer.release(placed, "the job ended before the start")
            if self.settler is not None:
                with contextlib.suppress(Exception):
                    await self.settler.job_ended(rec.id, rec.state)
            if rec.prepared is not None and not run.parked:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(shutil.rmtree, Path(rec.dir) / PREPARED_DIR, True)
            run.log.close()
            self._runs.pop(rec.id, None)
            run.done.set()

    async def _job_running(self, run: _Run, cause: str) -> None:
        if run.record.state in JOB_PLACING:
            await self._job_move(run, RUNNING, cause)

    async def _run_stage(self, run: _Run, units: list[UnitRecord]) -> None:
        """The units of one stage, at most `units_at_once` of them at a time (workers taking the next)."""
        todo = iter(units)

        async def worker() -> None:
            for unit in todo:
                await self._run_unit(run, unit)

        await asyncio.gather(*(worker() for _ in range(max(1, min(self.settings.units_at_once, len(units))))))

    async def _run_unit(self, run: _Run, unit: UnitRecord) -> None:
        if run.record.market and run.spec.verification is not None:  # on k providers, until m agree
            await run_redundant(self, run, unit, run.spec.verification)
            return
        retry = run.spec.retry
        tries = 1 + retry.attempts
        attempt, lost_commits = 0, 0
        while attempt < tries:
            attempt += 1
            if run.cancel.is_set():
                await self._unit_move(run, unit, CANCELLED, run.cancel_cause)
                return
            unit.attempts = attempt
            if run.record.market and not await self._place(run, unit):
                return  # it ended (deadline_exceeded, cancelled) and the move is recorded
            await self._unit_move(run, unit, STARTING, f"attempt {attempt} of {tries} on {unit.node}")
            try:
                await self._attempt(run, unit, attempt)
                if self.trust is not None:
                    await self.trust.outcome(run.record.id, unit, None)
                await self._unit_move(run, unit, COMPLETED, f"verified, {len(unit.outputs)} output(s)")
                return
            except Exception as exc:
                if isinstance(exc, AgoraError):
                    err = exc
                else:
                    log.exception("task %s of job %s failed inside the orchestrator", unit.key, run.record.id)
                    err = AgoraError("internal", f"{type(exc).__name__}: {exc}", retryable=False)
                unit.error = err.to_dict()
                if self.trust is not None and not run.cancel.is_set():
                    await self.trust.outcome(run.record.id, unit, err)
                if self.settler is not None:  # nothing delivered by this attempt: its money goes back
                    await self.settler.attempt_failed(run.record.id, unit.key, err)
                if run.cancel.is_set() or err.code == "task_cancelled":
                    await self._unit_move(run, unit, CANCELLED, run.cancel_cause or err.message)
                    return
                if isinstance(err, CommitLost) and lost_commits < MAX_LOST_COMMITS:  # the task never ran
                    attempt, lost_commits = attempt - 1, lost_commits + 1
                    where = "placed again on it, the job's one candidate"  # (--node without a grant)
                    if run.only is None:
                        where = "placed again without it"
                        if err.provider not in unit.excluded:
                            unit.excluded.append(err.provider)
                    cause = f"{err.code}: the commit on {err.provider} is lost; {where}"
                    await self._unit_move(run, unit, WAITING_RETRY, cause)
                    continue
                if retry.should_retry(err.code, err.retryable, attempt):  # retry.on: what is retried
                    cause = f"{err.code}: {err.message}; retry in {retry.backoff}s"
                    lost = failure_class(err.code, err.retryable) == "node_lost"
                    if run.record.market and lost and unit.node and unit.node not in unit.excluded:
                        unit.excluded.append(unit.node)  # re-placement: never back on the provider lost
                        cause += f"; placed again without {unit.node}"
                    await self._unit_move(run, unit, WAITING_RETRY, cause)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(run.cancel.wait(), retry.backoff)
                    continue
                await self._unit_move(run, unit, FAILED, f"{err.code}: {err.message}")
                return

    # -- the market ---------------------------------------------------------------------------
    async def _place(self, run: _Run, unit: UnitRecord) -> bool:
        """Place `unit` through the market: True once a provider committed (`run.placed` holds it); False
        when the unit ended instead (cancelled, or `deadline_exceeded` with the last diagnostics). With no
        fit it waits `pending` until the index changes or the deadline passes: never a polling loop."""
        placer, rec = self.placer, run.record
        if placer is None:
            raise AgoraError("internal", "a market job on a node without a market index")
        need = JobNeed.from_spec(run.spec, unit.task, requester=self.did)

        async def on_state(state: str, cause: str) -> None:
            if state != unit.state:
                await self._unit_move(run, unit, state, cause)
                await self._job_follows(run, state, f"{unit.key}: {cause}")

        for round_no in range(1, placer.settings.max_rounds + 1):
            if run.cancel.is_set():
                await self._unit_move(run, unit, CANCELLED, run.cancel_cause)
                return False
            self._ensure_index_watch()
            seen = self._index_version
            without = f" without {', '.join(unit.excluded)}" if unit.excluded else ""
            await self._unit_move(run, unit, MATCHING, f"placement round {round_no}{without}")
            await self._job_follows(run, MATCHING, f"{unit.key}: placement round {round_no}")
            rnd = await placer.place(
                rec.id,
                unit.key,
                need,
                only=run.only,
                exclude=unit.excluded,
                on_state=on_state,
                k=run.spec.placement.bids,
            )
            if self.trust is not None:
                await self.trust.placement(rec.id, unit.key, rnd)
            why = rnd.why()
            unit.add_round(why)
            if self.settler is not None:
                self.settler.round(rec.id, unit.key, why)
            if rnd.placed is not None:
                unit.node = rnd.placed.provider
                run.placed[unit.key] = rnd.placed
                cause = f"{unit.node} committed at {rnd.placed.bid.price:,} until {rnd.placed.commit.start_by}"
                await self._unit_move(run, unit, COMMITTED, cause)
                await self._job_follows(run, COMMITTED, f"{unit.key}: {cause}")
                if self.settler is not None:  # its contract, and the money the payment mode moves at award
                    try:
                        await self.settler.placed(rec.id, unit.key, rnd.placed, run.spec)
                    except AgoraError as err:  # not paid for: it does not start, the placement goes back
                        run.placed.pop(unit.key, None)
                        await placer.release(rnd.placed, f"not paid for: {err.code}")
                        unit.error = err.to_dict()
                        await self._unit_move(run, unit, FAILED, f"{err.code}: {err.message}")
                        return False
                return True
            summary = _round_summary(why)
            now = self.clock.now()
            deadline = rec.deadline if rec.deadline is not None else now
            if now >= deadline or round_no == placer.settings.max_rounds:
                unit.error = AgoraError(
                    "deadline_exceeded",
                    f"{unit.key} found no provider by its deadline ({summary})",
                    details={"blocking": why["blocking"], "what_would_fit": why["decision"]["what_would_fit"]},
                ).to_dict()
                await self._unit_move(run, unit, FAILED, f"deadline_exceeded: {summary}")
                return False
            await self._unit_move(run, unit, PENDING, summary)
            await self._job_follows(run, PENDING, f"{unit.key} waits for a provider: {summary}")
            wake = self.trust.wake_in(rnd) if self.trust is not None else None  # a cooldown that ends first
            await self._wait_index(seen, deadline - now if wake is None else min(deadline - now, wake), run.cancel)
        return False  # unreachable: the last round above always ends the unit

    async def _job_follows(self, run: _Run, state: str, cause: str) -> None:
        """Until its first unit runs, a market job's state follows its units' placement moves."""
        if run.record.state in JOB_PLACING and run.record.state != state:
            await self._job_move(run, state, cause)

    def _ensure_index_watch(self) -> None:
        """One watch of the market index for the whole runner (owned; stopped with the runner)."""
        if self._index_watch is None and self.placer is not None and not self._closed:
            self._index_watch = asyncio.create_task(self._watch_index(), name="jobs:index-watch")

    async def _watch_index(self) -> None:
        placer = self.placer
        if placer is None:
            return
        for attempt in range(10_000):  # bounded: a watch that breaks is opened again, with backoff
            try:
                async with placer.index.watch() as watch:
                    async for _ad in watch:
                        self._bump_index()
                        attempt = 0
            except AgoraError as err:
                log.warning("the market index watch ended: %s", err)
            if self._closed:
                return
            self._bump_index()  # what changed while it was down is unknown: re-evaluate
            await asyncio.sleep(min(0.2 * 2**attempt, 10.0))

    def _bump_index(self) -> None:
        self._index_version += 1
        changed, self._index_changed = self._index_changed, asyncio.Event()
        changed.set()

    async def _wait_index(self, seen: int, timeout: float, cancel: asyncio.Event) -> None:
        """Until the index changed since version `seen`, the job is cancelled, or `timeout` runs out."""
        if self._index_version != seen:
            return
        waits = [asyncio.create_task(self._index_changed.wait()), asyncio.create_task(cancel.wait())]
        try:
            await asyncio.wait(waits, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in waits:
                t.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    async def _attempt(self, run: _Run, unit: UnitRecord, attempt: int) -> None:
        rec = run.record
        placed = run.placed.get(unit.key)
        proofs: ProofSource = self.proofs_for
        if placed is not None:
            proofs = _with_bid_proofs(placed, self.proofs_for)
        link = ProviderLink(self.runtime, unit.node, proofs, timeout=self.settings.call_timeout)
        args, uploads = run.prepared[unit.task].start_args(rec.name, rec.id, spec=run.spec)
        if placed is not None:
            args = dataclasses.replace(args, reservation=placed.request_id)
        try:
            for blob in uploads:
                await link.upload(blob)
            alloc_id, invocation = await link.start(args)
        except BaseException as exc:
            if placed is not None and self.trust is not None:
                await self.trust.not_started(rec.id, unit, placed, exc)
            if placed is not None and self.placer is not None:
                run.placed.pop(unit.key, None)
                await self.placer.release(placed, "the start failed")
                if (lost := commit_lost(exc, placed.provider)) is not None:
                    raise lost from exc
            raise
        run.placed.pop(unit.key, None)
        unit.alloc_id = alloc_id
        unit.receipt = None
        if self.settler is not None:
            await self.settler.started(rec.id, unit.key, alloc_id)
        run.active[unit.key] = (link, alloc_id)
        if rec.market:  # from here on, discovery may say the provider is lost (`provider_lost`)
            run.lost[unit.key] = (unit.node, asyncio.Event())
        status: StatusReply | None = None
        try:
            await self._unit_move(run, unit, RUNNING, f"allocation {alloc_id} accepted")
            await self._job_running(run, f"{unit.key} runs on {unit.node}")
            if run.cancel.is_set():
                await link.cancel(alloc_id)
            timeout = next(t for t in run.spec.tasks if t.name == unit.task).timeout
            if rec.market:
                status = await self._follow_unless_lost(run, unit, link, alloc_id, timeout)
            else:
                status = await self._follow(run, unit, link, alloc_id, timeout)
        finally:
            run.active.pop(unit.key, None)
            run.lost.pop(unit.key, None)
            if status is None:  # we lost track of it: do not leave it running on the provider
                with contextlib.suppress(AgoraError, TimeoutError):
                    await asyncio.wait_for(link.cancel(alloc_id), 2.0)
        await self._finish(run, unit, link, status, invocation)

    async def _follow_unless_lost(
        self, run: _Run, unit: UnitRecord, link: ProviderLink, alloc_id: str, timeout: float | None
    ) -> StatusReply:
        """`_follow`, cut short when discovery marks the provider lost (`provider_lost`)."""
        lost = run.lost[unit.key][1]
        follow = asyncio.create_task(self._follow(run, unit, link, alloc_id, timeout), name=f"follow:{unit.key}")
        waiter = asyncio.create_task(lost.wait(), name=f"lost:{unit.key}")
        try:
            await asyncio.wait({follow, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            if not follow.done():
                follow.cancel()
            await asyncio.gather(follow, waiter, return_exceptions=True)
        if not lost.is_set() or (follow.done() and not follow.cancelled() and follow.exception() is None):
            return follow.result()
        raise AgoraError("alloc_interrupted", f"{unit.node} is lost ({run.lost_cause}); allocation {alloc_id} given up")

    async def _finish(
        self, run: _Run, unit: UnitRecord, link: ProviderLink, status: StatusReply, invocation: CID
    ) -> None:
        rec = run.record
        alloc_id = str(unit.alloc_id)
        receipt = verify_receipt(
            status.receipt,
            provider=unit.node,
            requester=self.did,
            alloc_id=alloc_id,
            invocation=invocation,
            outputs=status.outputs,
        )
        unit.receipt = receipt.to_dict()
        state = status.state
        check_end(state, receipt, status.error)
        if state == COMPLETED:
            limit_outputs(receipt, next(t for t in run.spec.tasks if t.name == unit.task).resources.disk)
            root = Path(rec.dir) / unit.key
            fetched = []
            for out in receipt.outputs:
                dest = safe_output_path(root, out.path)
                uri = out.uri  # where the provider says, under its signature, it published the output
                source, problem = await fetch_output(link, self.published, alloc_id, out, uri, dest)
                if problem is not None:
                    note = f"{out.path}: {uri} unusable ({problem.code}: {problem.message}); fetched from the provider"
                    run.log.add(unit.key, "agora", note, self.clock.now(), unit.attempts)
                extra = {"local_path": str(dest), "fetched_from": source} | ({"uri": uri} if uri else {})
                fetched.append(out.to_dict() | extra)
            unit.outputs = fetched
            if self.settler is not None:  # delivered: countersign the receipt and release (settle.py)
                await self.settler.delivered(rec.id, unit.key, receipt)
            return
        err = status.error
        if state == CANCELLED:
            raise AgoraError("task_cancelled", f"allocation {alloc_id} was cancelled")
        if isinstance(err, dict):
            raise AgoraError.from_dict(err)
        raise AgoraError("task_failed", f"allocation {alloc_id} ended {state} without an error")

    async def _follow(
        self, run: _Run, unit: UnitRecord, link: ProviderLink, alloc_id: str, timeout: float | None
    ) -> StatusReply:
        """Follow the allocation through one stream, `/agora/alloc/watch` (state and log lines after a
        cursor, pushed as soon as either changes), until it ended and its log is read (or `log_drain_s`
        after the end). The provider does not decide how long this takes: past the task's timeout plus a
        grace period it is `task_timeout` (the caller then cancels it on the provider). A reply with news
        is followed by the next long-poll at once; one with nothing new (a provider that answers the
        long-poll at once) waits out `min_poll_s` first."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout + self.settings.end_grace_s
        known: str | None = ACCEPTED  # what start answered: the first watch waits for the next state
        after = 0
        failures = 0
        ended: StatusReply | None = None
        drain_until = 0.0
        lost = run.lost.get(unit.key)
        for _ in range(MAX_POLLS):
            began = loop.time()
            if ended is not None and began >= drain_until:
                return ended
            if ended is None and lost is not None and lost[1].is_set():  # (a cancel that did not land)
                raise AgoraError("alloc_interrupted", f"{unit.node} is lost; allocation {alloc_id} given up")
            if ended is None and deadline is not None and began >= deadline:
                raise AgoraError(
                    "task_timeout",
                    f"allocation {alloc_id} did not end within its timeout of {timeout}s "
                    f"(+{self.settings.end_grace_s:g}s grace); cancelled on {link.target}",
                )
            # after the end, still a long-poll: the provider answers as soon as the log closes (a zero wait would
            # come back with nothing new and cost `min_poll_s` on every job)
            wait_s = max(0.0, drain_until - began) if ended is not None else self.settings.status_wait_s
            if deadline is not None:
                wait_s = max(0.0, min(wait_s, deadline - began))
            try:
                reply = await link.watch(WatchArgs(alloc_id, after, known, wait_s))
                failures = 0
            except AgoraError as err:
                if ended is not None:  # the end is known; the last log lines are best effort
                    return ended
                if not err.retryable or failures >= self.settings.transient_errors:
                    raise
                failures += 1
                await asyncio.sleep(min(0.1 * 2**failures, 5.0))
                continue
            page, state = reply.logs, reply.status.state
            if STATE_RANK[state] < STATE_RANK.get(known or ACCEPTED, 0) or (ended is not None and state != ended.state):
                raise AgoraError(  # flipping states would make every reply news and skip min_poll_s
                    "receipt_invalid",
                    f"allocation {alloc_id} went back from {known} to {state}: the provider is broken or hostile",
                )
            self._copy_logs(run, unit, page)
            news = bool(page.lines or page.dropped) or state != known
            after, known = page.next, state
            if reply.status.ended:
                if ended is None:
                    ended = reply.status
                    drain_until = loop.time() + self.settings.log_drain_s
                if page.done or page.expired:
                    return ended
            if not news:
                self.idle_replies += 1  # a well-behaved provider never makes us wait here (see the watch's docs)
                await asyncio.sleep(max(0.0, began + self.settings.min_poll_s - loop.time()))
        raise AgoraError("timeout", f"allocation {alloc_id} did not end")

    def _copy_logs(self, run: _Run, unit: UnitRecord, page: LogsPage) -> None:
        if page.dropped:
            run.log.add(unit.key, "agora", f"[{page.dropped} log lines dropped]", self.clock.now(), unit.attempts)
        for line in page.lines:
            run.log.add(unit.key, line.stream, line.line, line.ts, unit.attempts)


def _save_prepared(job_dir: Path, prepared: Mapping[str, PreparedTask]) -> dict[str, Any]:
    """Keep a market job's prepared blobs under its dir (by sha256), and return what names them."""
    root = job_dir / PREPARED_DIR
    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    for name, p in prepared.items():
        blobs = ([p.module] if p.module is not None else []) + list(p.local_inputs.values())
        for blob in blobs:
            path = root / blob.sha256
            if not path.exists():
                tmp = root / f".{blob.sha256}.{secrets.token_hex(4)}"
                tmp.write_bytes(blob.data)
                os.replace(tmp, path)
        out[name] = {
            "wire": p.wire,
            "module": p.module.sha256 if p.module is not None else None,
            "inputs": {n: b.sha256 for n, b in p.local_inputs.items()},
        }
    return out


def _load_prepared(rec: JobRecord, spec: JobSpec) -> dict[str, PreparedTask]:
    """The prepared tasks `_save_prepared` kept, each blob checked against its name."""
    root = Path(rec.dir) / PREPARED_DIR

    def blob(sha: str) -> Blob:
        b = Blob.of((root / sha).read_bytes())
        if b.sha256 != sha:
            raise AgoraError("storage_integrity", f"the kept blob {sha} of job {rec.id} changed on disk")
        return b

    out = {}
    for name, d in (rec.prepared or {}).items():
        module = blob(d["module"]) if d.get("module") else None
        inputs = {n: blob(s) for n, s in d.get("inputs", {}).items()}
        out[name] = PreparedTask(spec.task(name), dict(d["wire"]), module, inputs)
    return out


def _with_bid_proofs(placed: Placed, fallback: ProofSource) -> ProofSource:
    """Proofs for a market unit: the bid's delegation (scoped to the job) where it covers the command."""
    return placed.proof_source(fallback)


def _round_summary(why: dict[str, Any]) -> str:
    outcome = why.get("outcome")
    if outcome == "committed":
        return f"placed on {why.get('provider')} at {why.get('price')}"
    decision = why.get("decision", {})
    blocking = ", ".join(f"{code} x{n}" for code, n in why.get("blocking", {}).items()) or "no provider in the index"
    text = f"{outcome}: {decision.get('considered', 0)} considered; {blocking}"
    hints = [s["text"] for s in decision.get("what_would_fit", [])]
    return text + (f"; would fit: {' or '.join(hints)}" if hints else "")


__all__ = ["JobRunner", "RunnerSettings"]
