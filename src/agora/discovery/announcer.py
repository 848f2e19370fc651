"""Discovery over the hub: announce join / heartbeat / leave on a topic and keep the peer table.

Announcements are signed envelopes (agora.wire.Announcement) published on `agora.announce`; a node
verifies each one before it touches the table, so a forged or tampered announcement is dropped and
counted. When a node joins it also asks the others to re-announce (`agora.announce.hello`), so a fresh
node sees the network at once instead of after one heartbeat interval.

A change of the table and its event are one step: the change's event is handed to `on_change` (and
awaited) before the table shows the change, one announcement or sweep at a time. What strangers can
cause is bounded: hellos are answered by at most one re-announcement per `reply_gap` (a burst is
coalesced into one), the table holds at most `max_peers` strangers, and events about strangers spend an
`EventBudget` (the ones it refuses are counted and reported as one `peer.events_suppressed` per sweep).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from agora import __version__
from agora.discovery.limits import EventBudget
from agora.discovery.peers import Change, PeerTable, Update
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.transport import Subscription, Transport
from agora.wire import Announcement

log = logging.getLogger("agora.discovery")

TOPIC = "agora.announce"
HELLO_TOPIC = "agora.announce.hello"
DEFAULT_REPLY_GAP = 1.0  # seconds between two re-announcements that answer hellos

ChangeSink = Callable[[Change], Awaitable[None] | None]


class Discovery:
    def __init__(
        self,
        keypair: Keypair,
        transport: Transport,
        table: PeerTable,
        *,
        hubs: tuple[str, ...] = (),
        capabilities: Callable[[], dict[str, Any]] = dict,
        interval: float = 5.0,
        on_change: ChangeSink | None = None,
        on_reject: Callable[[str], None] | None = None,
        on_alive: Callable[[int], None] | None = None,
        reply_gap: float = DEFAULT_REPLY_GAP,
        event_budget: EventBudget | None = None,
    ) -> None:
        self.keypair = keypair
        self.transport = transport
        self.table = table
        self.hubs = hubs
        self.capabilities = capabilities
        self.interval = interval
        self.on_change = on_change
        self.on_reject = on_reject
        self.on_alive = on_alive
        self.reply_gap = reply_gap
        self.event_budget = event_budget or EventBudget(clock=table.clock)
        self.suppressed = 0  # events about strangers the budget refused since the last report
        self._seq = 0
        self._subs: list[Subscription] = []
        self._task: asyncio.Task[None] | None = None
        self._reply: asyncio.Task[None] | None = None
        self._last_reply = float("-inf")
        self._lock = asyncio.Lock()  # one announcement or sweep at a time: assess, record, apply

    def _announcement(self, kind: str) -> bytes:
        self._seq += 1
        ann = Announcement(
            did=self.keypair.did,
            kind=kind,
            version=__version__,
            hubs=self.hubs,
            capabilities=self.capabilities(),
            seq=self._seq,
            ts=int(self.table.clock.now()),
            interval_ms=max(1, round(self.interval * 1000)),
        )
        return ann.seal(self.keypair)

    async def announce(self, kind: str = "heartbeat") -> None:
        await self.transport.publish(TOPIC, self._announcement(kind))

    async def start(self, *, run_loop: bool = True) -> None:
        """Subscribe, announce join and ask the others to re-announce. With `run_loop=False` the caller
        runs `run()` itself (a node runs it under its supervisor)."""
        self._subs.append(await self.transport.subscribe(TOPIC, self._on_announce))
        self._subs.append(await self.transport.subscribe(HELLO_TOPIC, self._on_hello))
        await self.announce("join")
        await self.transport.publish(HELLO_TOPIC, self._announcement("join"))
        if run_loop:
            self._task = asyncio.create_task(self.run(), name="discovery")

    async def stop(self, *, announce_leave: bool = True) -> None:
        for task in (self._task, self._reply):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._reply = None
        if announce_leave:
            try:
                await self.announce("leave")
            except Exception as exc:  # leaving while the hub is gone must not block shutdown
                log.warning("could not announce leave: %s", exc)
        for sub in self._subs:
            await sub.unsubscribe()
        self._subs.clear()

    async def run(self, on_beat: Callable[[], None] | None = None) -> None:
        """Heartbeats and peer sweeps, forever. `on_beat` tells a supervisor the loop is alive."""
        while True:
            if on_beat is not None:
                on_beat()
            await asyncio.sleep(self.interval)
            try:
                await self.announce("heartbeat")
            except Exception as exc:  # the hub may be restarting; the next beat retries
                log.warning("heartbeat failed: %s", exc)
            await self.sweep()

    async def sweep(self) -> None:
        """Mark silent peers lost, drop long-gone ones, and report the events the budget refused."""
        async with self._lock:
            await self._commit(self.table.due())
            if self.suppressed:
                count, self.suppressed = self.suppressed, 0
                await self._notify(Change("peer.events_suppressed", self.keypair.did, {"count": count}))

    async def replies_done(self) -> None:
        """Wait for the re-announcement owed to hellos heard so far (if one is pending)."""
        if self._reply is not None:
            await asyncio.gather(self._reply, return_exceptions=True)

    # -- internals ----------------------------------------------------------------------------
    async def _commit(self, update: Update) -> None:
        """Record the update's events, then show it: a reader that sees the state can read the event."""
        for change in update.changes:
            if self.table.is_pinned(change.did) or self.event_budget.take():
                await self._notify(change)
            else:
                self.suppressed += 1
        self.table.apply(update)
        if update.changes and self.on_alive is not None:
            self.on_alive(len(self.table.alive()))

    async def _notify(self, change: Change) -> None:
        if self.on_change is None:
            return
        try:
            result = self.on_change(change)
            if inspect.isawaitable(result):
                await result
        except Exception:  # a failed event write is logged by its sink; the table still moves on
            log.exception("recording %s for %s failed", change.kind, change.did)

    def _open(self, data: bytes) -> Announcement | None:
        try:
            return Announcement.open(data)
        except AgoraError as exc:
            if self.on_reject is not None:
                self.on_reject(exc.code)
            log.info("dropped an announcement: %s", exc)
            return None

    async def _observe(self, ann: Announcement) -> None:
        async with self._lock:
            update = self.table.assess(ann)
            if update is not None:
                await self._commit(update)

    async def _on_announce(self, data: bytes) -> None:
        ann = self._open(data)
        if ann is not None:
            await self._observe(ann)

    async def _on_hello(self, data: bytes) -> None:
        ann = self._open(data)
        if ann is None or ann.did == self.keypair.did:
            return
        await self._observe(ann)
        if self._reply is None or self._reply.done():  # else the pending reply answers this hello too
            self._reply = asyncio.create_task(self._answer_hellos(), name="discovery-reply")

    async def _answer_hellos(self) -> None:
        """Let the newcomers see us now: one heartbeat, at most one per `reply_gap`."""
        loop = asyncio.get_running_loop()
        wait = self._last_reply + self.reply_gap - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_reply = loop.time()
        try:
            await self.announce("heartbeat")
        except Exception as exc:  # the hub may be restarting; the next beat covers it
            log.warning("re-announcement failed: %s", exc)


__all__ = ["DEFAULT_REPLY_GAP", "HELLO_TOPIC", "TOPIC", "ChangeSink", "Discovery"]
