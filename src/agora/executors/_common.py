"""Pieces every executor needs: bounded output capture, live log fan-out, the output-dir disk watcher,
work-dir checks and the mapping from end reasons to error codes.

They live here so that `wasm`, `process` and `docker` behave the same way where the conformance suite
looks: the same capture bound, the same log semantics (late subscribers get the retained history, then
live lines; an iterator that fell behind is told how many lines it missed instead of silently losing
them), and the same disk accounting.

Everything here is thread-safe: wasm produces output on a worker thread, process and docker on the
event loop or a reader thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Literal

from agora.errors import AgoraError
from agora.executors.interfaces import MAX_CAPTURE, EndReason, ExecRequest, LogLine

Stream = Literal["stdout", "stderr"]

#: longest log line handed to logs(); longer lines are split (a task printing one 1 GB line must not
#: make the node hold it in memory)
MAX_LINE = 16 * 1024
#: how many lines a LogFanout keeps for late subscribers and for iterators that fall behind
LOG_HISTORY = 10_000

ERROR_CODE_FOR_REASON: dict[EndReason, str] = {
    "timeout": "task_timeout",
    "oom": "task_oom",
    "disk_limit": "task_disk_limit",
    "cancelled": "task_cancelled",
    "trap": "module_trap",
    "error": "executor_failed",
}


def error_code_for(reason: EndReason, exit_code: int | None) -> str | None:
    """The catalog code of an ExecResult: None only for a clean exit 0."""
    if reason == "exited":
        return None if exit_code == 0 else "task_failed"
    return ERROR_CODE_FOR_REASON[reason]


def validate_work_dir(req: ExecRequest) -> None:
    """The caller prepares work_dir/inputs and work_dir/outputs (see ExecRequest); refuse early and
    with a stable code when it did not, instead of failing half-way inside a sandbox."""
    for path, what in ((req.work_dir, "work_dir"), (req.inputs_dir, "inputs dir"), (req.outputs_dir, "outputs dir")):
        try:
            st = path.lstat()
        except FileNotFoundError:
            raise AgoraError(
                "invalid_argument", f"{what} {path} does not exist", hint="create work_dir/inputs and outputs first"
            ) from None
        if not stat.S_ISDIR(st.st_mode):
            raise AgoraError("invalid_argument", f"{what} {path} is not a directory (symlinks are refused)")


class CaptureBuffer:
    """Keeps the last `limit` bytes of a stream (the ExecResult's stdout/stderr tail)."""

    def __init__(self, limit: int = MAX_CAPTURE) -> None:
        self._limit = limit
        self._buf = bytearray()
        self._lock = threading.Lock()
        self.total = 0  # bytes ever written

    def write(self, data: bytes) -> None:
        with self._lock:
            self.total += len(data)
            if len(data) >= self._limit:
                self._buf[:] = data[-self._limit :]
                return
            self._buf += data
            extra = len(self._buf) - self._limit
            if extra > 0:
                del self._buf[:extra]

    @property
    def truncated(self) -> bool:
        return self.total > self._limit

    def getvalue(self) -> bytes:
        with self._lock:
            return bytes(self._buf)


class LogFanout:
    """Many readers of one task's log, each as an async iterator.

    Producers call `publish` from any thread; `close` marks the end of the task, after which every
    iterator drains what it has not seen and stops. A subscriber that arrives late (even after the
    task ended) first gets the retained history (the last `history` lines). An iterator that falls
    more than `history` lines behind gets one synthetic stderr line saying how many it missed.
    """

    def __init__(self, history: int = LOG_HISTORY) -> None:
        self._lines: deque[LogLine] = deque(maxlen=history)
        self._first_seq = 0  # sequence number of self._lines[0]
        self._closed = False
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    @property
    def closed(self) -> bool:
        return self._closed

    def publish(self, line: LogLine) -> None:
        with self._lock:
            if self._closed:
                return
            if len(self._lines) == self._lines.maxlen:
                self._first_seq += 1
            self._lines.append(line)
            waiters = list(self._waiters)
        self._wake(waiters)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            waiters = list(self._waiters)
        self._wake(waiters)

    @staticmethod
    def _wake(waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]) -> None:
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop is closed: its iterator is gone
                pass

    def _read(self, seq: int) -> tuple[list[LogLine], int, int, bool]:
        """Lines from `seq` on, the next seq, how many were missed, and whether the log is closed."""
        with self._lock:
            missed = max(0, self._first_seq - seq)
            start = max(seq, self._first_seq)
            lines = list(self._lines)[start - self._first_seq :]
            return lines, start + len(lines), missed, self._closed

    async def subscribe(self) -> AsyncIterator[LogLine]:
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        waiter = (loop, event)
        with self._lock:
            self._waiters.add(waiter)
        seq = 0
        try:
            while True:
                event.clear()
                lines, seq, missed, closed = self._read(seq)
                if missed:
                    yield LogLine("stderr", f"[agora: {missed} log lines dropped, reader too slow]", time.time())
                for line in lines:
                    yield line
                if closed and not lines:
                    return
                if not lines:
                    await event.wait()
        finally:
            with self._lock:
                self._waiters.discard(waiter)


