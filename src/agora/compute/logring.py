"""A bounded log of one allocation, read by cursor: the polling stream behind `/agora/alloc/logs`.

Every line gets a sequence number (1, 2, ...) when it arrives. A reader passes the last number it saw
(`after`) and gets what came since; when the ring has dropped lines the reader never saw (it holds
the last `capacity` lines only), the reply says how many, so a slow reader learns it missed some
instead of silently getting a hole. `wait` lets a reader long-poll: it returns as soon as a line
newer than its cursor exists or the log is closed, or when its timeout runs out.

Everything runs on the node's event loop (the executor's log iterator feeds it), so no lock.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any

DEFAULT_CAPACITY = 2000
MAX_REPLY_BYTES = 512 * 1024  # keeps a logs reply well inside one message


@dataclass(frozen=True, slots=True)
class LogEntry:
    seq: int
    stream: str
    line: str
    ts: float

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "stream": self.stream, "line": self.line, "ts": self.ts}


@dataclass(frozen=True, slots=True)
class LogPage:
    lines: list[LogEntry]
    next: int  # the cursor to pass as `after` next time
    dropped: int  # lines after the cursor that the ring no longer holds
    done: bool  # the log is closed and this page reaches its end

    def to_dict(self) -> dict[str, Any]:
        return {
            "lines": [e.to_dict() for e in self.lines],
            "next": self.next,
            "dropped": self.dropped,
            "done": self.done,
        }


class LogRing:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("a log ring holds at least one line")
        self._lines: deque[LogEntry] = deque(maxlen=capacity)
        self._last = 0
        self._closed = False
        self._changed = asyncio.Event()

    @property
    def last_seq(self) -> int:
        return self._last

    @property
    def closed(self) -> bool:
        return self._closed

    def append(self, stream: str, line: str, ts: float) -> int:
        if self._closed:
            return self._last
        self._last += 1
        self._lines.append(LogEntry(self._last, stream, line, ts))
        self._wake()
        return self._last

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def read(self, after: int = 0, limit: int = 500) -> LogPage:
        after = max(0, min(after, self._last))
        first = self._lines[0].seq if self._lines else self._last + 1
        dropped = max(0, first - after - 1)
        out: list[LogEntry] = []
        size = 0
        cursor = max(after, first - 1)
        for entry in self._lines:
            if entry.seq <= after:
                continue
            size += len(entry.line) + 64
            if len(out) >= limit or (out and size > MAX_REPLY_BYTES):
                break
            out.append(entry)
            cursor = entry.seq
        return LogPage(out, cursor, dropped, self._closed and cursor >= self._last)

    async def wait(self, after: int, timeout: float) -> None:
        """Return once a line newer than `after` exists or the log is closed (or after `timeout`)."""
        if self._last > after or self._closed or timeout <= 0:
            return
        event = self._changed
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass


__all__ = ["DEFAULT_CAPACITY", "LogEntry", "LogPage", "LogRing"]
