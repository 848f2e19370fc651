"""`/agora/alloc/watch`: the one stream a requester follows an allocation by (state and log deltas).

A long-poll, resumable by sequence: the requester sends the last state it saw and the last log line it
saw (`after_seq`); the reply carries the current status and the log lines after the cursor, and comes
as soon as there is something new for it (a state change, a new line, the log closed), or when
`wait_s` (cut to the node's `max_wait_s`) runs out. Nothing new is never answered at once: the provider
waits on the allocation's change event and its log ring, and a wake-up that brings the caller nothing new
(a move notifies its watchers once persisted, possibly after a watch already saw its state through a log
line) waits on instead of answering (at most `MAX_WAKE_UPS` times, within `wait_s`). A reply that carries nothing new is
the requester's cue to slow down (the requester keeps a minimum interval between such replies).

A waiting long-poll holds one of the node's message handlers (the transport runs a bounded number for
every caller), so waits are bounded (`LongPolls`): at most `per_requester` at once for one requester and
`total` in all. Past the bound a long-poll (watch, status or logs) is answered at once with what is there,
which the requester takes as nothing new (it waits out its own `min_poll_s`): one requester opening
thousands of watches cannot take the handlers every other caller needs.

Kept out of `manager.py` as a mixin so the allocation lifecycle stays in one place; it needs of the
manager only the live allocations, their log rings, the owner check, the stored records and the bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterator
from typing import TYPE_CHECKING, Any

from agora.actor import CallContext, behavior
from agora.wire.alloc import WATCH, LogsPage, StatusReply, WatchArgs, WatchReply

if TYPE_CHECKING:
    from collections import OrderedDict

    from agora.compute.allocation import Allocation
    from agora.compute.logring import LogRing


DEFAULT_LONG_POLLS = 256  # waiting long-polls in all: a quarter of the NATS transport's 1024 handlers
DEFAULT_LONG_POLLS_PER_REQUESTER = 64  # max_allocations: one watch per allocation a requester may hold here
MAX_WAKE_UPS = 64  # wake-ups with nothing new one watch sleeps through (bounded by `wait_s` too)


class LongPolls:
    """How many long-polls wait at once, in all and per requester; `slot` says whether one more may."""

    def __init__(self, total: int = DEFAULT_LONG_POLLS, per_requester: int = DEFAULT_LONG_POLLS_PER_REQUESTER) -> None:
        if total < 1 or per_requester < 1:
            raise ValueError("long-poll bounds must be >= 1")
        self.total = total
        self.per_requester = per_requester
        self._by: dict[str, int] = {}
        self._count = 0

    @contextlib.contextmanager
    def slot(self, requester: str) -> Iterator[bool]:
        """True (and counted until the block ends) when `requester` may wait; False: answer at once."""
        held = self._by.get(requester, 0)
        if self._count >= self.total or held >= self.per_requester:
            yield False
            return
        self._by[requester] = held + 1
        self._count += 1
        try:
            yield True
        finally:
            self._count -= 1
            left = self._by[requester] - 1
            if left:
                self._by[requester] = left
            else:
                del self._by[requester]

    def waiting(self, requester: str) -> int:
        return self._by.get(requester, 0)

    def __len__(self) -> int:
        return self._count


class WatchBehavior:
    """Mixed into `AllocationManager` (which provides the attributes declared here)."""

    if TYPE_CHECKING:
        _live: dict[str, Any]
        _rings: OrderedDict[str, LogRing]
        settings: Any
        long_polls: LongPolls

        def _check_owner(self, alloc: Allocation, invoker: str) -> None: ...

        async def _load(self, alloc_id: str, invoker: str) -> Allocation: ...

    @behavior(WATCH, mutating=False)  # reads only: a per-call journal write would cost every long-poll a disk sync
    async def watch(self, ctx: CallContext) -> dict[str, Any]:
        """State and log lines after a cursor, as soon as either changes (long-poll with wait_s)."""
        args = WatchArgs.from_args(ctx.args, self.settings.max_wait_s)
        live = self._live.get(args.alloc_id)
        if live is not None:
            alloc: Allocation = live.alloc
            self._check_owner(alloc, ctx.invoker)
        else:
            alloc = await self._load(args.alloc_id, ctx.invoker)
        ring = self._rings.get(args.alloc_id)
        if live is not None and not _news(alloc, ring, args) and args.wait_s > 0:
            with self.long_polls.slot(ctx.invoker) as may_wait:
                loop = asyncio.get_running_loop()
                until = loop.time() + args.wait_s
                # a wake-up with nothing new for this caller waits on: a move notifies once persisted, after a
                # watch may already have seen its state (a log line woke it), and answering that late notify
                # would cost the requester its `min_poll_s` (the ~200 ms step, docs/performance.md)
                for _ in range(MAX_WAKE_UPS if may_wait else 0):
                    left = until - loop.time()
                    if left <= 0:
                        break
                    changed, more = live.changed.wait(), ring.wait(args.after_seq, left) if ring else None
                    await _first(changed, more, left)
                    if _news(alloc, ring, args):
                        break
        logs = LogsPage.gone(args.after_seq) if ring is None else ring.read(args.after_seq, args.limit)
        return WatchReply(StatusReply.of_record(alloc.to_wire()), logs).to_wire()


def _news(alloc: Allocation, ring: LogRing | None, args: WatchArgs) -> bool:
    """Whether the caller, who saw `args.known_state` and the lines up to `args.after_seq`, has something new."""
    return alloc.state != args.known_state or ring is None or ring.last_seq > args.after_seq or ring.closed


async def _first(a: Awaitable[Any], b: Awaitable[Any] | None, timeout: float) -> None:
    """Wait for whichever comes first (or the timeout); the other is cancelled and awaited."""
    tasks = [asyncio.ensure_future(x) for x in (a, b) if x is not None]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t


__all__ = ["DEFAULT_LONG_POLLS", "DEFAULT_LONG_POLLS_PER_REQUESTER", "LongPolls", "WatchBehavior"]
