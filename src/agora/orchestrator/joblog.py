"""The requester's view of a job's logs: every unit's lines, in arrival order, read by cursor.

The orchestrator copies each allocation's lines here as it follows them (tagged with the unit and the
attempt), and adds a line for every state change, so `agora job logs ID --follow` shows one story.
Bounded like the provider's ring: a reader that fell behind is told how many lines it missed.
Kept in memory only (the provider holds the authoritative copy while it remembers the allocation).
"""

from __future__ import annotations

from typing import Any

from agora.telemetry import SeqLog

DEFAULT_CAPACITY = 5000


class JobLog:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._log: SeqLog[dict[str, Any]] = SeqLog(capacity)

    @property
    def last_seq(self) -> int:
        return self._log.last_seq

    @property
    def closed(self) -> bool:
        return self._log.closed

    def add(self, unit: str, stream: str, line: str, ts: float, attempt: int = 0) -> None:
        self._log.append({"task": unit, "attempt": attempt, "stream": stream, "line": line, "ts": ts})

    def close(self) -> None:
        self._log.close()

    def read(self, after: int = 0, limit: int = 1000) -> dict[str, Any]:
        page = self._log.read(after, limit)
        return {
            "lines": [{"seq": seq, **entry} for seq, entry in page.items],
            "next": page.next,
            "dropped": page.dropped,
            "done": page.done,
        }

    async def wait(self, after: int, timeout: float) -> None:
        await self._log.wait(after, timeout)


__all__ = ["JobLog"]
