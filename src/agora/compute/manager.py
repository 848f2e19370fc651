"""The Allocation manager: the provider-side actor that runs tasks for requesters.

Behaviors (all protected: the caller needs a delegation chain rooted at this node, which the runtime
checks before any handler runs; `agora node grant DID` issues one):

  /agora/alloc/start   validate the task, check its engine and this node's free capacity, reserve,
                       answer {alloc_id, state: accepted} at once; staging and running go on in the
                       background
  /agora/alloc/status  the allocation record (long-poll: `known_state` + `wait_s` returns as soon as
                       the state differs); the signed usage receipt once it ended
  /agora/alloc/logs    log lines after a cursor (long-poll with `wait_s`)
  /agora/alloc/watch   state and log lines together, as soon as either changes (`watch.py`): the one
                       stream the requester follows; message shapes in `agora.wire.alloc`
  /agora/alloc/cancel  stop it (idempotent once it ended)
  /agora/alloc/fetch   an output's bytes by sha256, <= 256 KiB per call
  /agora/alloc/upload  a module or input too big for the start request, in chunks, into the CAS

Only the requester that started an allocation (or this node itself) can see or touch it; anyone else
gets `alloc_not_found`, so allocation ids leak nothing.

Every ending (completed, failed, cancelled, timeout, oom, a start error after the reservation) goes
through `_run`'s one exit path: executor cleanup, work dir removed, capacity released (the
`AllocationRun`'s exit stack, see lifecycle.py), usage receipt signed, then the terminal state recorded.
A requester that sees a terminal state can rely on the node holding nothing of the task any more but
its collected outputs. A node that restarts marks what was in flight `failed` with `alloc_interrupted`
and a signed receipt saying so, and removes the work dirs left behind (`recover`). What requesters
store here is bounded per requester and swept when it expires (quota.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agora.actor import Actor, CallContext, behavior
from agora.clock import SYSTEM_CLOCK, Clock
from agora.compute.allocation import (
    COLLECTION,
    COMPLETED,
    RUNNING,
    STAGING,
    Allocation,
)
from agora.compute.ending import interrupted, outcome, sign_usage
from agora.compute.lifecycle import AllocationRun, executor_handle, uninterrupted
from agora.compute.logring import LogRing
from agora.compute.outputs import check_outputs, survey_outputs
from agora.compute.quota import StoreLedger, StoreLimits
from agora.compute.stores import NodeStores, publish_outputs
from agora.compute.taskprep import (
    cas_references,
    exec_request,
    module_sha256,
    need_of,
    output_dirs,
    output_name,
    parse_task,
    storage_inputs,
)
from agora.compute.transfer import CasOwners, Uploads, read_chunk
from agora.compute.watch import DEFAULT_LONG_POLLS, DEFAULT_LONG_POLLS_PER_REQUESTER, LongPolls, WatchBehavior
from agora.errors import AgoraError
from agora.executors import ExecHandle, ExecResult, Executor
from agora.executors.registry import ExecutorRegistry
from agora.identity import Keypair
from agora.jobs import require_start_constraints
from agora.models.capability import Capability, accounted, fits
from agora.resources import CapacityTracker
from agora.storage import LocalCAS, Storages, collect_outputs, fetch_inputs, remove_tree
from agora.store import Scalar, Store
from agora.wire import OutputDigest
from agora.wire.alloc import LogsPage, StartArgs, StatusReply, check_alloc_id, check_cursor, check_wait

log = logging.getLogger("agora.compute")

MAX_MODULE_INLINE = 512 * 1024


@dataclass(frozen=True)
class ComputeSettings:
    max_allocations: int = 64  # running at once
    log_lines: int = 2000  # per allocation
    log_bytes: int = 1024 * 1024  # per allocation: text kept (lines longer than logring.MAX_LINE are cut)
    finished_logs: int = 256  # allocations whose logs stay readable after they ended
    max_wait_s: float = 10.0  # longest long-poll
    max_long_polls: int = DEFAULT_LONG_POLLS  # waiting at once, in all (each holds a message handler)
    max_long_polls_per_requester: int = DEFAULT_LONG_POLLS_PER_REQUESTER  # past either: answered at once
    log_drain_s: float = 5.0  # how long to wait for the last log lines after the task ended
    max_output_files: int = 1000  # per task (a receipt lists each; at most agora.wire.usage.MAX_OUTPUTS)
    # each requester's share of the CAS, and how long what it stored there stays (quota.py)
    store: StoreLimits = field(default_factory=StoreLimits)


_Live = AllocationRun  # the name the lifecycle tests know it by


class MarketReservations(Protocol):
    """Capacity committed by the market (`compute.bidder.Bidder`): a start citing `StartArgs.reservation`
    takes it instead of reserving anew, and calls what `take` returns when the allocation ends."""

    def take(self, reservation: str, *, requester: str, job_id: str, need: Capability) -> Callable[[], None]: ...


class AllocationManager(WatchBehavior, Actor):
    name = "alloc"

    def __init__(
        self,
        *,
        keypair: Keypair,
        store: Store,
        registry: ExecutorRegistry,
        capacity: CapacityTracker,
        cas: LocalCAS,
        work_root: Path,
        stores: NodeStores | None = None,
        clock: Clock = SYSTEM_CLOCK,
        settings: ComputeSettings | None = None,
    ) -> None:
        self.keypair = keypair
        self.did = keypair.did
        self.store = store
        self.registry = registry
        self.capacity = capacity
        self.cas = cas
        self.stores = stores or NodeStores(cas)  # where inputs come from and outputs go (local only by default)
        self.work_root = work_root
        self.clock = clock
        self.settings = settings or ComputeSettings()
        self.long_polls = LongPolls(self.settings.max_long_polls, self.settings.max_long_polls_per_requester)
        self.owners = CasOwners(store)  # who may name which CAS object by its hash
        self.ledger = StoreLedger(store, cas, self.owners, self.settings.store, clock)  # quotas, retention
        self.uploads = Uploads(
            cas,
            work_root.parent / "uploads",
            owners=self.owners,
            admit=lambda owner, size: self.ledger.require_room(owner, size, "the upload"),
            stored=lambda owner, digest, size: self.ledger.hold(owner, digest, size, "upload"),
        )
        self.market: MarketReservations | None = None  # set by the node when it sells (node/compute.py)
        self._live: dict[str, _Live] = {}
        self._rings: OrderedDict[str, LogRing] = OrderedDict()
        self._closed = False
        self._gc: asyncio.Task[None] | None = None
        self._gc_stop = asyncio.Event()

    @property
    def storages(self) -> Storages:
        """The backends any task may use (CAS and the HTTP fetcher); hub and S3 come per task from `stores`."""
        return Storages(local=self.cas, http=self.stores.http)

    # -- lifecycle ----------------------------------------------------------------------------
    async def recover(self) -> int:
        """At node start: whatever was in flight when the node went down ended then; say so."""
        await asyncio.to_thread(self._clear_dirs)
        n = 0
        for state in ("accepted", STAGING, RUNNING):
            for doc in await self.store.query(COLLECTION, {"state": state}, limit=10_000):
                alloc = Allocation.from_doc(doc)
                interrupted(self.keypair, alloc, self.clock.now())  # signed: the requester retries it
                await self._persist(alloc, "alloc_interrupted")
                n += 1
        return n

    def _clear_dirs(self) -> None:
        if self.work_root.exists():
            for child in self.work_root.iterdir():
                remove_tree(child)
        self.work_root.mkdir(parents=True, exist_ok=True)
        self.uploads.clear()

    async def start_sweeping(self) -> None:
        """Sweep the store now and every `store.sweep_interval_s` (expired uploads and outputs)."""
        if self._gc is None:
            self._gc = asyncio.create_task(self._sweep_loop(), name="alloc-store-sweep")

    async def sweep(self) -> int:
        """Remove what expired from the CAS, except objects a live allocation uses; how many went."""
        in_use = {d for live in self._live.values() for d in live.uses}
        return await self.ledger.sweep(in_use)

    async def _sweep_loop(self) -> None:
        while not self._gc_stop.is_set():
            try:
                removed = await self.sweep()
                if removed:
                    log.info("removed %d expired object(s) from the store", removed)
            except Exception:
                log.exception("the store sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._gc_stop.wait(), self.settings.store.sweep_interval_s)

    async def stop(self) -> None:
        """Cancel every allocation and wait for each to end cleanly (recorded, capacity back)."""
        self._closed = True
        self._gc_stop.set()
        if self._gc is not None:
            await self._gc
            self._gc = None
        lives = list(self._live.values())
        for live in lives:
            live.stopping = True
            await self._cancel(live, "the node is stopping")
        tasks = [t for t in (live.task for live in lives) if t is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=30)

    # -- views for the local API --------------------------------------------------------------
    def running(self) -> list[dict[str, Any]]:
        return [live.alloc.to_doc() | {"receipt": None} for live in self._live.values()]

    async def history(self, *, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        where: dict[str, Scalar] | None = {"state": state} if state else None
        return await self.store.query(COLLECTION, where, order_by="created_at", desc=True, limit=limit)

    # -- behaviors ----------------------------------------------------------------------------
    @behavior("/agora/alloc/start")
    async def start(self, ctx: CallContext) -> dict[str, Any]:
        """Reserve capacity for one task and start it in the background."""
        if self._closed:
            raise AgoraError("unavailable", "the node is stopping", retryable=True)
        args = StartArgs.from_args(ctx.args)  # the protocol's one schema (agora.wire.alloc)
        job, job_id = args.job, args.job_id
        spec = parse_task(args.task, job, args.job_type)
        require_start_constraints(list(args.constraints), self.capacity.total)  # constraints_unmet, every reason
        module_bytes, input_data, input_refs = args.module_bytes, args.input_data, args.input_refs
        executor = await asyncio.to_thread(self.registry.get, spec.engine)  # executor_unavailable + reason
        need = accounted(need_of(spec), spec.engine)
        whole = fits(need, self.capacity.total)
        if not whole.ok:
            raise AgoraError(
                "insufficient_capacity",
                f"the task needs more than this node has: {whole.text}",
                retryable=False,
                details={"reasons": [r.to_dict() for r in whole.reasons], "scope": "total"},
            )
        if len(self._live) >= self.settings.max_allocations:
            raise AgoraError("insufficient_capacity", f"{len(self._live)} allocations already run here")
        # from the count to the insert into `_live` there is no await: concurrent starts cannot all
        # pass the check (the slot is taken before the record is written, and given back if that fails)
        alloc_id = "alloc-" + secrets.token_hex(8)
        give_back: Callable[[], object]
        if args.reservation is not None:  # placed by the market: take what the commit reserved, nothing more
            if self.market is None:
                raise AgoraError("reservation_not_found", "this node takes no market reservations")
            give_back = self.market.take(args.reservation, requester=ctx.invoker, job_id=job_id, need=need)
        else:
            self.capacity.reserve(alloc_id, need)  # insufficient_capacity with every reason, nothing reserved
            give_back = functools.partial(self.capacity.release, alloc_id)
        now = self.clock.now()
        alloc = Allocation(
            id=alloc_id,
            requester=ctx.invoker,
            job=job,
            job_id=job_id,
            task=spec.name,
            engine=spec.engine,
            need=need.to_dict(),
            invocation=str(ctx.invocation.cid),
            created_at=now,
        )
        ring = LogRing(self.settings.log_lines, self.settings.log_bytes)
        live = AllocationRun(alloc, spec, ring, live_dir(self.work_root, alloc_id), started_at=now)
        self._live[alloc_id] = live
        try:
            await self._persist(alloc, "start accepted")
        except BaseException:  # its life never began: nothing but the slot and the reservation to give back
            self._live.pop(alloc_id, None)
            give_back()
            raise
        live.held.callback(give_back)  # the first thing it holds, the last given back
        self._keep_ring(alloc_id, live.ring)
        live.task = asyncio.create_task(
            self._run(live, executor, module_bytes, dict(input_data), dict(input_refs)), name=f"alloc:{alloc_id}"
        )
        return {"alloc_id": alloc_id, "state": alloc.state}

    @behavior("/agora/alloc/status", mutating=False)
    async def status(self, ctx: CallContext) -> dict[str, Any]:
        """The allocation's record; with known_state and wait_s, waits for a change first."""
        alloc_id = _alloc_id(ctx.args)
        live = self._live.get(alloc_id)
        known = ctx.args.get("known_state")
        wait_s = _wait(ctx.args, self.settings.max_wait_s)
        if live is not None:
            self._check_owner(live.alloc, ctx.invoker)
            if known == live.alloc.state and wait_s > 0:
                with self.long_polls.slot(ctx.invoker) as may_wait, contextlib.suppress(TimeoutError):
                    if may_wait:
                        await asyncio.wait_for(live.changed.wait(), wait_s)
            return StatusReply.of_record(live.alloc.to_wire()).to_wire()
        return StatusReply.of_record((await self._load(alloc_id, ctx.invoker)).to_wire()).to_wire()

    @behavior("/agora/alloc/logs", mutating=False)
    async def logs(self, ctx: CallContext) -> dict[str, Any]:
        """Log lines after the cursor `after` (long-poll with wait_s)."""
        alloc_id = _alloc_id(ctx.args)
        after, limit = check_cursor(ctx.args)
        live = self._live.get(alloc_id)
        if live is not None:
            self._check_owner(live.alloc, ctx.invoker)
        else:
            await self._load(alloc_id, ctx.invoker)
        ring = self._rings.get(alloc_id)
        if ring is None:
            return LogsPage.gone(after).to_dict()
        wait_s = _wait(ctx.args, self.settings.max_wait_s)
        if wait_s > 0 and ring.last_seq <= after and not ring.closed:
            with self.long_polls.slot(ctx.invoker) as may_wait:
                if may_wait:
                    await ring.wait(after, wait_s)
        return ring.read(after, limit).to_dict()

    @behavior("/agora/alloc/cancel")
    async def cancel(self, ctx: CallContext) -> dict[str, Any]:
        """Stop the allocation; answering for one that already ended is not an error."""
        alloc_id = _alloc_id(ctx.args)
        live = self._live.get(alloc_id)
        if live is None:
            alloc = await self._load(alloc_id, ctx.invoker)
            return {"alloc_id": alloc_id, "state": alloc.state, "ended": True}
        self._check_owner(live.alloc, ctx.invoker)
        await self._cancel(live, f"cancelled by {ctx.invoker}")
        return {"alloc_id": alloc_id, "state": live.alloc.state, "ended": live.alloc.ended}

    @behavior("/agora/alloc/fetch", mutating=False)
    async def fetch(self, ctx: CallContext) -> dict[str, Any]:
        """A chunk of one of the allocation's outputs."""
        alloc_id = _alloc_id(ctx.args)
        sha = ctx.args.get("sha256")
        live = self._live.get(alloc_id)
        alloc = live.alloc if live is not None else await self._load(alloc_id, ctx.invoker)
        self._check_owner(alloc, ctx.invoker)
        if alloc.state != COMPLETED or not any(o["sha256"] == sha for o in alloc.outputs):
            raise AgoraError("not_found", f"allocation {alloc_id} has no output with sha256 {sha!r}")
        assert isinstance(sha, str)
        chunk = await read_chunk(self.cas, sha, ctx.args.get("offset", 0), ctx.args.get("length"))
        if chunk["eof"] and ctx.invoker == alloc.requester:  # it has all of it: keep it only a grace period
            await self.ledger.fetched(alloc.requester, sha)
        return chunk

    @behavior("/agora/alloc/upload")
    async def upload(self, ctx: CallContext) -> dict[str, Any]:
        """A chunk of a module or input for a later start; complete uploads land in this node's CAS."""
        a = ctx.args
        return dict(
            await self.uploads.receive(ctx.invoker, a.get("sha256"), a.get("size"), a.get("offset"), a.get("data"))
        )

    # -- internals ----------------------------------------------------------------------------
    def _check_owner(self, alloc: Allocation, invoker: str) -> None:
        if invoker not in (alloc.requester, self.did):
            raise AgoraError("alloc_not_found", f"no allocation {alloc.id} here")

    async def _load(self, alloc_id: str, invoker: str) -> Allocation:
        doc = await self.store.get(COLLECTION, alloc_id)
        if doc is None:
            raise AgoraError("alloc_not_found", f"no allocation {alloc_id} here")
        alloc = Allocation.from_doc(doc)
        self._check_owner(alloc, invoker)
        return alloc

    def _keep_ring(self, alloc_id: str, ring: LogRing) -> None:
        """Keep the rings of live allocations and of the last `finished_logs` that ended, no more.

        Live rings are skipped, not a stop: one long-running allocation started first must not pin
        every ring that finished after it."""
        self._rings[alloc_id] = ring
        self._rings.move_to_end(alloc_id)
        finished = [a for a in self._rings if a not in self._live]
        for oldest in finished[: max(0, len(finished) - self.settings.finished_logs)]:
            del self._rings[oldest]

    async def _persist(self, alloc: Allocation, cause: str) -> None:
        data: dict[str, Any] = {"state": alloc.state, "cause": cause, "job": alloc.job, "task": alloc.task}
        if alloc.error:
            data["code"] = alloc.error.get("code")
        async with self.store.transaction():
            await self.store.put(COLLECTION, alloc.id, alloc.to_doc())
            await self.store.append_event("alloc.state", alloc.id, data)

    async def _move(self, live: _Live, state: str, cause: str) -> None:
        live.alloc.move(state, self.clock.now(), cause)
        try:
            await self._persist(live.alloc, cause)
        finally:
            live.notify()

    async def _cancel(self, live: _Live, cause: str) -> None:
        await live.cancel(cause)

    async def _resolve_module(self, live: _Live, module_bytes: bytes | None) -> Path | None:
        spec = live.spec
        if spec.engine != "wasm":
            return None
        named = module_sha256(spec)
        if module_bytes is not None:
            if len(module_bytes) > MAX_MODULE_INLINE:
                raise AgoraError("input_too_large", f"an inline module is at most {MAX_MODULE_INLINE} bytes")
            digest = hashlib.sha256(module_bytes).hexdigest()
            if named is not None and digest != named:
                raise AgoraError("storage_integrity", f"the module bytes hash to {digest}, not {named}")
            live.uses.add(digest)
            if not await self.owners.owns(live.alloc.requester, digest):
                await self.ledger.require_room(live.alloc.requester, len(module_bytes), "the module")
            if not await self.cas.exists(self.cas.ref_for(digest, None)):
                await self.cas.put(module_bytes)
            await self.owners.add(live.alloc.requester, [digest])
            await self.ledger.hold(live.alloc.requester, digest, len(module_bytes), "module")
            return self.cas.path_of(digest)
        if named is not None:
            if not await self.cas.exists(self.cas.ref_for(named, None)):
                raise AgoraError(
                    "module_invalid",
                    f"module sha256:{named} does not exist on this node",
                    hint="Send the module with the start request or upload it first (`agora job run` does both).",
                )
            return self.cas.path_of(named)
        module = spec.module or ""
        if module.startswith(("http://", "https://")):
            target = live.work / "module.wasm"
            await self.stores.http.fetch_to_file(module, target)
            return target
        raise AgoraError(
            "module_invalid",
            f"module {module!r} does not exist here: a path names a file on the requester's machine",
            hint="Send the module bytes (module_bytes) or name an uploaded one as sha256:<hex>.",
        )

    async def _stage(
        self, live: _Live, module_bytes: bytes | None, data: dict[str, bytes], refs: dict[str, str]
    ) -> Path | None:
        work = live.work
        dirs = output_dirs(live.spec)
        live.held.push_async_callback(self._remove_work, work)  # before it exists: a half-made dir goes too
        await uninterrupted(asyncio.to_thread(_make_dirs, work, dirs))
        self.stores.check_task(live.spec)  # a hub/s3 input or output this node cannot serve: refuse before running
        # the CAS is shared: another requester's object reads as not stored
        named = cas_references(live.spec, data, refs, module_sent=module_bytes is not None)
        live.uses.update(digest for _, digest in named)  # the sweep leaves them while this runs
        await self.owners.require(live.alloc.requester, named)
        for _, digest in named:
            await self.ledger.renew(live.alloc.requester, digest)
        inputs = storage_inputs(live.spec, data, refs, self.stores.hub_bucket)
        module_path = await self._resolve_module(live, module_bytes)
        if inputs:
            fetched = await fetch_inputs(inputs, work / "inputs", await self.stores.input_storages(live.spec))
            staged = sum(f.size for f in fetched)
            disk = live.spec.resources.disk
            if staged > disk:  # inputs live on the provider's disk too: they count against what was reserved
                raise AgoraError(
                    "task_disk_limit",
                    f"the inputs take {staged} bytes, more than the task's disk ({disk} bytes)",
                    hint="Raise `resources.disk` to cover the inputs and the outputs.",
                )
        else:
            await asyncio.to_thread((work / "inputs").mkdir)
        return module_path

    async def _pump(self, executor: Executor, handle: ExecHandle, ring: LogRing) -> None:
        try:
            async for line in executor.logs(handle):
                ring.append(line.stream, line.line, line.ts)
        except Exception:  # the log is best effort: it must never end the allocation's task group
            log.exception("the log pump of %s failed", handle.request.task_id)

    async def _run(
        self,
        live: _Live,
        executor: Executor,
        module_bytes: bytes | None,
        input_data: dict[str, bytes],
        input_refs: dict[str, str],
    ) -> None:
        """The owner of one allocation: its body in its task group, then the one ending."""
        async with asyncio.TaskGroup() as tg:
            live.tg = tg
            live.body = tg.create_task(
                self._body(live, executor, module_bytes, input_data, input_refs), name=f"alloc-body:{live.alloc.id}"
            )
        await self._end(live, live.result, live.error, live.outputs, live.started_at, live.work, live.uris)

    async def _body(
        self,
        live: _Live,
        executor: Executor,
        module_bytes: bytes | None,
        input_data: dict[str, bytes],
        input_refs: dict[str, str],
    ) -> None:
        """Stage, run, collect; how it went is left on `live`, never raised (a cancel included)."""
        alloc = live.alloc
        try:
            await self._move(live, STAGING, "staging inputs")
            module_path = await self._stage(live, module_bytes, input_data, input_refs)
            if live.cancel_cause is not None:
                raise AgoraError("task_cancelled", live.cancel_cause)
            live.executor = executor
            async with executor_handle(executor, exec_request(live.spec, alloc.id, live.work, module_path)) as handle:
                live.handle = handle
                live.started_at = self.clock.now()
                if live.cancel_cause is not None:  # a cancel that came while the executor started
                    await executor.cancel(handle)
                assert live.tg is not None
                pump = live.tg.create_task(self._pump(executor, handle, live.ring))
                try:
                    await self._move(live, RUNNING, f"{live.spec.engine} task started")
                    live.result = await executor.wait(handle)
                    await asyncio.wait({pump}, timeout=self.settings.log_drain_s)
                finally:
                    pump.cancel()  # ended, or the last lines did not come in time: stop waiting for them
            if live.result.ok:
                await self._collect(live)
        except asyncio.CancelledError:  # only the body was cancelled (`AllocationRun.cancel`): it ends here
            live.error = live.interrupted()
        except AgoraError as exc:
            live.error = exc
        except Exception as exc:
            log.exception("allocation %s failed", alloc.id)
            live.error = AgoraError("internal", f"{type(exc).__name__}: {exc}")

    async def _collect(self, live: _Live) -> None:
        alloc, work = live.alloc, live.work
        # bounded before anything is hashed: the receipt must be able to list what is collected
        survey = await asyncio.to_thread(survey_outputs, work / "outputs", self.settings.max_output_files)
        check_outputs(survey, max_files=self.settings.max_output_files, disk=live.spec.resources.disk)
        await self.ledger.require_room(alloc.requester, survey.bytes, "the task's outputs")
        refs = await collect_outputs(work / "outputs", self.cas)
        await self.owners.add(alloc.requester, [r.sha256 for r in refs])
        for r in refs:
            await self.ledger.hold(alloc.requester, r.sha256, r.size, "output")
        collected = [OutputDigest(output_name(live.spec, r.path), r.path, r.sha256, r.size) for r in refs]
        # every output stays in this node's CAS (served by /agora/alloc/fetch); those the spec
        # publishes to the hub or S3 are put there too, and their URIs say so
        published = await publish_outputs(
            self.stores, live.spec, [(o.name, o.path, o.sha256) for o in collected], self.cas.path_of
        )
        live.uris = {r.path: r.uri for r in refs} | published
        live.outputs = collected

    async def _remove_work(self, work: Path) -> None:
        try:
            await asyncio.to_thread(remove_tree, work)
        except Exception:
            log.exception("could not remove %s", work)

    async def _end(
        self,
        live: _Live,
        result: ExecResult | None,
        error: AgoraError | None,
        outputs: list[OutputDigest],
        started_at: float,
        work: Path,
        uris: dict[str, str],
    ) -> None:
        """Give back what it held (its exit stack: work dir, then reservation), sign, record, forget it."""
        alloc = live.alloc
        try:
            try:
                await live.held.aclose()
            finally:
                await self._finish(live, result, error, outputs, started_at, uris)
        finally:  # recorded (or not recordable): the node holds nothing of it any more
            self._live.pop(alloc.id, None)
            self._keep_ring(alloc.id, live.ring)  # now a finished ring: the newest, older ones may go

    async def _finish(
        self,
        live: _Live,
        result: ExecResult | None,
        error: AgoraError | None,
        outputs: list[OutputDigest],
        started_at: float,
        uris: dict[str, str],
    ) -> None:
        alloc = live.alloc
        ended_at = self.clock.now()
        end = outcome(result, error)
        alloc.exit_code = end.exit_code
        alloc.reason = end.reason
        alloc.error = end.error.to_dict() if end.error is not None else None
        outputs = [dataclasses.replace(o, uri=uris[o.path]) if o.path in uris else o for o in outputs]
        alloc.outputs = [o.to_dict() for o in outputs]
        alloc.receipt = sign_usage(
            self.keypair,
            alloc,
            error_code=end.error.code if end.error is not None else None,
            started_at=started_at,
            ended_at=ended_at,
            stats=result.stats if result is not None else None,
            outputs=outputs,
        )
        live.ring.close()
        try:
            await self._move(live, end.state, end.cause)
        except Exception:
            log.exception("could not record the end of %s", alloc.id)


def live_dir(work_root: Path, alloc_id: str) -> Path:
    return work_root / alloc_id


_alloc_id = check_alloc_id
_wait = check_wait


def _make_dirs(work: Path, output_subdirs: list[Any]) -> None:
    work.mkdir(parents=True)
    outputs = work / "outputs"
    outputs.mkdir()
    for rel in output_subdirs:
        (outputs / rel).mkdir(parents=True, exist_ok=True)


__all__ = ["AllocationManager", "ComputeSettings", "live_dir"]
