"""Play, deterministically, the race that once made a KV snapshot come back empty in CI.

A JetStream consumer's first messages can reach this process after the answer to the `consumer_info`
request that follows its creation: the server's push delivery and its API reply leave on different paths.
The server then says "nothing pending" (it has sent everything) while the client has read nothing yet.
`HeldKvDeliveries` makes that happen every time: it holds every message pushed on a `$KV.` subject before
nats-py's client reads it (so the subscription has received nothing), sends the first `consumer_info`
request only once the expected number of deliveries is held (so the hub has sent them all and says nothing
is pending), and after its answer hands the held messages on, in order, as the socket would have.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.aio.client import Client
from nats.js.manager import JetStreamManager

_ProcessMsg = Any  # nats-py's Client._process_msg (untyped)
WAIT_S = 5.0


class HeldKvDeliveries:
    """Holds `$KV.` deliveries until `release()` (the patched `consumer_info` calls it once it returned)."""

    def __init__(self, process_msg: _ProcessMsg, *, expect: int, release_after_info: bool = True) -> None:
        self._process_msg = process_msg
        self._expect = expect
        self._release_after_info = release_after_info
        self._all_held = asyncio.Event()
        self._held: list[tuple[Client, tuple[Any, ...]]] = []
        self._open = False
        self._drain: asyncio.Task[None] | None = None
        self.held = 0  # how many deliveries were held back (the race was played only if some were)
        self.infos = 0  # consumer_info calls answered

    async def process(self, nc: Client, *args: Any) -> None:
        subject: bytes = args[1]
        if subject.startswith(b"$KV.") and (not self._open or self._held):
            if not self._open:
                self.held += 1
                if self.held >= self._expect:
                    self._all_held.set()
            self._held.append((nc, args))
            return
        await self._process_msg(nc, *args)

    async def asking_info(self) -> None:
        """Before a `consumer_info` request: wait until the hub has sent the expected deliveries (they are
        held), so its answer says nothing is pending while the client has received nothing."""
        if not self._open:
            async with asyncio.timeout(WAIT_S):
                await self._all_held.wait()

    def answered_info(self) -> None:
        self.infos += 1
        if self._release_after_info and not self._open:
            self.release()

    def release(self) -> None:
        self._open = True
        self._drain = asyncio.create_task(self._hand_on(), name="kv-race-release")

    async def _hand_on(self) -> None:
        while self._held:  # bounded: the hub sends a finite number of messages, each handed on once
            nc, args = self._held.pop(0)
            await self._process_msg(nc, *args)

    async def close(self) -> None:
        if self._drain is not None:
            await self._drain


@contextlib.asynccontextmanager
async def held_kv_deliveries(
    monkeypatch: pytest.MonkeyPatch, *, expect: int, release_after_info: bool = True
) -> AsyncIterator[HeldKvDeliveries]:
    """Within the block, the first `expect` `$KV.` deliveries reach nats-py only after the first
    `consumer_info` answered (or never, with `release_after_info=False`: a hub that stops delivering)."""
    held = HeldKvDeliveries(Client._process_msg, expect=expect, release_after_info=release_after_info)
    consumer_info = JetStreamManager.consumer_info

    async def process_msg(self: Client, *args: Any) -> None:
        await held.process(self, *args)

    async def info(self: JetStreamManager, *args: Any, **kwargs: Any) -> Any:
        await held.asking_info()
        got = await consumer_info(self, *args, **kwargs)
        held.answered_info()
        return got

    with monkeypatch.context() as m:
        m.setattr(Client, "_process_msg", process_msg)
        m.setattr(JetStreamManager, "consumer_info", info)
        try:
            yield held
        finally:
            await held.close()
