"""Discovery over the hub: announce join / heartbeat / leave on a topic and keep the peer table.

Announcements are signed envelopes (agora.wire.Announcement) published on `agora.announce`; a node
verifies each one before it touches the table, so a forged or tampered announcement is dropped and
counted. When a node joins it also asks the others to re-announce (`agora.announce.hello`), so a fresh
node sees the network at once instead of after one heartbeat interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from agora import __version__
from agora.discovery.peers import Change, PeerTable
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.transport import Subscription, Transport
from agora.wire import Announcement

log = logging.getLogger("agora.discovery")

TOPIC = "agora.announce"
HELLO_TOPIC = "agora.announce.hello"


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
        on_change: Callable[[Change], None] | None = None,
        on_reject: Callable[[str], None] | None = None,
    ) -> None:
        self.keypair = keypair
        self.transport = transport
        self.table = table
        self.hubs = hubs
        self.capabilities = capabilities
        self.interval = interval
        self.on_change = on_change
        self.on_reject = on_reject
        self._seq = 0
        self._subs: list[Subscription] = []
        self._task: asyncio.Task[None] | None = None

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
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
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
            for change in self.table.sweep():
                self._changed(change)

    def _changed(self, change: Change) -> None:
        if self.on_change is not None:
            self.on_change(change)

    def _open(self, data: bytes) -> Announcement | None:
        try:
            return Announcement.open(data)
        except AgoraError as exc:
            if self.on_reject is not None:
                self.on_reject(exc.code)
            log.info("dropped an announcement: %s", exc)
            return None

    async def _on_announce(self, data: bytes) -> None:
        ann = self._open(data)
        if ann is not None:
            change = self.table.observe(ann)
            if change is not None:
                self._changed(change)

    async def _on_hello(self, data: bytes) -> None:
        ann = self._open(data)
        if ann is None or ann.did == self.keypair.did:
            return
        change = self.table.observe(ann)
        if change is not None:
            self._changed(change)
        await self.announce("heartbeat")  # let the newcomer see us now


__all__ = ["HELLO_TOPIC", "TOPIC", "Discovery"]
