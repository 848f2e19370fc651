"""The wasm executor: WASI preview1 command modules on wasmtime, each task on its own worker thread.

What a task sees: argv = [module file name, *command, *args], its env and nothing of the node's,
stdin from the request, `/inputs` (read-only) and `/outputs` (writable) preopened, no sockets (WASI
preview1 has none, so `network=True` is refused rather than silently ignored), one core at most.

How limits hold: memory by the store's limiter (linear memory cannot grow past `memory_bytes`); time,
cancel and disk by the per-store epoch callback (see _wasmrt), which traps the store within one tick
once a stop was requested; disk by a DiskWatcher on outputs plus a final check; CPU share by
throttling the thread inside the same callback; optional fuel for a deterministic CPU budget.

A denied memory.grow is invisible to the host (wasmtime-py exposes no trap-on-grow-failure), and
malloc then returns NULL, so "oom" is inferred: the task ended badly (trap or non-zero exit) while its
linear memory was within OOM_SLACK of the limit (or its initial memory alone was over it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import wasmtime

from agora.errors import AgoraError
from agora.executors._common import DiskWatcher, LogFanout, StreamSink, error_code_for, validate_work_dir
from agora.executors._wasmrt import WASMTIME_VERSION, EpochTicker, ModuleCache, install_deadline_callback, make_engine
from agora.executors.interfaces import (
    Availability,
    EndReason,
    ExecHandle,
    ExecRequest,
    ExecResult,
    ExecStats,
    Executor,
    LogLine,
)

MiB = 1024 * 1024
#: how close to the memory limit a failed task must be for its failure to count as "oom"
OOM_SLACK_FRACTION = 8
OOM_SLACK_MIN = 2 * MiB
#: how long wait() gives a module stuck in a host call (a long WASI sleep, which no epoch can
#: interrupt) after its deadline or a cancel, before reporting the end anyway and abandoning the thread
HOST_CALL_GRACE_S = 2.0
#: stdin up to this size is spooled on the event loop; more goes through a thread
STDIN_INLINE_MAX = 64 * 1024


class _WasmTask(ExecHandle):
    def __init__(self, request: ExecRequest, module_path: Path) -> None:
        super().__init__(request)
        self.module_path = module_path
        self.fanout = LogFanout()
        self.stdout = StreamSink("stdout", self.fanout)
        self.stderr = StreamSink("stderr", self.fanout)
        self.started = time.monotonic()
        self.deadline = self.started + request.limits.timeout_s
        self.ended: float | None = None
        self.cpu_seconds = 0.0
        self.peak_memory = 0
        self._lock = threading.Lock()
        self.stop_reason: EndReason | None = None
        self.stop_message = ""
        self.stop_requested_at: float | None = None
        self.done: concurrent.futures.Future[ExecResult] = concurrent.futures.Future()
        self.done.set_running_or_notify_cancel()  # so no awaiting caller's cancellation can cancel it
        self.thread: threading.Thread | None = None
        self.watcher: DiskWatcher | None = None
        self.cleaned = False

    def request_stop(self, reason: EndReason, message: str) -> None:
        with self._lock:
            if self.stop_reason is None:
                self.stop_reason = reason
                self.stop_message = message
                self.stop_requested_at = time.monotonic()

    def stop_state(self) -> tuple[EndReason | None, str]:
        with self._lock:
            return self.stop_reason, self.stop_message

    def force_at(self, grace_s: float) -> float:
        """When wait() stops waiting for a thread stuck in a host call."""
        with self._lock:
            at = self.deadline if self.stop_requested_at is None else min(self.deadline, self.stop_requested_at)
        return at + grace_s

    def stats_now(self) -> ExecStats:
        end = self.ended if self.ended is not None else time.monotonic()
        return ExecStats(
            cpu_seconds=self.cpu_seconds, peak_memory_bytes=self.peak_memory, wall_seconds=end - self.started
        )

    def finish(self, result: ExecResult) -> None:
        """First result wins (the worker's, or the one wait() forces for a stuck thread)."""
        with self._lock:
            if self.done.done():
                return
            if self.ended is None:
                self.ended = time.monotonic()
            self.stdout.close()
            self.stderr.close()
            self.fanout.close()
            self.done.set_result(result)

    def result_for(
        self, reason: EndReason, exit_code: int | None = None, message: str = "", stats: ExecStats | None = None
    ) -> ExecResult:
        return ExecResult(
            task_id=self.request.task_id,
            exit_code=exit_code,
            reason=reason,
            stats=stats if stats is not None else self.stats_now(),
            stdout=self.stdout.capture.getvalue(),
            stderr=self.stderr.capture.getvalue(),
            error_code=error_code_for(reason, exit_code),
            message=message,
        )


class WasmExecutor(Executor):
    engine = "wasm"

    def __init__(
        self,
        cache_dir: Path,
        *,
        tick_s: float = 0.01,
        fuel: int | None = None,
        host_call_grace_s: float = HOST_CALL_GRACE_S,
    ) -> None:
        """`cache_dir` holds compiled modules (modules/) and stdin spool files (tmp/, unlinked as soon
        as WASI opened them). `fuel`, when set, gives every task that many wasmtime fuel units on top
        of its wall-clock timeout (makes execution a little slower; running out ends as a timeout)."""
        self.cache_dir = cache_dir
        self.fuel = fuel
        self.host_call_grace_s = host_call_grace_s
        self._engine = make_engine(consume_fuel=fuel is not None)
        self._linker = wasmtime.Linker(self._engine)
        self._linker.define_wasi()
        self._linker_lock = threading.Lock()
        self._cache = ModuleCache(self._engine, cache_dir, fingerprint=f"epoch,fuel={fuel is not None}")
        self._ticker = EpochTicker(self._engine, tick_s)
        self._spool = cache_dir / "tmp"
        self._tasks: set[_WasmTask] = set()

    @property
    def module_cache(self) -> ModuleCache:
        return self._cache

    # -- Executor -------------------------------------------------------------------------------

    def probe(self) -> Availability:
        details = {"wasmtime": WASMTIME_VERSION, "wasi": "preview1", "network": "none (WASI preview1 has no sockets)"}
        probe_dir = self.cache_dir
        while not probe_dir.exists() and probe_dir != probe_dir.parent:
            probe_dir = probe_dir.parent
        if not os.access(probe_dir, os.W_OK | os.X_OK):
            return Availability("wasm", False, f"module cache dir {self.cache_dir} is not writable", details)
        return Availability("wasm", True, "", details)

    async def start(self, req: ExecRequest) -> ExecHandle:
        if req.engine != "wasm":
            raise AgoraError("invalid_argument", f"the wasm executor cannot run a {req.engine!r} task")
        if req.network:
            raise AgoraError(
                "invalid_argument",
                "wasm tasks cannot have network access: WASI preview1 has no sockets",
                hint="run the task with engine process or docker, or drop network: true",
            )
        if not req.module:
            raise AgoraError("invalid_argument", "a wasm task needs `module` (the path of the .wasm file)")
        validate_work_dir(req)
        module_path = Path(req.module)
        if not module_path.is_absolute():
            module_path = req.work_dir / module_path
        module = self._cache.cached(module_path)  # a stat: fine on the loop
        if module is None:
            module = await asyncio.to_thread(self._cache.load, module_path)
        task = _WasmTask(req, module_path)
        try:
            if req.stdin and len(req.stdin) > STDIN_INLINE_MAX:
                wasi = await asyncio.to_thread(self._wasi_config, task)
            else:
                wasi = self._wasi_config(task)
        except (OSError, wasmtime.WasmtimeError) as e:  # e.g. a work dir removed meanwhile, a full disk
            raise AgoraError("executor_failed", f"cannot set up WASI for task {req.task_id}: {e}") from None
        # the task is on its way once its thread runs: start does not wait for instantiation (what
        # could fail there was checked when the module was loaded), which saves a thread round trip
        task.thread = threading.Thread(
            target=self._work, args=(task, module, wasi), name=f"agora-wasm:{req.task_id}", daemon=True
        )
        self._tasks.add(task)
        task.thread.start()
        return task

    async def wait(self, handle: ExecHandle) -> ExecResult:
        task = self._task(handle)
        fut = asyncio.wrap_future(task.done)
        for _ in range(1_000_000):  # bounded: each round waits >= 1 s or ends the loop
            if task.done.done():
                break
            remaining = task.force_at(self.host_call_grace_s) - time.monotonic()
            if remaining <= 0:
                self._abandon(task)
                break
            await asyncio.wait({fut}, timeout=min(remaining, 1.0))
        return task.done.result()

    async def cancel(self, handle: ExecHandle) -> None:
        task = self._task(handle)
        if not task.done.done():
            task.request_stop("cancelled", "cancelled by request")

    def logs(self, handle: ExecHandle) -> AsyncIterator[LogLine]:
        return self._task(handle).fanout.subscribe()

    async def stats(self, handle: ExecHandle) -> ExecStats:
        task = self._task(handle)
        if task.done.done():
            return task.done.result().stats
        return task.stats_now()

    async def cleanup(self, handle: ExecHandle) -> None:
        task = self._task(handle)
        if task.cleaned:
            return
        if not task.done.done():
            task.request_stop("cancelled", "cleaned up while running")
            await self.wait(task)
        thread = task.thread
        if thread is not None:
            thread.join(timeout=0)  # the worker finishes its task as its very last step
            if thread.is_alive():
                await asyncio.to_thread(thread.join, self.host_call_grace_s)
        if not (thread is not None and thread.is_alive()):
            task.cleaned = True
            self._tasks.discard(task)

    # -- introspection for tests and the node ---------------------------------------------------

    def leftovers(self) -> list[str]:
        """What finished-and-cleaned tasks left behind; [] when clean. May block up to a second
        for an idle epoch ticker to notice it has nothing to do."""
        if not self._tasks:
            self._ticker.join_idle(1.0)
        out = [f"task {t.request.task_id} not cleaned up" for t in self._tasks]
        out += [
            f"thread {th.name} alive"
            for th in threading.enumerate()
            if th.name.startswith(("agora-wasm:", "agora-disk-watch:")) and th.is_alive()
        ]
        if self._ticker.running and not self._tasks:
            out.append("epoch ticker running with no task")
        if self._spool.exists():
            out += [f"spool file {p}" for p in self._spool.iterdir()]
        return out

    # -- internals ------------------------------------------------------------------------------

    def _task(self, handle: ExecHandle) -> _WasmTask:
        if not isinstance(handle, _WasmTask):
            raise AgoraError("invalid_argument", "not a handle of the wasm executor")
        return handle

    def _abandon(self, task: _WasmTask) -> None:
        reason, message = task.stop_state()
        if reason is None:  # the deadline passed while the thread sat in a host call
            reason, message = "timeout", f"ran past its timeout of {task.request.limits.timeout_s:g}s"
        grace = self.host_call_grace_s
        note = f"; the module stayed in a host call {grace:g}s longer, its thread is abandoned"
        task.finish(task.result_for(reason, None, message + note))

    def _wasi_config(self, task: _WasmTask) -> wasmtime.WasiConfig:
        req = task.request
        wasi = wasmtime.WasiConfig()
        wasi.argv = [task.module_path.name, *req.command, *req.args]
        wasi.env = list(req.env.items())
        wasi.stdout_custom = task.stdout.feed
        wasi.stderr_custom = task.stderr.feed
        wasi.preopen_dir(str(req.inputs_dir), "/inputs", False)
        wasi.preopen_dir(str(req.outputs_dir), "/outputs", True)
        if req.stdin:
            self._spool.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, spool = tempfile.mkstemp(dir=self._spool, prefix="stdin-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(req.stdin)
                wasi.stdin_file = spool  # WASI opens it now; the name is not needed afterwards
            finally:
                os.unlink(spool)
        return wasi

    def _work(self, task: _WasmTask, module: wasmtime.Module, wasi: wasmtime.WasiConfig) -> None:
        cpu0 = time.thread_time()
        limits = task.request.limits
        # started by the first epoch tick: a task shorter than one tick never pays for the thread,
        # and the final check after the run covers it
        watcher = task.watcher = DiskWatcher(
            task.request.outputs_dir,
            limits.disk_bytes,
            lambda used: task.request_stop("disk_limit", f"outputs hold {used} bytes, over {limits.disk_bytes}"),
        )
        self._ticker.acquire()
        try:
            result = self._instantiate_and_run(task, module, wasi, cpu0)
        except BaseException as e:  # a bug here must still end the task, never hang wait()
            result = task.result_for("error", None, f"wasm executor failed: {e!r}")
        finally:
            watcher.stop()
            self._ticker.release()
        task.finish(result)  # last, so that cleanup() finds this thread (all but) gone

    def _instantiate_and_run(
        self, task: _WasmTask, module: wasmtime.Module, wasi: wasmtime.WasiConfig, cpu0: float
    ) -> ExecResult:
        """Everything that touches the store, so that the store and its WASI output callbacks are
        dropped on this thread when it returns."""
        store = wasmtime.Store(self._engine)
        store.set_wasi(wasi)
        store.set_limits(memory_size=task.request.limits.memory_bytes)
        if self.fuel is not None:
            store.set_fuel(self.fuel)
        memory: wasmtime.Memory | None = None
        keep_alive = install_deadline_callback(store, lambda: self._on_tick(task, store, memory, cpu0))
        try:
            with self._linker_lock:
                instance = self._linker.instantiate(store, module)
        except wasmtime.WasmtimeError as e:
            text = str(e).strip()
            if "exceeds memory limits" in text:
                return task.result_for("oom", None, f"the module's initial memory is over the limit: {text}")
            return task.result_for("error", None, f"module {task.module_path} cannot be instantiated: {text}")
        except wasmtime.Trap as e:
            return task.result_for("trap", None, f"the module trapped while instantiating: {_trap_message(e)}")
        exports = instance.exports(store)
        start_fn = exports["_start"]  # checked when the module was loaded
        assert isinstance(start_fn, wasmtime.Func)
        mem = exports.get("memory")
        memory = mem if isinstance(mem, wasmtime.Memory) else None
        if memory is not None:
            task.peak_memory = memory.data_len(store)
        result = self._run(task, store, start_fn, memory, cpu0)
        del keep_alive
        return result

    def _on_tick(
        self, task: _WasmTask, store: wasmtime.Store, memory: wasmtime.Memory | None, cpu0: float
    ) -> str | None:
        """Runs on the task's thread once per tick while wasm code runs."""
        now = time.monotonic()
        cpu = time.thread_time() - cpu0
        task.cpu_seconds = cpu
        if task.watcher is not None and not task.watcher.started:
            task.watcher.start()
        if memory is not None:
            task.peak_memory = max(task.peak_memory, memory.data_len(store))
        if now >= task.deadline:
            task.request_stop("timeout", f"ran past its timeout of {task.request.limits.timeout_s:g}s")
        reason, message = task.stop_state()
        if reason is not None:
            return f"agora: {reason}: {message}"
        share = task.request.limits.cpu_millis / 1000.0
        if 0 < share < 1:
            excess = cpu - (now - task.started) * share
            if excess > 0:
                time.sleep(min(excess / share, 0.1))
        return None

    def _run(
        self,
        task: _WasmTask,
        store: wasmtime.Store,
        start_fn: wasmtime.Func,
        memory: wasmtime.Memory | None,
        cpu0: float,
    ) -> ExecResult:
        exit_code: int | None = None
        reason: EndReason = "exited"
        message = ""
        try:
            start_fn(store)
            exit_code = 0
        except wasmtime.ExitTrap as e:
            exit_code = e.code
        except (wasmtime.Trap, wasmtime.WasmtimeError) as e:
            stop, stop_message = task.stop_state()
            code = e.trap_code if isinstance(e, wasmtime.Trap) else None
            if stop is not None:
                reason, message = stop, stop_message
            elif code == wasmtime.TrapCode.OUT_OF_FUEL:
                reason, message = "timeout", f"used up its fuel ({self.fuel} units)"
            else:
                reason, message = "trap", _trap_message(e)
        task.ended = time.monotonic()
        task.cpu_seconds = time.thread_time() - cpu0
        if memory is not None:
            task.peak_memory = max(task.peak_memory, memory.data_len(store))
        limit = task.request.limits.memory_bytes
        failed = reason == "trap" or (reason == "exited" and exit_code != 0)
        if failed and limit - task.peak_memory < max(OOM_SLACK_MIN, limit // OOM_SLACK_FRACTION):
            detail = message or f"exit code {exit_code}"
            reason, message = "oom", f"linear memory reached {task.peak_memory} of {limit} bytes ({detail})"
            exit_code = None
        if task.watcher is not None:
            task.watcher.stop()
            if reason not in ("timeout", "cancelled", "disk_limit") and task.watcher.check():
                stop, stop_message = task.stop_state()
                reason, message = "disk_limit", stop_message or "outputs over the disk limit"
                exit_code = None
        if reason != "exited":
            exit_code = None
        return task.result_for(reason, exit_code, message)


def _trap_message(e: Exception) -> str:
    """wasmtime's text leads with a backtrace; the cause (the part a person reads) comes last."""
    text = str(e).strip()
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    cause = lines[-1] if lines else "trap"
    if isinstance(e, wasmtime.Trap) and e.trap_code is not None:
        cause = f"{cause} ({e.trap_code.name.lower()})"
    return cause[:2000]


__all__ = ["HOST_CALL_GRACE_S", "WasmExecutor"]
