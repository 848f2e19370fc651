"""The requester's view of a job's logs: every unit's lines, in arrival order, read by cursor.

The orchestrator copies each allocation's lines here as it follows them (tagged with the unit and the
attempt), and adds a line for every state change, so `agora job logs ID --follow` shows one story.
Bounded like the provider's ring: a reader that fell behind is told how many lines it missed.
Kept in memory only (the provider holds the authoritative copy while it remembers the allocation).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

DEFAULT_CAPACITY = 5000


class JobLog:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._lines: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._last = 0
        self._closed = False
        self._changed = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self._closed

    def add(self, unit: str, stream: str, line: str, ts: float, attempt: int = 0) -> None:
        if self._closed:
            return
        self._last += 1
        self._lines.append(
            {"seq": self._last, "task": unit, "attempt": attempt, "stream": stream, "line": line, "ts": ts}
        )
        self._wake()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def read(self, after: int = 0, limit: int = 1000) -> dict[str, Any]:
        after = max(0, min(after, self._last))
        first = self._lines[0]["seq"] if self._lines else self._last + 1
        out = [e for e in self._lines if e["seq"] > after][:limit]
        nxt = out[-1]["seq"] if out else max(after, first - 1)
        return {
            "lines": out,
            "next": nxt,
            "dropped": max(0, first - after - 1),
            "done": self._closed and nxt >= self._last,
        }

    async def wait(self, after: int, timeout: float) -> None:
        if self._last > after or self._closed or timeout <= 0:
            return
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            pass


__all__ = ["JobLog"]
