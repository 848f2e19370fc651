"""The requester's view of a job's logs: every unit's lines, in arrival order, read by cursor.

The orchestrator copies each allocation's lines here as it follows them (tagged with the unit and the
attempt), and adds a line for every state change, so `agora job logs ID --follow` shows one story.
Bounded like the provider's ring: a reader that fell behind is told how many lines it missed.
Kept in memory only (the provider holds the authoritative copy while it remembers the allocation).
A provider chooses what it sends, so each line is cut to `MAX_LINE_BYTES` and the log to `max_bytes`
in all (the oldest lines go first, as when the line count is reached).
"""

from __future__ import annotations

from typing import Any

from agora.telemetry import SeqLog

DEFAULT_CAPACITY = 5000
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
MAX_LINE_BYTES = 4096
_ENTRY_OVERHEAD = 64  # the fields around the text, roughly


def clip(line: str, limit: int = MAX_LINE_BYTES) -> str:
    """At most `limit` bytes of UTF-8, marked when cut."""
    raw = line.encode("utf-8", "replace")
    if len(raw) <= limit:
        return line
    return raw[: limit - 16].decode("utf-8", "ignore") + f"…[+{len(raw) - limit + 16}B]"


def _entry_size(entry: dict[str, Any]) -> int:
    return _ENTRY_OVERHEAD + sum(len(str(entry[k]).encode()) for k in ("task", "stream", "line"))


class JobLog:
    def __init__(self, capacity: int = DEFAULT_CAPACITY, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._log: SeqLog[dict[str, Any]] = SeqLog(capacity, max_bytes=max_bytes, size=_entry_size)

    @property
    def last_seq(self) -> int:
        return self._log.last_seq

    @property
    def closed(self) -> bool:
        return self._log.closed

    def add(self, unit: str, stream: str, line: str, ts: float, attempt: int = 0) -> None:
        if self._log.closed:
            return
        unit, stream, line = clip(unit, 256), clip(stream, 64), clip(line)
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
