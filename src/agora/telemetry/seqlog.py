"""A bounded, sequence-numbered log read by cursor, with long-poll: the one mechanism behind the
provider's per-allocation log ring and the requester's per-job log.

Every item gets a sequence number (1, 2, ...) when it arrives. A reader passes the last number it saw
(`after`) and gets what came since; when the ring has dropped items the reader never saw (it keeps the
last `capacity`), the page says how many, so a slow reader learns it missed some instead of silently
getting a hole. `wait` returns as soon as an item newer than the cursor exists or the log is closed, or
when its timeout runs out. Everything runs on one event loop, so there is no lock.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SeqPage(Generic[T]):
    items: list[tuple[int, T]]  # (seq, item), oldest first
    next: int  # the cursor to pass as `after` next time
    dropped: int  # items after the cursor that the ring no longer holds
    done: bool  # the log is closed and this page reaches its end


class SeqLog(Generic[T]):
    """`capacity` items at most and, when `size` is given, `max_bytes` of them at most (the oldest go first,
    and readers see them counted as dropped): a writer of long items cannot make a kept log large."""

    def __init__(self, capacity: int, *, max_bytes: int | None = None, size: Callable[[T], int] | None = None) -> None:
        if capacity < 1:
            raise ValueError("a log holds at least one item")
        if (max_bytes is None) != (size is None):
            raise ValueError("max_bytes and size go together")
        self._items: deque[tuple[int, T]] = deque(maxlen=capacity)
        self._sizes: deque[int] = deque()
        self._max_bytes = max_bytes
        self._size = size
        self._bytes = 0
        self._last = 0
        self._closed = False
        self._changed = asyncio.Event()

    @property
    def bytes(self) -> int:
        """What the held items cost by `size` (0 without a byte bound)."""
        return self._bytes

    @property
    def last_seq(self) -> int:
        return self._last

    @property
    def closed(self) -> bool:
        return self._closed

    def append(self, item: T) -> int:
        """Add an item and return its sequence number (a closed log ignores it)."""
        if self._closed:
            return self._last
        self._last += 1
        if self._size is not None:
            if len(self._items) == self._items.maxlen:  # the deque drops its oldest on this append
                self._bytes -= self._sizes.popleft()
            cost = self._size(item)
            self._sizes.append(cost)
            self._bytes += cost
        self._items.append((self._last, item))
        if self._max_bytes is not None:
            while self._bytes > self._max_bytes and len(self._items) > 1:
                self._items.popleft()
                self._bytes -= self._sizes.popleft()
        self._wake()
        return self._last

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def read(
        self, after: int = 0, limit: int = 500, *, size: Callable[[T], int] | None = None, max_bytes: int = 0
    ) -> SeqPage[T]:
        """Items after the cursor, at most `limit`, and (with `size`) at most `max_bytes` but never none."""
        after = max(0, min(after, self._last))
        first = self._items[0][0] if self._items else self._last + 1
        out: list[tuple[int, T]] = []
        total = 0
        cursor = max(after, first - 1)
        for seq, item in self._items:
            if seq <= after:
                continue
            if size is not None:
                total += size(item)
            if len(out) >= limit or (out and size is not None and total > max_bytes):
                break
            out.append((seq, item))
            cursor = seq
        return SeqPage(out, cursor, max(0, first - after - 1), self._closed and cursor >= self._last)

    async def wait(self, after: int, timeout: float) -> None:
        """Return once an item newer than `after` exists or the log is closed (or after `timeout`)."""
        if self._last > after or self._closed or timeout <= 0:
            return
        event = self._changed
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass


__all__ = ["SeqLog", "SeqPage"]
