"""The wasmtime side of the wasm executor: one engine, its epoch ticker, the compiled-module cache and
the per-store epoch-deadline callback.

Why an epoch callback instead of a fixed deadline: a fixed deadline (`Store.set_epoch_deadline(n)`)
can only stop a store at its timeout, while the engine's epoch is shared by every store, so bumping it
to cancel one task would disturb the others. The callback runs on the task's own thread each time its
deadline (one tick) is reached and decides for that store alone: trap (cancelled, timed out, over the
disk limit) or continue for one more tick, throttling the thread first when the task may use less than
a core. wasmtime-py does not wrap `wasmtime_store_epoch_deadline_callback` (a public wasmtime C API
function), so it is called through wasmtime's own ctypes bindings.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import os
import platform
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import wasmtime
from wasmtime import _ffi as ffi

from agora.errors import AgoraError

WASMTIME_VERSION = importlib.metadata.version("wasmtime")
MAX_MODULE_BYTES = 256 * 1024 * 1024

_DeadlineFn = ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.POINTER(ffi.wasmtime_context_t),
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ffi.wasmtime_update_deadline_kind_t),
)
_NO_FINALIZER = ctypes.cast(0, ctypes.CFUNCTYPE(None, ctypes.c_void_p))
_CONTINUE = 0  # WASMTIME_UPDATE_DEADLINE_CONTINUE


def make_engine(consume_fuel: bool) -> wasmtime.Engine:
    config = wasmtime.Config()
    config.epoch_interruption = True
    config.consume_fuel = consume_fuel
    return wasmtime.Engine(config)


def install_deadline_callback(store: wasmtime.Store, decide: Callable[[], str | None]) -> object:
    """Call `decide()` on every epoch tick of `store`; a string stops the store with a trap carrying
    that message. Returns the ctypes callback, which the caller must keep alive as long as the store."""

    def on_deadline(_ctx: object, _data: object, delta: ctypes._Pointer, kind: ctypes._Pointer) -> int:
        try:
            stop = decide()
        except BaseException as e:  # an exception must never unwind into wasmtime's C frames
            stop = f"agora: deadline callback failed: {e!r}"
        if stop is not None:
            err = ffi.wasmtime_error_new(stop.encode())
            return int(ctypes.cast(err, ctypes.c_void_p).value or 0)
        delta[0] = 1
        kind[0] = _CONTINUE
        return 0

    cb = _DeadlineFn(on_deadline)
    ffi.wasmtime_store_epoch_deadline_callback(store.ptr(), cb, None, _NO_FINALIZER)
    store.set_epoch_deadline(1)
    return cb


WASI_MODULES = ("wasi_snapshot_preview1",)


def wasi_command_problem(module: wasmtime.Module) -> str | None:
    """Why this module cannot run as a WASI preview1 command, or None. Checked once per module, so
    a task is refused at start instead of failing in its thread."""
    for imp in module.imports:
        if imp.module not in WASI_MODULES:
            return f"has an unknown import {imp.module}::{imp.name}: only {', '.join(WASI_MODULES)} is provided"
    for exp in module.exports:
        if exp.name == "_start":
            if isinstance(exp.type, wasmtime.FuncType):
                return None
            return "exports _start, but not as a function"
    return "has no _start export: it is not a WASI command"


class EpochTicker:
    """Bumps the engine's epoch every `tick_s` while tasks run. It lingers `linger_s` after the last
    task so back-to-back tasks do not each pay for a new thread, then exits: an idle executor holds
    no thread and wakes nothing."""

    def __init__(self, engine: wasmtime.Engine, tick_s: float, linger_s: float = 0.5) -> None:
        self._engine = engine
        self.tick_s = tick_s
        self.linger_s = linger_s
        self._lock = threading.Lock()
        self._users = 0
        self._flush = False
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    def acquire(self) -> None:
        with self._lock:
            self._users += 1
            self._flush = False
            if self._thread is None:
                self._wake.clear()
                self._thread = threading.Thread(target=self._run, name="agora-wasm-epoch", daemon=True)
                self._thread.start()

    def release(self) -> None:
        with self._lock:
            self._users -= 1

    def _run(self) -> None:
        idle_since: float | None = None
        while True:
            with self._lock:
                busy = self._users > 0
                if busy:
                    idle_since = None
                else:
                    now = time.monotonic()
                    idle_since = now if idle_since is None else idle_since
                    if self._flush or now - idle_since >= self.linger_s:
                        self._thread = None
                        return
            if busy:
                self._engine.increment_epoch()
            self._wake.wait(self.tick_s)

    def join_idle(self, timeout: float) -> None:
        """Make an idle ticker exit now and wait for it (tests' leftovers checks, shutdown)."""
        with self._lock:
            thread = self._thread if self._users == 0 else None
            if thread is not None:
                self._flush = True
                self._wake.set()
        if thread is not None:
            thread.join(timeout)

    @property
    def running(self) -> bool:
        with self._lock:
            return self._thread is not None


class ModuleCache:
    """Compiled modules by content: in memory (LRU) and on disk as wasmtime's serialized form.

    The disk key is sha256(module bytes) + wasmtime version + engine settings + machine, so an upgrade
    or another config never loads a stale artifact (wasmtime also refuses incompatible ones; then we
    recompile). Deserializing runs native code the cache holds, so the directory is created 0700 and
    must belong to the node alone. A file's digest is remembered by (inode, size, mtime) so a warm
    start does not re-hash the module."""

    def __init__(self, engine: wasmtime.Engine, cache_dir: Path, fingerprint: str, max_in_memory: int = 32) -> None:
        self._engine = engine
        self.dir = cache_dir / "modules"
        self._suffix = hashlib.sha256(f"{WASMTIME_VERSION}|{fingerprint}|{platform.machine()}".encode()).hexdigest()[
            :16
        ]
        self._max = max_in_memory
        self._modules: OrderedDict[str, wasmtime.Module] = OrderedDict()
        self._digests: dict[tuple[int, int, int, int], str] = {}
        self._lock = threading.Lock()
        self.compiled = 0  # counters, for tests and the bench
        self.loaded_from_disk = 0

    def ensure_dir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _stamp(self, path: Path) -> tuple[int, int, int, int]:
        try:
            st = path.stat()
        except OSError as e:
            raise AgoraError("module_invalid", f"module {path} cannot be read: {e.strerror}") from None
        if not path.is_file():
            raise AgoraError("module_invalid", f"module {path} is not a file")
        if st.st_size > MAX_MODULE_BYTES:
            raise AgoraError("module_invalid", f"module {path} is {st.st_size} bytes; the limit is {MAX_MODULE_BYTES}")
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def cached(self, path: Path) -> wasmtime.Module | None:
        """The module if this very file (same inode, size, mtime) is already loaded: a stat, no I/O
        beyond it, so the event loop may call it. Raises like `load` for a missing file."""
        stamp = self._stamp(path)
        with self._lock:
            digest = self._digests.get(stamp)
            if digest is not None and digest in self._modules:
                self._modules.move_to_end(digest)
                return self._modules[digest]
        return None

    def load(self, path: Path) -> wasmtime.Module:
        """A WASI command module, compiled or from the cache; AgoraError(module_invalid) otherwise."""
        hit = self.cached(path)
        if hit is not None:
            return hit
        stamp = self._stamp(path)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise AgoraError("module_invalid", f"module {path} cannot be read: {e.strerror}") from None
        if not data.startswith(b"\0asm"):  # wasmtime would also take WAT text; a task ships binaries
            raise AgoraError("module_invalid", f"module {path} is not a wasm binary (no \\0asm header)")
        digest = hashlib.sha256(data).hexdigest()
        module = self._load_digest(digest, data, path)
        problem = wasi_command_problem(module)
        if problem is not None:
            raise AgoraError("module_invalid", f"module {path} {problem}")
        with self._lock:
            self._digests[stamp] = digest
            self._modules[digest] = module
            self._modules.move_to_end(digest)
            while len(self._modules) > self._max:
                self._modules.popitem(last=False)
        return module

    def _load_digest(self, digest: str, data: bytes, path: Path) -> wasmtime.Module:
        with self._lock:
            if digest in self._modules:
                return self._modules[digest]
        artifact = self.dir / f"{digest}-{self._suffix}.cwasm"
        if artifact.exists():
            # read, not deserialize_file: that one mmaps the file, and anything rewriting the file in
            # place would then kill the whole node with SIGBUS
            try:
                module = wasmtime.Module.deserialize(self._engine, artifact.read_bytes())
                self.loaded_from_disk += 1
                return module
            except (OSError, wasmtime.WasmtimeError):
                artifact.unlink(missing_ok=True)  # damaged or incompatible: compile afresh
        try:
            module = wasmtime.Module(self._engine, data)
        except wasmtime.WasmtimeError as e:
            first = str(e).strip().splitlines()
            detail = " ".join(x.strip() for x in first if x.strip())[:500]
            raise AgoraError("module_invalid", f"module {path} does not compile: {detail}") from None
        self.compiled += 1
        self._store(artifact, module)
        return module

    def _store(self, artifact: Path, module: wasmtime.Module) -> None:
        """Atomically, so a concurrent reader never sees half a file; a full disk only costs speed."""
        try:
            self.ensure_dir()
            fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-", suffix=".cwasm")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(module.serialize())
                os.replace(tmp, artifact)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except (OSError, wasmtime.WasmtimeError):
            pass

    def clear_memory(self) -> None:
        with self._lock:
            self._modules.clear()
            self._digests.clear()


__all__ = [
    "MAX_MODULE_BYTES",
    "WASMTIME_VERSION",
    "EpochTicker",
    "ModuleCache",
    "install_deadline_callback",
    "make_engine",
    "wasi_command_problem",
]
