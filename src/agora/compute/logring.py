"""A bounded log of one allocation, read by cursor: the polling stream behind `/agora/alloc/logs`.

Every line gets a sequence number (1, 2, ...) when it arrives. A reader passes the last number it saw
(`after`) and gets what came since; when the ring has dropped lines the reader never saw (it holds
the last `capacity` lines, and only as many as fit in `max_bytes`; a line longer than `MAX_LINE`
characters is cut), the reply says how many, so a slow reader learns it missed some
instead of silently getting a hole. `wait` lets a reader long-poll: it returns as soon as a line
newer than its cursor exists or the log is closed, or when its timeout runs out.

Everything runs on the node's event loop (the executor's log iterator feeds it), so no lock.
"""

from __future__ import annotations

from agora.telemetry import SeqLog
from agora.wire.alloc import LogLine as LogEntry
from agora.wire.alloc import LogsPage as LogPage

DEFAULT_CAPACITY = 2000
DEFAULT_MAX_BYTES = 1024 * 1024  # per ring: 256 finished rings hold at most ~256 MiB, not lines x line size
MAX_LINE = 4096  # characters kept of one line; the rest is cut and marked
MAX_REPLY_BYTES = 512 * 1024  # keeps a logs reply well inside one message
ENTRY_OVERHEAD = 64  # what one entry costs beyond its text (seq, stream, ts), counted in both bounds
TRUNCATED = " [... line truncated]"

Item = tuple[str, str, float]


def _size(item: Item) -> int:
    return len(item[1]) + ENTRY_OVERHEAD


class LogRing:
    """One allocation's log: lines with their stream and time, read as pages of the protocol's
    `LogsPage` of `LogLine` (`agora.wire.alloc`; `LogPage`/`LogEntry` here are the same types)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if capacity < 1 or max_bytes < MAX_LINE + len(TRUNCATED) + ENTRY_OVERHEAD:
            raise ValueError("a log ring holds at least one line of the longest length")
        self._log: SeqLog[Item] = SeqLog(capacity, max_bytes=max_bytes, size=_size)

    @property
    def last_seq(self) -> int:
        return self._log.last_seq

    @property
    def closed(self) -> bool:
        return self._log.closed

    @property
    def bytes(self) -> int:
        """What the held lines cost (text + a fixed overhead each): at most `max_bytes`."""
        return self._log.bytes

    def append(self, stream: str, line: str, ts: float) -> int:
        if len(line) > MAX_LINE:
            line = line[:MAX_LINE] + TRUNCATED
        return self._log.append((stream, line, ts))

    def close(self) -> None:
        self._log.close()

    def read(self, after: int = 0, limit: int = 500) -> LogPage:
        page = self._log.read(after, limit, size=_size, max_bytes=MAX_REPLY_BYTES)
        lines = [LogEntry(seq, stream, line, ts) for seq, (stream, line, ts) in page.items]
        return LogPage(lines, page.next, page.dropped, page.done)

    async def wait(self, after: int, timeout: float) -> None:
        """Return once a line newer than `after` exists or the log is closed (or after `timeout`)."""
        await self._log.wait(after, timeout)


__all__ = ["DEFAULT_CAPACITY", "DEFAULT_MAX_BYTES", "MAX_LINE", "LogEntry", "LogPage", "LogRing"]
