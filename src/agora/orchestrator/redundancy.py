"""Redundant execution: a unit whose job asks for `verification: {replicas: k, agree: m}` runs on k distinct
providers and is accepted when m of them signed the same output hashes.

Why: a provider is not trusted. Its usage receipt proves what it *claims* it produced (signed SHA-256 of
every output file), not that the task really produced it. Running the same unit on several providers that
do not know of each other and comparing the signed hash sets catches a provider that returns made-up or
tampered results, and names it with the receipt it signed (the evidence the trust model uses).

How (`RedundantUnit.run`, one per unit, called by the runner instead of its one-provider path):

- **Placement**: placement rounds (`Placer.place` with `want` = the replicas still to place, `k` = the job's
  `placement.bids`) award the best bids, each on a different provider; a provider that ever held a replica
  of this unit (or was lost under it) is never asked again for it; one that declined or did not commit is
  not asked again until the index changes, and while candidates that pass were not asked yet, the next
  round follows at once (more bid requests instead of a wait). When fewer candidates than the replicas
  still wanted pass the hard filter, the round asks none (`not_enough_providers`) and the unit waits,
  `pending` in the queue, until the index changes or the job's deadline passes (`deadline_exceeded`).
  Replicas that did commit start at once (a commit must be started before `start_by`); the missing ones
  are placed by later rounds.
- **Run**: each replica is started with its bid's delegation, followed through the same watch stream as
  any unit (its log lines go by `<unit>~r<slot>`), and its end checked as any unit's: the usage receipt
  must verify and tie to this start, the unsigned status must agree with it.
- **Tally** (`tally`, pure): the replicas that completed are grouped by their output set (path, sha256,
  size of every output; logs are not compared). The first group to reach `agree` is the answer: its
  outputs are fetched (from the first replica of the group, the next one when that fetch fails), the
  replicas still running are cancelled on their providers and placements not started are released (no
  slot kept once the answer is known). Every completed replica outside the group disagreed: one
  `job.provider_disagreed` event each, with its receipt's CID and the agreeing receipts' CIDs.
- **No agreement**: once no group can reach `agree` any more (completed + still possible < agree), the
  unit fails `results_disagree` (a `job.results_disagree` event lists every replica, its output set and
  its receipt) when completed replicas disagree; otherwise with the error of a failed replica, or
  `deadline_exceeded` when the missing replicas found no provider by the deadline.
- **Retries**: a replica that fails with an error the job's `retry` policy retries (by default a lost
  provider or a transient error) is placed again, at once, on a provider not used by this unit yet; the
  policy's `attempts` bound the re-placements of the whole unit.

Every replica's move is stored with the unit's row and an event (`job.replica`); `unit.replicas` is what
`agora job status` and `agora job why` show. The replicas as data and the tally (pure) are in `replicas.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agora.errors import AgoraError
from agora.market import JobNeed
from agora.models.job import Verification, failure_class
from agora.orchestrator.outputs import fetch_output
from agora.orchestrator.provider import ProviderLink
from agora.orchestrator.record import (
    CANCELLED,
    COMMITTED,
    COMPLETED,
    FAILED,
    MATCHING,
    PENDING,
    PLACING,
    RUNNING,
    STARTING,
    UNITS,
    UnitRecord,
    unit_row_id,
)
from agora.orchestrator.replicas import (
    R_CANCELLED,
    R_COMMITTED,
    R_COMPLETED,
    R_FAILED,
    R_LOST,
    R_RUNNING,
    REPLICA_ENDED,
    Replica,
    Tally,
    receipt_cid,
    tally,
)
from agora.orchestrator.verify import check_end, limit_outputs, safe_output_path, verify_receipt
from agora.wire.alloc import StatusReply

if TYPE_CHECKING:
    from agora.orchestrator.runner import JobRunner, _Run

log = logging.getLogger("agora.orchestrator.redundancy")

MAX_STEPS = 100_000  # a bound, not a plan: each step waits for a replica's end, the index or the deadline


class RedundantUnit:
    """Runs one unit of a job with a `verification` block to its end (see the module doc)."""

    def __init__(self, runner: JobRunner, run: _Run, unit: UnitRecord, verification: Verification) -> None:
        self.runner = runner
        self.run_ = run
        self.unit = unit
        self.replicas_wanted = verification.replicas
        self.agree = verification.agree
        self.replicas: list[Replica] = []
        self.tasks: dict[asyncio.Task[None], Replica] = {}
        self.results: list[tuple[int, str]] = []  # (slot, fingerprint) in order of completion
        self.open: list[int] = list(range(1, verification.replicas + 1))  # slots to place
        self.closed: dict[int, dict[str, Any]] = {}  # slots that will bring no result: their error
        self.retries_left = run.spec.retry.attempts
        self.rounds = 0
        self.refused: set[str] = set()  # declined, failed or did not commit since the index last changed
        self.refused_at = -1  # the index version `refused` belongs to

    # -- the unit ---------------------------------------------------------------------------
    async def run(self) -> None:
        runner, run, unit = self.runner, self.run_, self.unit
        placer = runner.placer
        if placer is None:
            raise AgoraError("internal", "redundant execution needs a market placer")
        unit.attempts = 1
        unit.replicas = []
        need = JobNeed.from_spec(run.spec, unit.task, requester=runner.did)
        seen = -1  # the index version of the last round that left slots open (-1: place now)
        try:
            for _ in range(MAX_STEPS):
                if run.cancel.is_set():
                    await self._cancelled(run.cancel_cause or "cancelled")
                    return
                state = self._tally()
                if state.outcome == "agreed":
                    await self._accept(state)
                    return
                if state.outcome == "impossible":
                    await self._fail(state)
                    return
                now = runner.clock.now()
                deadline = run.record.deadline if run.record.deadline is not None else now
                if self.open and seen != runner._index_version:
                    runner._ensure_index_watch()
                    version = runner._index_version
                    if version != self.refused_at:  # the index moved: who refused may take it now
                        self.refused, self.refused_at = set(), version
                    more = await self._place_round(need)
                    seen = version if self.open and not more else -1
                    if self.open and not more and not self.tasks and unit.state in PLACING and now < deadline:
                        summary = _summary(unit.placements[-1])
                        await runner._unit_move(run, unit, PENDING, summary)
                        await runner._job_follows(run, PENDING, f"{unit.key} waits for providers: {summary}")
                    continue
                if self.open and now >= deadline:
                    await self._out_of_time()
                    continue
                await self._wait(seen, deadline - now)
            err = AgoraError("internal", f"{unit.key}: redundant execution took more than {MAX_STEPS} steps")
            await self._stop_all(err.message)
            unit.error = err.to_dict()
            await runner._unit_move(run, unit, FAILED, err.message)
        finally:
            await self._stop_all("the unit ended")

    def _tally(self) -> Tally:
        running = sum(1 for r in self.tasks.values() if r.state not in REPLICA_ENDED)
        return tally(self.results, self.agree, running + len(self.open))

    async def _wait(self, seen: int, timeout: float) -> None:
        """Until a replica ends, the index changes (when slots wait for a provider), the job is cancelled,
        or `timeout` runs out (the deadline, when slots wait)."""
        runner, run = self.runner, self.run_
        extra: list[asyncio.Task[Any]] = [asyncio.create_task(run.cancel.wait())]
        if self.open:
            extra.append(asyncio.create_task(runner._index_changed.wait()))
        try:
            if self.open and runner._index_version != seen:
                return
            await asyncio.wait(
                [*self.tasks, *extra],
                timeout=max(0.0, timeout) if self.open else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for t in extra:
                t.cancel()
            await asyncio.gather(*extra, return_exceptions=True)
        for task in [t for t in self.tasks if t.done()]:
            rep = self.tasks.pop(task)
            await self._ended(rep, task)

    # -- placement ----------------------------------------------------------------------------
    async def _place_round(self, need: JobNeed) -> bool:
        """One placement round for the open slots; True when another one should follow at once: slots are
        still open, this round made progress, and candidates that pass were not asked yet (more bid
        requests, to the next best, instead of waiting for the index to change)."""
        runner, run, unit = self.runner, self.run_, self.unit
        placer = runner.placer
        assert placer is not None
        self.rounds += 1
        want = len(self.open)
        used = sorted({r.provider for r in self.replicas} | set(unit.excluded))
        avoid = sorted(set(used) | self.refused)
        placing = unit.state in PLACING
        if placing:
            without = f" without {', '.join(used)}" if used else ""
            cause = f"placement round {self.rounds}: {want} of {self.replicas_wanted} replica(s){without}"
            await runner._unit_move(run, unit, MATCHING, cause)
            await runner._job_follows(run, MATCHING, f"{unit.key}: {cause}")

        async def on_state(state: str, cause: str) -> None:
            if unit.state in PLACING and state != unit.state:
                await runner._unit_move(run, unit, state, cause)
                await runner._job_follows(run, state, f"{unit.key}: {cause}")

        rnd = await placer.place(
            run.record.id,
            unit.key,
            need,
            only=run.only,
            exclude=avoid,
            on_state=on_state,
            k=run.spec.placement.bids,
            want=want,
        )
        if runner.trust is not None:  # latency of the answers, `late` for the silent (as for a single unit)
            await runner.trust.placement(run.record.id, unit.key, rnd)
        unit.add_round(rnd.why())
        committed = {p.provider for p in rnd.placed_all}
        refused = {x["provider"] for x in (*rnd.declines, *rnd.failures)} - committed
        progress = bool(committed) or not refused <= self.refused
        self.refused |= refused
        decision = rnd.decision
        unasked = decision is not None and len(decision.passed) > len(decision.chosen)
        more = progress and unasked and len(self.open) > len(committed)
        if not rnd.placed_all:
            return more
        started = []
        for p in rnd.placed_all:
            rep = Replica(slot=self.open.pop(0), placed=p)
            self.replicas.append(rep)
            started.append(rep)
        names = ", ".join(f"r{r.slot} {r.provider} at {r.placed.bid.price:,}" for r in started)
        if unit.state in PLACING:
            cause = f"{len(started)} replica(s) committed: {names}"
            await runner._unit_move(run, unit, COMMITTED, cause)
            await runner._job_follows(run, COMMITTED, f"{unit.key}: {cause}")
            await runner._unit_move(run, unit, STARTING, f"replicas start on {len(started)} provider(s)")
        for rep in started:
            await self._replica_move(rep, R_COMMITTED, f"committed at {rep.placed.bid.price:,}")
            task = asyncio.create_task(self._execute(rep), name=f"replica:{rep.key(unit.key)}")
            self.tasks[task] = rep
        return more

    async def _out_of_time(self) -> None:
        """The deadline passed with replicas still unplaced: those slots will bring no result."""
        runner, run, unit = self.runner, self.run_, self.unit
        why = unit.placements[-1] if unit.placements else {"blocking": {}, "decision": {"what_would_fit": []}}
        summary = _summary(why)
        err = AgoraError(
            "deadline_exceeded",
            f"{unit.key}: {len(self.open)} replica(s) found no provider by the deadline ({summary})",
            details={"blocking": why.get("blocking", {}), "what_would_fit": why["decision"].get("what_would_fit", [])},
        )
        for slot in self.open:
            self.closed[slot] = err.to_dict()
        self.open = []
        if not self.replicas:  # nothing ran: fail as any unit that found no provider does
            unit.error = err.to_dict()
            await runner._unit_move(run, unit, FAILED, f"deadline_exceeded: {summary}")
            raise _Ended
        run.log.add(unit.key, "agora", err.message, runner.clock.now(), unit.attempts)

    # -- one replica --------------------------------------------------------------------------
    async def _execute(self, rep: Replica) -> None:
        """Start the replica on its provider, follow it to its end, verify its receipt (no outputs fetched:
        only the answer's are). Raises the replica's failure."""
        runner, run, unit = self.runner, self.run_, self.unit
        rec = run.record
        key = rep.key(unit.key)
        link = ProviderLink(
            runner.runtime,
            rep.provider,
            rep.placed.proof_source(runner.proofs_for),
            timeout=runner.settings.call_timeout,
        )
        args, uploads = run.prepared[unit.task].start_args(rec.name, rec.id, spec=run.spec)
        args = dataclasses.replace(args, reservation=rep.placed.request_id)
        try:
            if runner.settler is not None:  # each replica is a contract of its own (its slot), paid if it agrees
                await runner.settler.placed(rec.id, unit.key, rep.placed, run.spec, slot=key)
            for blob in uploads:
                await link.upload(blob)
            alloc_id, invocation = await link.start(args)
        except BaseException:
            if runner.placer is not None:
                await runner.placer.release(rep.placed, "the start failed")
            raise
        rep.alloc_id, rep.link = alloc_id, link
        if runner.settler is not None:
            await runner.settler.started(rec.id, unit.key, alloc_id, slot=key)
        run.active[key] = (link, alloc_id)
        run.lost[key] = (rep.provider, asyncio.Event())
        status: StatusReply | None = None
        try:
            await self._replica_move(rep, R_RUNNING, f"allocation {alloc_id} accepted")
            if unit.state == STARTING:
                await runner._unit_move(run, unit, RUNNING, f"replica {rep.slot} runs on {rep.provider}")
                await runner._job_running(run, f"{unit.key} runs on {rep.provider}")
            timeout = run.spec.task(unit.task).timeout
            shadow = UnitRecord(key=key, task=unit.task, index=unit.index, node=rep.provider, attempts=unit.attempts)
            status = await runner._follow_unless_lost(run, shadow, link, alloc_id, timeout)
        finally:
            run.active.pop(key, None)
            run.lost.pop(key, None)
            if status is None:  # cut short (the answer is known, cancelled, lost): do not leave it running
                with contextlib.suppress(AgoraError, TimeoutError):
                    await asyncio.wait_for(link.cancel(alloc_id), 2.0)
        receipt = verify_receipt(
            status.receipt,
            provider=rep.provider,
            requester=runner.did,
            alloc_id=alloc_id,
            invocation=invocation,
            outputs=status.outputs,
        )
        rep.receipt = receipt
        check_end(status.state, receipt, status.error)
        if status.state == COMPLETED:
            limit_outputs(receipt, run.spec.task(unit.task).resources.disk)
            return
        if status.state == CANCELLED:
            raise AgoraError("task_cancelled", f"allocation {alloc_id} was cancelled")
        if isinstance(status.error, dict):
            raise AgoraError.from_dict(status.error)
        raise AgoraError("task_failed", f"allocation {alloc_id} ended {status.state} without an error")

    async def _ended(self, rep: Replica, task: asyncio.Task[None]) -> None:
        """Record how a replica's task ended; a retried failure opens its slot again."""
        run, unit = self.run_, self.unit
        if task.cancelled():
            await self._replica_move(rep, R_CANCELLED, "cut short")
            return
        exc = task.exception()
        if exc is None:
            fp = rep.digest
            self.results.append((rep.slot, fp))
            await self._replica_move(rep, R_COMPLETED, f"verified receipt, outputs {fp}")
            return
        if isinstance(exc, AgoraError):
            err = exc
        else:
            log.error("replica %s of job %s failed inside the orchestrator", rep.key(unit.key), run.record.id)
            err = AgoraError("internal", f"{type(exc).__name__}: {exc}", retryable=False)
        rep.error = err.to_dict()
        if self.runner.settler is not None:  # nothing delivered by this replica: its money goes back
            await self.runner.settler.attempt_failed(run.record.id, unit.key, err, slot=rep.key(unit.key))
        retry = run.spec.retry
        if not run.cancel.is_set() and self.retries_left > 0 and retry.should_retry(err.code, err.retryable, 1):
            self.retries_left -= 1
            if failure_class(err.code, err.retryable) == "node_lost" and rep.provider not in unit.excluded:
                unit.excluded.append(rep.provider)
            self.open.append(rep.slot)
            await self._replica_move(rep, R_LOST, f"{err.code}: {err.message}; placed again elsewhere")
            return
        self.closed[rep.slot] = err.to_dict()
        await self._replica_move(rep, R_FAILED, f"{err.code}: {err.message}")

    # -- the end ------------------------------------------------------------------------------
    async def _accept(self, state: Tally) -> None:
        runner, run, unit = self.runner, self.run_, self.unit
        assert state.answer is not None
        agreeing = [self._replica(s) for s in state.groups[state.answer]]
        await self._stop_all(f"the answer is known: {len(agreeing)} of {self.replicas_wanted} replicas agree")
        for slot, fp in self.results:
            self._replica(slot).verdict = "agreed" if fp == state.answer else "disagreed"
        problem: AgoraError | None = None
        for kept in agreeing:
            try:
                unit.outputs = await self._fetch(kept)
            except AgoraError as err:
                problem = err
                run.log.add(unit.key, "agora", f"replica {kept.slot}: {err.code}: {err.message}", runner.clock.now())
                continue
            problem = None
            unit.node, unit.alloc_id = kept.provider, kept.alloc_id
            unit.receipt = kept.receipt.to_dict() if kept.receipt is not None else None
            break
        if runner.settler is not None:  # the agreeing replicas delivered; the rest are unwound at the job's end
            for kept in agreeing:
                if kept.receipt is not None:
                    await runner.settler.delivered(run.record.id, unit.key, kept.receipt, slot=kept.key(unit.key))
        verdicts = [{"slot": r.slot, "provider": r.provider, "verdict": r.verdict} for r in self.replicas if r.verdict]
        await self._save("job.replica", {"task": unit.key, "answer": state.answer, "verdicts": verdicts})
        await self._record_disagreement(agreeing, state)
        if problem is not None:
            unit.error = problem.to_dict()
            await runner._unit_move(run, unit, FAILED, f"{problem.code}: {problem.message}")
            return
        dissent = [r for r in self.replicas if r.verdict == "disagreed"]
        names = ", ".join(r.provider for r in agreeing)
        cause = f"verified by {len(agreeing)} of {self.replicas_wanted} replicas ({names})"
        if dissent:
            cause += f"; disagreed: {', '.join(r.provider for r in dissent)}"
        await runner._unit_move(run, unit, COMPLETED, cause)

    async def _fetch(self, rep: Replica) -> list[dict[str, Any]]:
        """The replica's outputs into the unit's dir, each checked against its receipt."""
        runner, run, unit = self.runner, self.run_, self.unit
        assert rep.receipt is not None and rep.link is not None and rep.alloc_id is not None
        root = Path(run.record.dir) / unit.key
        fetched = []
        for out in rep.receipt.outputs:
            dest = safe_output_path(root, out.path)
            source, problem = await fetch_output(rep.link, runner.published, rep.alloc_id, out, out.uri, dest)
            if problem is not None:
                note = f"{out.path}: {out.uri} unusable ({problem.code}: {problem.message}); fetched from the provider"
                run.log.add(unit.key, "agora", note, runner.clock.now(), unit.attempts)
            extra = {"local_path": str(dest), "fetched_from": source, "provider": rep.provider}
            fetched.append(out.to_dict() | extra | ({"uri": out.uri} if out.uri else {}))
        return fetched

    async def _record_disagreement(self, agreeing: list[Replica], state: Tally) -> None:
        """One `job.provider_disagreed` event per completed replica outside the answer: the evidence."""
        evidence = [{"provider": r.provider, "receipt": receipt_cid(r), "slot": r.slot} for r in agreeing]
        for rep in self.replicas:
            if rep.verdict != "disagreed":
                continue
            data = {
                "task": self.unit.key,
                "provider": rep.provider,
                "slot": rep.slot,
                "receipt": receipt_cid(rep),
                "alloc_id": rep.alloc_id,
                "outputs": rep.to_doc()["outputs"],
                "digest": rep.digest,
                "expected": state.answer,
                "agreed": evidence,
                "replicas": self.replicas_wanted,
                "agree": self.agree,
            }
            await self.runner.store.append_event("job.provider_disagreed", self.run_.record.id, data)
            if self.runner.trust is not None:  # the evidence the trust model weighs (docs/market.md "Trust")
                cites = {"job": self.run_.record.id, "unit": self.unit.key}
                if data["receipt"]:
                    cites["receipt"] = str(data["receipt"])
                await self.runner.trust.record(rep.provider, "disagreement", cites, f"outputs {rep.digest}")
            slasher = self.runner.slasher
            signed = [r.receipt for r in agreeing if r.receipt is not None]
            if slasher is not None and rep.receipt is not None:  # on proof, at the hub (slashing.py)
                min_stake = self.run_.spec.placement.min_stake
                await slasher.claim(self.run_.record.id, self.unit.key, rep.receipt, signed, min_stake)

    async def _fail(self, state: Tally) -> None:
        runner, run, unit = self.runner, self.run_, self.unit
        await self._stop_all("no answer is possible any more")
        done = [r for r in self.replicas if r.state == R_COMPLETED]
        if state.disagree:
            for r in done:
                r.verdict = "disagreed"
            groups = {fp: [self._replica(s).provider for s in slots] for fp, slots in state.groups.items()}
            text = "; ".join(f"{fp}: {', '.join(p)}" for fp, p in groups.items())
            err = AgoraError(
                "results_disagree",
                f"{unit.key}: no {self.agree} of {self.replicas_wanted} replicas signed the same outputs ({text})",
                details={"groups": groups, "agree": self.agree, "replicas": [r.to_doc() for r in self.replicas]},
            )
            data = {
                "task": unit.key,
                "agree": self.agree,
                "replicas": self.replicas_wanted,
                "results": [
                    {
                        "provider": r.provider,
                        "slot": r.slot,
                        "receipt": receipt_cid(r),
                        "digest": r.digest,
                    }
                    for r in done
                ],
            }
            await runner.store.append_event("job.results_disagree", run.record.id, data)
        else:
            first = next((self.closed[s] for s in sorted(self.closed)), None)
            err = (
                AgoraError.from_dict(first) if first is not None else AgoraError("task_failed", "no replica completed")
            )
            err = AgoraError(
                err.code,
                f"{unit.key}: {len(done)} replica(s) completed, {self.agree} must agree; {err.message}",
                hint=err.hint,
                retryable=err.retryable,
                details=err.details,
            )
        unit.error = err.to_dict()
        await self._save("job.replica", {"task": unit.key, "failed": err.code})
        await runner._unit_move(run, unit, FAILED, f"{err.code}: {err.message}")

    async def _cancelled(self, cause: str) -> None:
        await self._stop_all(cause)
        await self.runner._unit_move(self.run_, self.unit, CANCELLED, cause)

    async def _stop_all(self, cause: str) -> None:
        """Cancel every replica still running (each cancels its allocation on its provider, or releases its
        placement when it had not started) and wait for them."""
        tasks = list(self.tasks)
        finished = {t for t in tasks if t.done()}  # ended on their own: their result still counts
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            rep = self.tasks.pop(task)
            if task in finished:
                await self._ended(rep, task)
            else:
                await self._replica_move(rep, R_CANCELLED, cause)

    # -- records ------------------------------------------------------------------------------
    def _replica(self, slot: int) -> Replica:
        """The replica of `slot` that produced its result (the newest one placed in it)."""
        return next(r for r in reversed(self.replicas) if r.slot == slot)

    async def _replica_move(self, rep: Replica, state: str, cause: str) -> None:
        now = self.runner.clock.now()
        rep.state = state
        rep.history.append({"state": state, "at": now, "cause": cause[:1000]})
        key = rep.key(self.unit.key)
        self.run_.log.add(self.unit.key, "agora", f"{key} on {rep.provider}: {state} ({cause})", now)
        data = {"task": self.unit.key, "slot": rep.slot, "provider": rep.provider, "state": state, "cause": cause}
        await self._save("job.replica", data | {"alloc_id": rep.alloc_id})

    async def _save(self, kind: str, data: dict[str, Any]) -> None:
        """The unit's row (with its replicas) and the event, in one step."""
        run, unit, store = self.run_, self.unit, self.runner.store
        unit.replicas = [r.to_doc() for r in self.replicas]
        async with store.transaction():
            await store.put(UNITS, unit_row_id(run.record.id, unit.key), unit.row(run.record.id, run.order[unit.key]))
            await store.append_event(kind, run.record.id, data)


class _Ended(Exception):
    """The unit ended inside a step (its move recorded): leave the loop."""


def _summary(why: dict[str, Any]) -> str:
    outcome = why.get("outcome")
    blocking = ", ".join(f"{code} x{n}" for code, n in why.get("blocking", {}).items()) or "no provider in the index"
    decision = why.get("decision", {})
    want = why.get("want", 1)
    return f"{outcome}: {decision.get('passed', 0)} of {want} needed provider(s) fit; {blocking}"


async def run_redundant(runner: JobRunner, run: _Run, unit: UnitRecord, verification: Verification) -> None:
    """Run `unit` on distinct providers until its replicas agree (or cannot any more): its end is recorded."""
    try:
        await RedundantUnit(runner, run, unit, verification).run()
    except _Ended:
        pass
    except Exception as exc:  # the unit still ends in a recorded state (the replicas were stopped)
        if isinstance(exc, AgoraError):
            err = exc
        else:
            log.exception("unit %s of job %s failed inside the orchestrator", unit.key, run.record.id)
            err = AgoraError("internal", f"{type(exc).__name__}: {exc}", retryable=False)
        if not unit.ended:
            unit.error = err.to_dict()
            await runner._unit_move(run, unit, FAILED, f"{err.code}: {err.message}")


__all__ = ["RedundantUnit", "run_redundant"]
