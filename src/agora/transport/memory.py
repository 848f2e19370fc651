"""In-process transport: a `MemoryNetwork` bus and `MemoryTransport` endpoints on it.

Used by unit tests and the simulator (thousands of nodes in one process), so it is deterministic:
deliveries are asyncio tasks started in call order, nothing sleeps, and a request whose handler
returns no reply fails with `timeout` at once instead of waiting the timeout out (the outcome a
NATS requester would see, without the wait). Only a handler that hangs makes a requester wait.

`MemoryNetwork.disconnect(did)` / `reconnect(did)` simulate a node losing its hub: its state
listeners fire, others get `peer_unreachable` for it, and its own operations fail with
`hub_unreachable` (NATS would buffer them; an explicit failure is more useful in a simulation).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from typing import Any

from agora.errors import AgoraError
from agora.transport.interfaces import (
    DEFAULT_MAX_MESSAGE_BYTES,
    ConnectionState,
    InboxHandler,
    Subscription,
    TopicHandler,
    Transport,
    log,
)
from agora.transport.subjects import check_size, inbox_subject, topic_matches, validate_topic

_CLOSE_GRACE_S = 1.0
_FLUSH_ROUNDS = 10_000


class MemoryNetwork:
    """The shared bus. One per simulated world; endpoints join it by DID."""

    def __init__(self) -> None:
        self._nodes: dict[str, MemoryTransport] = {}
        self._subs: list[_MemorySubscription] = []
        self._offline: set[str] = set()
        self.dropped = 0
        """Fire-and-forget messages that found nobody to deliver to (a counter for simulations)."""

    @property
    def dids(self) -> list[str]:
        return sorted(self._nodes)

    def disconnect(self, did: str) -> None:
        node = self._nodes.get(did)
        if node is None or did in self._offline:
            return
        self._offline.add(did)
        node._states.emit(ConnectionState.DISCONNECTED)

    def reconnect(self, did: str) -> None:
        node = self._nodes.get(did)
        if node is None or did not in self._offline:
            return
        self._offline.discard(did)
        node._states.emit(ConnectionState.RECONNECTED)

    def is_online(self, did: str) -> bool:
        return did in self._nodes and did not in self._offline

    async def flush(self) -> None:
        """Wait until every delivery in flight (inbox handlers, topic queues) has been handled."""
        for _ in range(_FLUSH_ROUNDS):
            pending: list[asyncio.Future[Any]] = []
            for node in self._nodes.values():
                pending.extend(node._tasks)
            busy = [s for s in self._subs if not s._queue.empty() or s._busy]
            if not pending and not busy:
                return
            if pending:
                await asyncio.wait(pending)
            else:
                await asyncio.sleep(0)  # yield so topic consumers run; no wall-clock wait
        raise AgoraError("internal", "memory network did not settle: handlers keep producing messages")

    # -- used by MemoryTransport -------------------------------------------------------------

    def _join(self, node: MemoryTransport) -> None:
        existing = self._nodes.get(node.local_did)
        if existing is not None and existing is not node:
            raise AgoraError("already_exists", f"{node.local_did} is already on this memory network")
        self._nodes[node.local_did] = node

    def _leave(self, node: MemoryTransport) -> None:
        if self._nodes.get(node.local_did) is node:
            del self._nodes[node.local_did]
        self._offline.discard(node.local_did)
        self._subs = [s for s in self._subs if s._owner is not node]

    def _route(self, did: str) -> MemoryTransport | None:
        node = self._nodes.get(did)
        if node is None or did in self._offline or node._handler is None:
            return None
        return node


class _MemorySubscription(Subscription):
    def __init__(self, owner: MemoryTransport, topic: str, handler: TopicHandler) -> None:
        self.topic = topic
        self._owner = owner
        self._handler = handler
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._busy = False
        self._active = True
        self._task = asyncio.get_running_loop().create_task(self._consume())

    async def _consume(self) -> None:
        while True:
            data = await self._queue.get()
            self._busy = True
            try:
                await self._handler(data)
            except Exception:
                log.exception("topic handler for %s failed", self.topic)
            finally:
                self._busy = False

    async def unsubscribe(self) -> None:
        if not self._active:
            return
        self._active = False
        net = self._owner._network
        if self in net._subs:
            net._subs.remove(self)
        if self in self._owner._subs:
            self._owner._subs.remove(self)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class MemoryTransport(Transport):
    """An endpoint on a `MemoryNetwork`; same contract as the NATS transport."""

    def __init__(self, network: MemoryNetwork, did: str, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        super().__init__()
        inbox_subject(did)  # validate early: a bad DID is a construction error
        if max_message_bytes <= 0:
            raise AgoraError("config_invalid", "max_message_bytes must be positive")
        self.local_did = did
        self.max_message_bytes = max_message_bytes
        self._network = network
        self._handler: InboxHandler | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._subs: list[_MemorySubscription] = []
        self._running = False

    async def start(self) -> None:
        if self._running:
            return
        self._network._join(self)
        self._running = True
        self._states.emit(ConnectionState.CONNECTED)

    async def close(self) -> None:
        if not self._running:
            return
        self._running = False
        self._handler = None
        self._network._leave(self)
        for sub in list(self._subs):
            await sub.unsubscribe()
        self._subs.clear()
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=_CLOSE_GRACE_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._states.emit(ConnectionState.CLOSED)

    def _check_ready(self) -> None:
        if not self._running:
            raise AgoraError("transport_closed", f"memory transport of {self.local_did} is not running")
        if self.local_did in self._network._offline:
            raise AgoraError("hub_unreachable", f"{self.local_did} is disconnected from the memory network")

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # mark retrieved: failures were logged where they happened

    async def serve(self, handler: InboxHandler) -> None:
        if not self._running:
            raise AgoraError("transport_closed", "start the transport before serving")
        self._handler = handler

    async def send(self, did: str, data: bytes) -> None:
        inbox_subject(did)
        check_size(data, self.max_message_bytes, "message")
        self._check_ready()
        target = self._network._route(did)
        if target is None:
            self._network.dropped += 1
            return
        if len(data) > target.max_message_bytes:
            log.warning("dropped %d-byte message to %s: over its limit", len(data), did)
            self._network.dropped += 1
            return
        assert target._handler is not None
        target._spawn(_run_oneway(target._handler, bytes(data), did))

    async def request(self, did: str, data: bytes, timeout: float) -> bytes:
        inbox_subject(did)
        check_size(data, self.max_message_bytes, "request")
        if timeout <= 0:
            raise AgoraError("invalid_argument", "timeout must be positive")
        self._check_ready()
        target = self._network._route(did)
        if target is None:
            raise AgoraError("peer_unreachable", f"no one serves the inbox of {did}")
        check_size(data, target.max_message_bytes, "request (receiver's limit)")
        assert target._handler is not None
        task = target._spawn(_await(target._handler(bytes(data))))
        try:
            reply = await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            raise AgoraError("timeout", f"{did} did not reply within {timeout} s") from None
        except AgoraError as exc:
            raise AgoraError("handler_failed", f"{did}: {exc.code}") from None
        except Exception as exc:
            raise AgoraError("handler_failed", f"{did}: {type(exc).__name__}") from None
        if reply is None:
            raise AgoraError("timeout", f"{did} sent no reply")
        check_size(reply, target.max_message_bytes, "reply (replier's limit)")
        check_size(reply, self.max_message_bytes, "reply")
        return bytes(reply)

    async def publish(self, topic: str, data: bytes) -> None:
        validate_topic(topic)
        check_size(data, self.max_message_bytes, "message")
        self._check_ready()
        for sub in self._network._subs:
            if not sub._active or not topic_matches(sub.topic, topic):
                continue
            owner = sub._owner
            if owner.local_did in self._network._offline:
                continue
            if len(data) > owner.max_message_bytes:
                log.warning("dropped %d-byte message on %s for %s: over its limit", len(data), topic, owner.local_did)
                continue
            sub._queue.put_nowait(bytes(data))

    async def subscribe(self, topic: str, handler: TopicHandler) -> Subscription:
        validate_topic(topic, wildcards=True)
        self._check_ready()
        sub = _MemorySubscription(self, topic, handler)
        self._subs.append(sub)
        self._network._subs.append(sub)
        return sub


async def _await(aw: Awaitable[bytes | None]) -> bytes | None:
    try:
        return await aw
    except Exception:
        log.exception("inbox handler failed on a request")
        raise


async def _run_oneway(handler: InboxHandler, data: bytes, did: str) -> None:
    try:
        await handler(data)
    except Exception:
        log.exception("inbox handler of %s failed on a one-way message", did)


__all__ = ["MemoryNetwork", "MemoryTransport"]
