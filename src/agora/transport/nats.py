"""The NATS transport: a node dials out to one or more hubs (nats-server) with nats-py.

Fast path: `request` is nats-py's new-style request on its one shared reply inbox (no per-request
subscription) and the reply bytes come back untouched; the serving side hands each message to the
handler in its own task and publishes the reply directly. Headers are used only on failures
(`Agora-Error: <code>`), so a normal round trip costs exactly what raw nats-py costs plus one task.

Reconnect policy: after a disconnect the client retries forever with exponential backoff
(`ReconnectPolicy`: min_wait doubling up to max_wait, with jitter), cycling through the servers;
nats-py replays every subscription (the inbox, topics, its reply inbox) on reconnect, so nothing
above notices beyond the state events. The first connect is bounded by `connect_deadline` and
fails with `hub_unreachable` / `hub_auth_failed` and a hint instead of hanging.

Subject permissions (allowlisted hubs): replies come back under this node's own reply prefix
(`reply_inbox_prefix`), which is all the hub lets it read besides its inbox and public topics. A
refused subscription or topic publish arrives as an asynchronous -ERR; nats-py hands it to the
error callback before the PONG of the next flush, so `serve`, `subscribe` and a node's first
`publish` to a topic flush and then turn it into `hub_permission_denied` instead of silence.
Replies go only to `_INBOX.` subjects: a sender cannot make this node publish its reply elsewhere
(to a JetStream API subject, say) with its permissions.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import nats.aio.client
import nats.errors
from nats.aio.msg import Msg

from agora.errors import CATALOG, AgoraError
from agora.identity import Keypair
from agora.transport.interfaces import (
    DEFAULT_MAX_MESSAGE_BYTES,
    ConnectionState,
    InboxHandler,
    Subscription,
    TopicHandler,
    Transport,
    log,
)
from agora.transport.reachability import HINT_TLS_NOT_OFFERED, close_client, explain_connect_error, split_url
from agora.transport.subjects import (
    ERROR_HEADER,
    REPLY_INBOX_ROOT,
    check_size,
    inbox_subject,
    reply_inbox_prefix,
    validate_topic,
)
from agora.transport.tls import TlsConfig

_CLOSE_GRACE_S = 2.0
_PERMISSIONS_ERR = "permissions violation for "
_MAX_REMEMBERED = 1024
_REPLY_ROOT = REPLY_INBOX_ROOT + "."


@dataclass(frozen=True)
class ReconnectPolicy:
    """Backoff between reconnect attempts: min_wait * 2**n capped at max_wait, +/- jitter."""

    min_wait: float = 0.05
    max_wait: float = 2.0
    jitter: float = 0.2
    ping_interval: int = 20
    """Seconds between pings; a hub that stops answering is noticed after ~3 intervals."""

    def delay(self, attempt: int, rng: random.Random) -> float:
        base = min(self.max_wait, self.min_wait * (2 ** min(attempt, 30)))
        return float(max(0.0, base * (1.0 + self.jitter * (2.0 * rng.random() - 1.0))))


class _NatsSubscription(Subscription):
    def __init__(
        self, topic: str, sub: Any, nc: nats.aio.client.Client, registry: list[_NatsSubscription] | None = None
    ) -> None:
        self.topic = topic
        self._sub = sub
        self._nc = nc
        self._registry = registry
        self._active = True

    async def unsubscribe(self) -> None:
        if not self._active:
            return
        self._active = False
        if self._registry is not None and self in self._registry:
            self._registry.remove(self)
        try:
            await self._sub.unsubscribe()
        except (nats.errors.ConnectionClosedError, nats.errors.BadSubscriptionError):
            return  # the connection or the subscription is already gone: nothing left to undo
        await _flush(self._nc)  # the hub has dropped our interest when this returns


async def _flush(nc: nats.aio.client.Client) -> None:
    """Round trip to the hub so subscription changes are in effect.

    Two flushes, because nats-py 2.16 writes a flush's PING straight to the socket while a
    just-queued SUB/UNSUB still waits for its flusher task: the first PONG can come back before
    the hub saw the SUB (we lost ~1% of first messages that way). The first flush lets the flusher
    write the SUB; the second PING follows it on the wire. Harmless while disconnected (nats-py
    replays subscriptions on reconnect), so a failure is only logged.
    """
    for _ in range(2):
        if not nc.is_connected:
            return
        try:
            await nc.flush(timeout=2)
        except nats.errors.Error as exc:
            log.debug("flush failed: %s", exc)
            return


class NatsTransport(Transport):
    """A node's link to its hubs. `servers` are tried in turn; all share one logical network."""

    def __init__(
        self,
        did: str,
        servers: Sequence[str],
        *,
        keypair: Keypair | None = None,
        tls: TlsConfig | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        reconnect: ReconnectPolicy | None = None,
        connect_timeout: float = 2.0,
        connect_deadline: float = 10.0,
        max_concurrent_handlers: int = 1024,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__()
        self._inbox = inbox_subject(did)
        self._reply_prefix = reply_inbox_prefix(did)
        if isinstance(servers, str) or not servers:
            raise AgoraError("config_invalid", "servers must be a non-empty list of hub URLs")
        for url in servers:
            split_url(url)
        if keypair is not None and keypair.did != did:
            raise AgoraError("config_invalid", "the keypair does not belong to this node's DID")
        if max_message_bytes <= 0 or max_concurrent_handlers <= 0:
            raise AgoraError("config_invalid", "max_message_bytes and max_concurrent_handlers must be positive")
        self.local_did = did
        self.servers = list(servers)
        self.max_message_bytes = max_message_bytes
        self._keypair = keypair
        self._tls = tls
        self._reconnect = reconnect or ReconnectPolicy()
        self._connect_timeout = connect_timeout
        self._connect_deadline = connect_deadline
        self._rng = rng or random.Random()
        self._nc: nats.aio.client.Client | None = None
        self._handler: InboxHandler | None = None
        self._inbox_sub: Any = None
        self._subs: list[_NatsSubscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(max_concurrent_handlers)
        self._connecting = False
        self._closing = False
        self._last_error: BaseException | None = None
        self._denied: set[tuple[str, str]] = set()  # ("subscription" | "publish", lowercased subject)
        self._topics_ok: set[str] = set()  # topics this connection has published to without a refusal

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def nats_client(self) -> nats.aio.client.Client:
        """The live nats-py client, for JetStream users (hub object store); not for messaging."""
        return self._require()

    async def start(self) -> None:
        if self._nc is not None:
            return
        nc = nats.aio.client.Client()
        options: dict[str, Any] = {
            "servers": self.servers,
            "name": self.local_did,
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
            "closed_cb": self._on_closed,
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": max(self._reconnect.min_wait, 0.1),
            "reconnect_to_server_handler": self._pick_server,
            "connect_timeout": max(1, round(self._connect_timeout)),
            "ping_interval": self._reconnect.ping_interval,
            "max_outstanding_pings": 3,
            "inbox_prefix": self._reply_prefix,
        }
        if self._keypair is not None:
            options["nkeys_seed_str"] = self._keypair.nkey_seed()
        if self._tls is not None:
            options["tls"] = self._tls.client_context()
            if self._tls.server_name:
                options["tls_hostname"] = self._tls.server_name
        self._connecting = True
        self._last_error = None
        try:
            await asyncio.wait_for(nc.connect(**options), self._connect_deadline)
        except AgoraError:
            await _quiet_close(nc)
            raise
        except Exception as exc:  # asyncio.TimeoutError is the builtin TimeoutError
            await _quiet_close(nc)
            code, detail, hint = explain_connect_error(self._last_error or exc, ", ".join(self.servers))
            raise AgoraError(code, f"could not join the network: {detail}", hint=hint) from None
        finally:
            self._connecting = False
        if self._tls is not None and not (nc._server_info or {}).get("tls_required"):
            await _quiet_close(nc)
            raise AgoraError("hub_unreachable", "the hub accepted a plaintext connection", hint=HINT_TLS_NOT_OFFERED)
        if nc.max_payload < self.max_message_bytes:
            log.warning(
                "hub max_payload %d is below max_message_bytes %d: larger messages will be refused",
                nc.max_payload,
                self.max_message_bytes,
            )
        self._nc = nc
        self._closing = False
        self._states.emit(ConnectionState.CONNECTED)

    async def close(self) -> None:
        nc = self._nc
        if nc is None or self._closing:
            return
        self._closing = True
        self._handler = None
        try:
            if self._inbox_sub is not None:
                await _NatsSubscription(self._inbox, self._inbox_sub, nc).unsubscribe()
                self._inbox_sub = None
            for sub in list(self._subs):
                await sub.unsubscribe()
            self._subs.clear()
            if self._tasks:
                _done, pending = await asyncio.wait(set(self._tasks), timeout=_CLOSE_GRACE_S)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
            await _quiet_close(nc)
        finally:
            self._nc = None
            self._states.emit(ConnectionState.CLOSED)

    def _require(self) -> nats.aio.client.Client:
        nc = self._nc
        if nc is None or self._closing:
            raise AgoraError("transport_closed", f"NATS transport of {self.local_did} is not running")
        return nc

    # -- nats-py callbacks -------------------------------------------------------------------

    async def _on_error(self, exc: Exception) -> None:
        self._last_error = exc
        text = str(exc).lower()
        at = text.find(_PERMISSIONS_ERR)
        if at >= 0:  # nats-py lowercases the server's text: 'permissions violation for publish to "x"'
            kind, _, subject = text[at + len(_PERMISSIONS_ERR) :].partition(" to ")
            if len(self._denied) >= _MAX_REMEMBERED:
                self._denied.clear()
            self._denied.add((kind.strip(), subject.strip().strip('"')))
            log.warning("hub refused %s: %s", self.local_did, exc)
            return
        if self._connecting:
            code, detail, hint = explain_connect_error(exc, ", ".join(self.servers))
            if code == "hub_auth_failed" or isinstance(exc, ssl.SSLError | ssl.CertificateError):
                # Raising here ends nats-py's connect loop at once: a refused key or an untrusted
                # certificate does not heal by retrying, so waiting out the deadline only hides it.
                raise AgoraError(code, f"{detail} (DID {self.local_did})", hint=hint)
        log.debug("nats error for %s: %s", self.local_did, exc)

    async def _on_disconnected(self) -> None:
        if not self._closing and not self._connecting:
            log.warning("%s lost its hub; reconnecting", self.local_did)
            self._states.emit(ConnectionState.DISCONNECTED)

    async def _on_reconnected(self) -> None:
        log.info("%s reconnected to %s", self.local_did, self._nc.connected_url if self._nc else "?")
        self._states.emit(ConnectionState.RECONNECTED)

    async def _on_closed(self) -> None:
        if self._nc is not None and not self._closing:
            self._states.emit(ConnectionState.CLOSED)

    def _pick_server(self, servers: list[Any], _info: dict[str, Any]) -> tuple[Any, float]:
        server = min(servers, key=lambda s: s.reconnects)
        return server, self._reconnect.delay(server.reconnects, self._rng)

    # -- inbox -------------------------------------------------------------------------------

    async def serve(self, handler: InboxHandler) -> None:
        nc = self._require()
        self._handler = handler
        if self._inbox_sub is None:
            self._denied.discard(("subscription", self._inbox.lower()))
            self._inbox_sub = await nc.subscribe(self._inbox, cb=self._on_inbox)
            await _flush(nc)  # the hub knows our interest before serve returns: no early "no responders"
            if ("subscription", self._inbox.lower()) in self._denied:
                sub, self._inbox_sub, self._handler = self._inbox_sub, None, None
                await _NatsSubscription(self._inbox, sub, nc).unsubscribe()
                raise _denied("read its own inbox", self._inbox)

    async def _on_inbox(self, msg: Msg) -> None:
        await self._slots.acquire()
        task = asyncio.get_running_loop().create_task(self._handle(msg))
        self._tasks.add(task)
        task.add_done_callback(self._handled)

    def _handled(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _handle(self, msg: Msg) -> None:
        handler, reply, data = self._handler, msg.reply, msg.data
        if handler is None:
            return
        if len(data) > self.max_message_bytes:
            log.warning("refused %d-byte message: over max_message_bytes", len(data))
            if reply:
                await self._reply_error(reply, "message_too_large")
            return
        try:
            out = await handler(data)
        except Exception:
            log.exception("inbox handler of %s failed", self.local_did)
            if reply:
                await self._reply_error(reply, "handler_failed")
            return
        if not reply or out is None:
            return
        if not reply.startswith(_REPLY_ROOT):
            log.warning("%s did not answer to %r: replies go only to %s* subjects", self.local_did, reply, _REPLY_ROOT)
            return
        if len(out) > self.max_message_bytes:
            log.warning("refused to send a %d-byte reply: over max_message_bytes", len(out))
            await self._reply_error(reply, "message_too_large")
            return
        try:
            await self._require().publish(reply, out)
        except (AgoraError, nats.errors.Error) as exc:
            log.warning("reply of %s was lost: %s", self.local_did, exc)

    async def _reply_error(self, reply: str, code: str) -> None:
        if not reply.startswith(_REPLY_ROOT):
            return
        try:
            await self._require().publish(reply, b"", headers={ERROR_HEADER: code})
        except (AgoraError, nats.errors.Error) as exc:
            log.warning("error reply %s of %s was lost: %s", code, self.local_did, exc)

    # -- outbound ----------------------------------------------------------------------------

    async def send(self, did: str, data: bytes) -> None:
        subject = inbox_subject(did)
        check_size(data, self.max_message_bytes, "message")
        await self._publish(subject, data)

    async def request(self, did: str, data: bytes, timeout: float) -> bytes:
        subject = inbox_subject(did)
        check_size(data, self.max_message_bytes, "request")
        if timeout <= 0:
            raise AgoraError("invalid_argument", "timeout must be positive")
        nc = self._require()
        try:
            msg = await nc.request(subject, data, timeout=timeout)
        except nats.errors.NoRespondersError:
            raise AgoraError("peer_unreachable", f"no one serves the inbox of {did}") from None
        except nats.errors.TimeoutError:
            raise AgoraError("timeout", f"{did} did not reply within {timeout} s") from None
        except nats.errors.Error as exc:
            raise _outbound_error(exc) from None
        headers = msg.headers
        if headers:
            code = headers.get(ERROR_HEADER)
            if code:
                raise AgoraError(code if code in CATALOG else "internal", f"{did} answered with error {code}")
        reply = msg.data
        check_size(reply, self.max_message_bytes, "reply")
        return reply

    async def publish(self, topic: str, data: bytes) -> None:
        validate_topic(topic)
        check_size(data, self.max_message_bytes, "message")
        if topic in self._topics_ok:
            await self._publish(topic, data)
            return
        # first publish to this topic: one round trip tells whether the hub permits it
        nc = self._require()
        key = ("publish", topic.lower())
        self._denied.discard(key)
        await self._publish(topic, data)
        await _flush(nc)
        if key in self._denied:
            raise _denied(f"publish to topic {topic!r}", topic)
        if nc.is_connected:  # a flush while disconnected proves nothing
            if len(self._topics_ok) >= _MAX_REMEMBERED:
                self._topics_ok.clear()
            self._topics_ok.add(topic)

    async def _publish(self, subject: str, data: bytes) -> None:
        nc = self._require()
        try:
            await nc.publish(subject, data)
        except nats.errors.Error as exc:
            raise _outbound_error(exc) from None

    async def subscribe(self, topic: str, handler: TopicHandler) -> Subscription:
        validate_topic(topic, wildcards=True)
        nc = self._require()
        limit = self.max_message_bytes

        async def on_msg(msg: Msg) -> None:
            if len(msg.data) > limit:
                log.warning("dropped %d-byte message on %s: over max_message_bytes", len(msg.data), msg.subject)
                return
            try:
                await handler(msg.data)
            except Exception:
                log.exception("topic handler for %s failed", topic)

        key = ("subscription", topic.lower())
        self._denied.discard(key)
        sub = _NatsSubscription(topic, await nc.subscribe(topic, cb=on_msg), nc, self._subs)
        await _flush(nc)  # interest registered at the hub before the caller publishes
        if key in self._denied:
            await sub.unsubscribe()
            raise _denied(f"subscribe to topic {topic!r}", topic)
        self._subs.append(sub)
        return sub


def _denied(what: str, subject: str) -> AgoraError:
    return AgoraError(
        "hub_permission_denied",
        f"the hub does not let this node {what}",
        hint="On an allowlisted hub a node may read only its own inbox and replies and the hub's topics "
        "(HubConfig.topics, default agora.announce and agora.announce.>); ask the hub operator to add the topic.",
        details={"subject": subject},
    )


def _outbound_error(exc: Exception) -> AgoraError:
    if isinstance(exc, nats.errors.MaxPayloadError):
        return AgoraError("message_too_large", "the message is over the hub's max_payload")
    if isinstance(exc, nats.errors.ConnectionClosedError | nats.errors.ConnectionDrainingError):
        return AgoraError("transport_closed", str(exc))
    if isinstance(exc, nats.errors.OutboundBufferLimitError):
        return AgoraError("hub_unreachable", "disconnected from the hub and the outbound buffer is full")
    return AgoraError("unavailable", f"NATS: {exc}")


async def _quiet_close(nc: nats.aio.client.Client) -> None:
    await close_client(nc)


__all__ = ["NatsTransport", "ReconnectPolicy"]
