"""The one Transport interface every implementation (memory, nats, later libp2p) honours.

A transport moves opaque bytes between nodes named by DIDs. It never signs, parses or authorizes:
agora.wire and agora.actor do that above it, so a transport can be swapped without touching trust.
The conformance suite in tests/integration/transport/conformance.py is the executable contract.
"""

from __future__ import annotations

import enum
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024

InboxHandler = Callable[[bytes], Awaitable[bytes | None]]
"""Handles one message to this node's inbox; a returned bytes is the reply when it was a request."""

TopicHandler = Callable[[bytes], Awaitable[None]]
"""Handles one message published on a topic."""

log = logging.getLogger("agora.transport")


class ConnectionState(enum.StrEnum):
    """What upper layers see of the link to the network (for a memory transport: the bus)."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    RECONNECTED = "reconnected"
    CLOSED = "closed"


StateListener = Callable[[ConnectionState], None]


class Subscription(ABC):
    """A live topic subscription; `unsubscribe` is idempotent."""

    topic: str

    @abstractmethod
    async def unsubscribe(self) -> None: ...


class StateBroadcaster:
    """Fans connection-state changes out to listeners.

    Listeners are plain callables (not coroutines) so that a listener can never stall the network
    event loop path that reports the change; one that raises is logged and the others still run.
    """

    def __init__(self) -> None:
        self._listeners: list[StateListener] = []
        self.state = ConnectionState.DISCONNECTED

    def add(self, listener: StateListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def emit(self, state: ConnectionState) -> None:
        self.state = state
        for listener in list(self._listeners):
            try:
                listener(state)
            except Exception:
                log.exception("connection state listener failed on %s", state.value)


class Transport(ABC):
    """Addressed messaging between nodes plus topic broadcast.

    Semantics every implementation keeps:
    - `send` is fire-and-forget to the inbox of `did`; nobody listening means the bytes are gone.
    - `request` raises AgoraError `timeout` (no reply in time), `peer_unreachable` (no one serves
      that inbox), `message_too_large` (either direction over `max_message_bytes`), `handler_failed`
      (the remote handler raised) and `transport_closed` (not started or closed).
    - Inbox handlers run concurrently (one task per message, started in arrival order) so a handler
      may itself make requests without deadlocking its own node; topic handlers of one subscription
      run one at a time, in order.
    """

    local_did: str
    max_message_bytes: int

    def __init__(self) -> None:
        self._states = StateBroadcaster()

    @abstractmethod
    async def start(self) -> None:
        """Join the network; raises when that is impossible (with a hint saying what to fix)."""

    @abstractmethod
    async def close(self) -> None:
        """Leave the network: stop receiving, let running handlers finish briefly, free everything."""

    @abstractmethod
    async def send(self, did: str, data: bytes) -> None: ...

    @abstractmethod
    async def request(self, did: str, data: bytes, timeout: float) -> bytes: ...

    @abstractmethod
    async def serve(self, handler: InboxHandler) -> None:
        """Install the single handler of this node's inbox (replaces a previous one)."""

    @abstractmethod
    async def publish(self, topic: str, data: bytes) -> None: ...

    @abstractmethod
    async def subscribe(self, topic: str, handler: TopicHandler) -> Subscription:
        """Subscribe to a topic; NATS-style wildcards `*` (one token) and `>` (the rest) are allowed."""

    @property
    def state(self) -> ConnectionState:
        return self._states.state

    def on_state_change(self, listener: StateListener) -> Callable[[], None]:
        """Watch connected/disconnected/reconnected/closed; returns a function that stops watching."""
        return self._states.add(listener)


__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "ConnectionState",
    "InboxHandler",
    "StateBroadcaster",
    "StateListener",
    "Subscription",
    "TopicHandler",
    "Transport",
]
