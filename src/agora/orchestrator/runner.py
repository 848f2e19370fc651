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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
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
from agora.models.job import JobSpec
from agora.orchestrator.joblog import JobLog
from agora.orchestrator.outputs import PublishedOutputs, fetch_output
from agora.orchestrator.prepare import PreparedTask, prepare_task
from agora.orchestrator.provider import ProofSource, ProviderLink
from agora.orchestrator.record import (
    CANCELLED,
    COLLECTION,
    COMPLETED,
    FAILED,
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
from agora.orchestrator.verify import check_end, limit_outputs, safe_output_path, verify_receipt
from agora.store import Scalar, Store
from agora.wire.alloc import ACCEPTED, STATE_RANK, LogsPage, StatusReply, WatchArgs

log = logging.getLogger("agora.orchestrator")

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
    ) -> None:
        """`published`: this node's storage backends, to read outputs a provider published to the hub or S3
        (None: always from the provider)."""
        self.runtime = runtime
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
        """Jobs that were running when this node went down cannot be followed any more: fail them."""
        n = 0
        orphans: list[tuple[str, str, str, str]] = []  # (job, unit, node, alloc_id) possibly still running
        for state in ("submitted", RUNNING):
            for doc in await self.store.query(COLLECTION, {"state": state}, limit=10_000):
                rec = await self._load(doc)
                now = self.clock.now()
                err = AgoraError("alloc_interrupted", "this node stopped while the job ran")
                for u in rec.units:
                    if not u.ended:
                        if u.alloc_id:
                            orphans.append((rec.id, u.key, u.node, u.alloc_id))
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

    async def stop(self) -> None:
        self._closed = True
        if self._recovering is not None:
            self._recovering.cancel()
            await asyncio.gather(self._recovering, return_exceptions=True)
        runs = list(self._runs.values())
        for run in runs:
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
        dirs = [Path(d) for d in base_dirs]
        prepared = await asyncio.to_thread(lambda: {t.name: prepare_task(t, dirs) for t in spec.tasks})
        job_id = "job-" + secrets.token_hex(8)
        units = [
            UnitRecord(key=t.name if spec.count == 1 else f"{t.name}-{i}", task=t.name, index=i, node=target)
            for t in spec.tasks
            for i in range(spec.count)
        ]
        rec = JobRecord(
            id=job_id,
            name=spec.name,
            node=target,
            requester=self.did,
            spec=spec.to_dict(),
            submitted_at=self.clock.now(),
            dir=str(self.jobs_dir / job_id),
            units=units,
        )
        await self._persist(
            rec, "job.state", job_id, {"state": rec.state, "cause": "submitted", "node": target}, units=rec.units
        )
        run = _Run(rec, spec, prepared, JobLog())
        self._runs[job_id] = run
        self._keep_log(job_id, run.log)
        run.task = asyncio.create_task(self._run_job(run), name=f"job:{job_id}")
        return rec.summary()

    async def get(self, job_id: str) -> dict[str, Any]:
        run = self._runs.get(job_id)
        if run is not None:
            return run.record.to_doc()
        doc = await self.store.get(COLLECTION, job_id)
        if doc is None:
            raise AgoraError("job_not_found", f"no job {job_id} on this node")
        return (await self._load(doc)).to_doc()

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
            run.log.close()
            self._runs.pop(rec.id, None)
            run.done.set()

    async def _run_stage(self, run: _Run, units: list[UnitRecord]) -> None:
        """The units of one stage, at most `units_at_once` of them at a time (workers taking the next)."""
        todo = iter(units)

        async def worker() -> None:
            for unit in todo:
                await self._run_unit(run, unit)

        await asyncio.gather(*(worker() for _ in range(max(1, min(self.settings.units_at_once, len(units))))))

    async def _run_unit(self, run: _Run, unit: UnitRecord) -> None:
        retry = run.spec.retry
        tries = 1 + retry.attempts
        for attempt in range(1, tries + 1):
            if run.cancel.is_set():
                await self._unit_move(run, unit, CANCELLED, run.cancel_cause)
                return
            unit.attempts = attempt
            await self._unit_move(run, unit, STARTING, f"attempt {attempt} of {tries} on {unit.node}")
            try:
                await self._attempt(run, unit, attempt)
                await self._unit_move(run, unit, COMPLETED, f"verified, {len(unit.outputs)} output(s)")
                return
            except Exception as exc:
                if isinstance(exc, AgoraError):
                    err = exc
                else:
                    log.exception("task %s of job %s failed inside the orchestrator", unit.key, run.record.id)
                    err = AgoraError("internal", f"{type(exc).__name__}: {exc}", retryable=False)
                unit.error = err.to_dict()
                if run.cancel.is_set() or err.code == "task_cancelled":
                    await self._unit_move(run, unit, CANCELLED, run.cancel_cause or err.message)
                    return
                if retry.should_retry(err.code, err.retryable, attempt):  # retry.on: what is retried
                    cause = f"{err.code}: {err.message}; retry in {retry.backoff}s"
                    await self._unit_move(run, unit, WAITING_RETRY, cause)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(run.cancel.wait(), retry.backoff)
                    continue
                await self._unit_move(run, unit, FAILED, f"{err.code}: {err.message}")
                return

    async def _attempt(self, run: _Run, unit: UnitRecord, attempt: int) -> None:
        rec = run.record
        link = ProviderLink(self.runtime, unit.node, self.proofs_for, timeout=self.settings.call_timeout)
        args, uploads = run.prepared[unit.task].start_args(rec.name, rec.id, spec=run.spec)
        for blob in uploads:
            await link.upload(blob)
        alloc_id, invocation = await link.start(args)
        unit.alloc_id = alloc_id
        unit.receipt = None
        run.active[unit.key] = (link, alloc_id)
        status: StatusReply | None = None
        try:
            await self._unit_move(run, unit, RUNNING, f"allocation {alloc_id} accepted")
            if run.cancel.is_set():
                await link.cancel(alloc_id)
            timeout = next(t for t in run.spec.tasks if t.name == unit.task).timeout
            status = await self._follow(run, unit, link, alloc_id, timeout)
        finally:
            run.active.pop(unit.key, None)
            if status is None:  # we lost track of it: do not leave it running on the provider
                with contextlib.suppress(AgoraError, TimeoutError):
                    await asyncio.wait_for(link.cancel(alloc_id), 2.0)
        await self._finish(run, unit, link, status, invocation)

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
        for _ in range(MAX_POLLS):
            began = loop.time()
            if ended is not None and began >= drain_until:
                return ended
            if ended is None and deadline is not None and began >= deadline:
                raise AgoraError(
                    "task_timeout",
                    f"allocation {alloc_id} did not end within its timeout of {timeout}s "
                    f"(+{self.settings.end_grace_s:g}s grace); cancelled on {link.target}",
                )
            wait_s = 0.0 if ended is not None else self.settings.status_wait_s
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
                await asyncio.sleep(max(0.0, began + self.settings.min_poll_s - loop.time()))
        raise AgoraError("timeout", f"allocation {alloc_id} did not end")

    def _copy_logs(self, run: _Run, unit: UnitRecord, page: LogsPage) -> None:
        if page.dropped:
            run.log.add(unit.key, "agora", f"[{page.dropped} log lines dropped]", self.clock.now(), unit.attempts)
        for line in page.lines:
            run.log.add(unit.key, line.stream, line.line, line.ts, unit.attempts)


__all__ = ["JobRunner", "RunnerSettings"]