class StreamSink:
    """One output stream of a task: bytes in, a bounded tail for the result and whole lines out to
    the log fan-out. Partial lines wait for their newline until `close`."""

    def __init__(self, stream: Stream, fanout: LogFanout, capture_limit: int = MAX_CAPTURE) -> None:
        self.stream: Stream = stream
        self.capture = CaptureBuffer(capture_limit)
        self._fanout = fanout
        self._partial = bytearray()
        self._lock = threading.Lock()

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self.capture.write(data)
        with self._lock:
            self._partial += data
            out: list[bytes] = []
            while True:
                nl = self._partial.find(b"\n", 0, MAX_LINE + 1)
                if nl >= 0:
                    out.append(bytes(self._partial[:nl]))
                    del self._partial[: nl + 1]
                elif len(self._partial) > MAX_LINE:
                    out.append(bytes(self._partial[:MAX_LINE]))
                    del self._partial[:MAX_LINE]
                else:
                    break
        self._emit(out)

    def close(self) -> None:
        """Flush a last line without newline; the fan-out itself is closed by the executor once
        every stream of the task is done."""
        with self._lock:
            rest = bytes(self._partial)
            self._partial.clear()
        if rest:
            self._emit([rest])

    def _emit(self, raw_lines: list[bytes]) -> None:
        now = time.time()
        for raw in raw_lines:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            self._fanout.publish(LogLine(self.stream, line.decode("utf-8", errors="replace"), now))


def dir_usage(root: Path, max_entries: int = 1_000_000) -> int:
    """Bytes a directory tree holds: per file the larger of its apparent size and its allocated
    blocks (so sparse files count at their apparent size, which is what gets uploaded), hard links
    once, symlinks as links (never followed), every entry at least 512 bytes so that millions of
    empty files also count. Stops counting after `max_entries` entries and returns what it has."""
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [str(root)]
    entries = 0
    while stack and entries < max_entries:
        path = stack.pop()
        try:
            it = os.scandir(path)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        with it:
            for entry in it:
                entries += 1
                try:
                    st = entry.stat(follow_symlinks=False)
                except (FileNotFoundError, PermissionError):
                    continue
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1:
                    if key in seen:
                        continue
                    seen.add(key)
                total += max(st.st_size, st.st_blocks * 512, 512)
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
    return total


class DiskWatcher:
    """Polls an output dir in a thread and calls `on_exceed` once when it holds more than `limit`
    bytes. Polling cannot stop a fast writer at exactly the limit, so executors also call `check()`
    after the task ended: the final word on disk_limit is that check, the watcher only bounds how far
    past the limit a running task gets. The poll interval adapts to the cost of a scan (twice the
    scan time, within [min_interval, max_interval]) so a huge tree does not eat a core."""

    def __init__(
        self,
        root: Path,
        limit: int,
        on_exceed: Callable[[int], None],
        *,
        min_interval: float = 0.05,
        max_interval: float = 1.0,
    ) -> None:
        self.root = root
        self.limit = limit
        self._on_exceed = on_exceed
        self._min = min_interval
        self._max = max_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.exceeded = False
        self.last_usage = 0
        self.peak_usage = 0

    def start(self) -> DiskWatcher:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=f"agora-disk-watch:{self.root}", daemon=True)
            self._thread.start()
        return self

    @property
    def started(self) -> bool:
        return self._thread is not None

    def check(self) -> bool:
        """Scan now; True (and `on_exceed` fired, once) when over the limit."""
        usage = dir_usage(self.root)
        self.last_usage = usage
        self.peak_usage = max(self.peak_usage, usage)
        if usage > self.limit and not self.exceeded:
            self.exceeded = True
            self._on_exceed(usage)
        return self.exceeded

    def _loop(self) -> None:
        interval = self._min
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                if self.check():
                    return
            except Exception:  # a vanished dir at teardown must not kill the thread noisily
                return
            interval = min(self._max, max(self._min, 2 * (time.monotonic() - began)))
            self._stop.wait(interval)

    def stop(self) -> None:
        """Idempotent; returns once the thread has ended."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self._max + 5.0)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def check_argv_env(req: ExecRequest) -> None:
    """Reject NUL bytes in argv and malformed environment names before anything is started."""
    for part in [*req.command, *req.args]:
        if "\0" in part:
            raise AgoraError("invalid_argument", "command and args may not contain NUL bytes")
    for key, value in req.env.items():
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise AgoraError("invalid_argument", f"invalid environment variable name or value: {key!r}")


def safe_name(task_id: str) -> str:
    """A task id made safe for cgroup, container and directory names."""
    cleaned = "".join(c if c.isalnum() or c in "_.-" else "_" for c in task_id)[:64].lstrip("._-")
    return cleaned or "task"


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """Never follows links: a task can plant a symlink to /etc/shadow in outputs."""
    os.lchown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            with contextlib.suppress(FileNotFoundError):
                os.lchown(os.path.join(dirpath, name), uid, gid)


__all__ = [
    "ERROR_CODE_FOR_REASON",
    "LOG_HISTORY",
    "MAX_LINE",
    "CaptureBuffer",
    "DiskWatcher",
    "LogFanout",
    "Stream",
    "StreamSink",
    "check_argv_env",
    "chown_tree",
    "dir_usage",
    "error_code_for",
    "safe_name",
    "validate_work_dir",
]
