"""The market index in the hub's NATS JetStream key-value bucket: one key per provider, history 1.

Each provider writes its own signed ad under its own key (`market_key(did)`: the DID with `:` as `.`);
the bucket's TTL (stream max age) drops the ads of providers that stopped republishing. On an
allowlisted hub the bucket is created by the hub (`agora.transport.hub`), replicated on a cluster, and a
node may publish only to `$KV.<bucket>.<its own key>` (`hub_config.market_subjects`): it can neither
overwrite nor delete another provider's ad.

The hub is still not trusted: every read goes through the same `IndexReader` code as the memory index,
so forged, mis-filed or rolled-back entries are ignored and counted. A watch follows the bucket with an
ordered consumer, keeps only which keys changed (coalesced) and reads each key's current value when the
watcher asks for the next ad, so a slow watcher never builds a backlog.

The index uses a connection it is given (the node's link to its hub) and never closes it.
"""

from __future__ import annotations

import asyncio
import contextlib

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.kv import KV_DEL, KV_MARKER_REASON, KV_OP, KV_PURGE, KeyValue

from agora.errors import AgoraError
from agora.market.index import IndexReader, IndexWatch
from agora.transport.hub import ensure_market_bucket
from agora.transport.hub_config import DEFAULT_MARKET_BUCKET, DEFAULT_MARKET_TTL_S, market_key
from agora.transport.hub_config import did_of_market_key as did_of_key
from agora.transport.nats_errors import map_nats_error

DEFAULT_AD_TTL_S = DEFAULT_MARKET_TTL_S
"""How long the bucket keeps an ad that is not republished (the stream's max age)."""
SNAPSHOT_LIMIT_S = 10.0
"""The longest a snapshot of a bucket may take; a hub that has not delivered it by then is `hub_unreachable`."""
_RECHECK_S = 0.5
"""How long a snapshot waits for its next entry before it asks the hub whether one is still due (this sets
how soon a snapshot notices an entry that expired before delivery; it never decides what the snapshot holds)."""
_WATCH_IDLE_S = 300.0
"""The hub drops a watch's consumer this long after its reader went away (a reconnecting watch keeps it)."""


def _bucket(kv: KeyValue) -> tuple[JetStreamContext, str, str]:
    """The JetStream context, stream and subject prefix of a bucket (what nats-py's own watch uses)."""
    return kv._js, kv._stream, kv._pre


async def _read_bucket(kv: KeyValue, *, idle_s: float) -> JetStreamContext.PushSubscription:
    """An ordered consumer over every key of the bucket: each key's newest message first (LAST_PER_SUBJECT),
    then every change. Without a callback: messages wait in the subscription until read, and nothing
    else (no marker, no setup handshake) is interleaved with them, unlike nats-py's KeyWatcher. The hub
    drops the consumer `idle_s` after this reader unsubscribed (nats-py never deletes it)."""
    js, stream, pre = _bucket(kv)
    return await js.subscribe(
        f"{pre}>",
        stream=stream,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        inactive_threshold=idle_s,
    )


def _value(msg: Msg) -> bytes | None:
    """The value a bucket message sets; None when it removes the key: a delete or purge, or the server's
    marker of an entry that expired or was removed (nats-server 2.11+, `Nats-Marker-Reason`)."""
    headers = msg.headers or {}
    if headers.get(KV_OP) in (KV_DEL, KV_PURGE) or KV_MARKER_REASON in headers:
        return None
    return bytes(msg.data or b"")


async def _all_read(sub: JetStreamContext.PushSubscription, last: tuple[str, int] | None) -> bool:
    """The hub says nothing is pending for the consumer and it delivered exactly the messages read so far
    (`last`: the consumer and consumer sequence of the last one read; None: none read)."""
    info = await sub.consumer_info()
    delivered = info.delivered.consumer_seq if info.delivered is not None else 0
    read = last[1] if last is not None and last[0] == info.name else 0  # a reset consumer counts afresh
    return not info.num_pending and delivered == read


async def kv_snapshot(kv: KeyValue, *, what: str, limit_s: float = SNAPSHOT_LIMIT_S) -> dict[str, bytes]:
    """Every key's current value in a KV bucket (deleted and expired keys left out), as the bucket held it at
    one moment, read with one ordered consumer.

    Where the snapshot ends is the hub's word, never a timer's. Either a message's metadata says nothing was
    pending after it (it was the last one at that moment), or the consumer's info says nothing is pending
    and it delivered exactly the messages read (none: the bucket is empty; this also ends a snapshot whose
    last pending entry expired before delivery). nats-py's KeyWatcher is not used here: its "end of the
    current values" marker is put when the consumer's info says nothing is pending and the client has not
    received anything yet, which is also true while the entries the hub already sent are still on their way:
    the marker then came first and a snapshot ended empty (a CI flake; tests/integration/market/kv_race.py
    replays it). Each request is bounded by the JetStream timeout and the whole by `limit_s`; a hub that
    does not answer is `hub_unreachable`."""
    found: dict[str, bytes] = {}
    pre = _bucket(kv)[2]
    try:
        async with asyncio.timeout(limit_s):
            sub = await _read_bucket(kv, idle_s=limit_s)  # the hub drops it soon after
            try:
                last: tuple[str, int] | None = None
                while not await _all_read(sub, last):  # bounded by limit_s
                    with contextlib.suppress(nats.errors.TimeoutError):  # a pause: ask the hub again
                        while True:  # bounded by limit_s (writes faster than reads never leave nothing pending)
                            msg = await sub.next_msg(timeout=_RECHECK_S)
                            key, value, meta = msg.subject[len(pre) :], _value(msg), msg.metadata
                            if value is None:
                                found.pop(key, None)
                            else:
                                found[key] = value
                            last = (meta.consumer, meta.sequence.consumer)
                            if not meta.num_pending:
                                return found
            finally:
                with contextlib.suppress(Exception):  # the consumer is ephemeral: the hub drops it anyway
                    await sub.unsubscribe()
    except Exception as e:
        raise map_nats_error(e, what) from e
    return found


async def kv_value(kv: KeyValue, key: str, *, what: str) -> bytes | None:
    """The bytes a bucket holds under `key` now (None: no such key, deleted or expired)."""
    try:
        entry = await kv.get(key)
    except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
        return None
    except Exception as e:
        raise map_nats_error(e, what) from e
    if entry.operation in (KV_DEL, KV_PURGE):
        return None
    return bytes(entry.value or b"")


async def kv_put(kv: KeyValue, key: str, raw: bytes, *, what: str) -> None:
    """Write `raw` under `key`."""
    try:
        await kv.put(key, raw)
    except Exception as e:
        raise map_nats_error(e, what) from e


async def kv_delete(kv: KeyValue, key: str, *, what: str) -> None:
    """Leave a delete marker under `key` (the bucket's TTL removes it)."""
    try:
        await kv.delete(key)
    except Exception as e:
        raise map_nats_error(e, what) from e


class NatsMarketIndex(IndexReader):
    """`MarketIndex` over a JetStream KV bucket on the hub `nc` is connected to (the reader logic is
    `IndexReader`'s, shared with the memory index; this class gives the bucket's primitives).

    `create`: make the bucket when it is missing (an open hub; an allowlisted hub creates it itself and
    refuses nodes that try), with `ttl_s` and `replicas`.
    """

    def __init__(
        self,
        nc: NatsClient,
        bucket: str = DEFAULT_MARKET_BUCKET,
        *,
        ttl_s: float = DEFAULT_AD_TTL_S,
        replicas: int = 1,
        create: bool = True,
        timeout: float = 5.0,
    ) -> None:
        super().__init__()
        self._nc = nc
        self.bucket = bucket
        self._ttl_s = ttl_s
        self._replicas = replicas
        self._create = create
        self._timeout = timeout
        self._kv_handle: KeyValue | None = None
        self._lock = asyncio.Lock()

    def _key(self, provider: str) -> str:
        return market_key(provider)

    def _provider(self, key: str) -> str:
        return did_of_key(key)

    async def _kv(self) -> KeyValue:
        self._check_open()
        if self._kv_handle is not None:
            return self._kv_handle
        async with self._lock:
            if self._kv_handle is None:
                js = self._nc.jetstream(timeout=self._timeout)
                try:
                    if self._create:
                        self._kv_handle = await ensure_market_bucket(
                            js, self.bucket, ttl_s=self._ttl_s, replicas=self._replicas
                        )
                    else:
                        self._kv_handle = await js.key_value(self.bucket)
                except nats.js.errors.BucketNotFoundError:
                    raise AgoraError(
                        "hub_unreachable",
                        f"the hub has no market bucket {self.bucket!r}",
                        hint="An allowlisted hub creates it at start (HubConfig.market_bucket); a clustered hub "
                        "once its peers are up.",
                    ) from None
                except Exception as e:
                    raise map_nats_error(e, f"market bucket {self.bucket}") from e
            return self._kv_handle

    async def _raw(self, key: str) -> bytes | None:
        """The bytes the hub holds under `key` now (None: no ad, deleted or expired)."""
        return await kv_value(await self._kv(), key, what=f"market ad {key}")

    async def _write(self, key: str, raw: bytes) -> None:
        """Write bytes under a key as any writer of the bucket can (tests use it to play a hostile hub)."""
        await kv_put(await self._kv(), key, raw, what=f"market ad {key}")

    async def _snapshot(self) -> dict[str, bytes]:
        return await kv_snapshot(await self._kv(), what=f"market bucket {self.bucket}")

    async def withdraw(self, provider: str) -> None:
        """Leave a tombstone under the provider's key (a node may write only its own key; purge is not
        granted on an allowlisted hub, and the TTL removes the tombstone)."""
        await kv_delete(await self._kv(), market_key(provider), what=f"market ad of {provider}")

    def watch(self) -> _NatsWatch:
        self._check_open()
        w = _NatsWatch(self)
        self._watches.add(w)
        return w


class _NatsWatch(IndexWatch):
    """`IndexWatch` fed by an ordered consumer on the bucket (a task this watch owns)."""

    def __init__(self, index: NatsMarketIndex) -> None:
        super().__init__(index)
        self._nats = index
        self._pump = asyncio.create_task(self._follow(), name=f"market-watch-{index.bucket}")

    async def _follow(self) -> None:
        """Note each changed key (its value is read when the watcher asks): bounded by the number of keys.
        The same ordered consumer as `kv_snapshot` (current keys first, then every change); if the
        connection to the hub closes under it, the watch ends with `hub_unreachable`."""
        sub: JetStreamContext.PushSubscription | None = None
        failure: AgoraError | None = None
        what = f"market bucket {self._nats.bucket}"
        try:
            kv = await self._nats._kv()
            pre = _bucket(kv)[2]
            try:
                sub = await _read_bucket(kv, idle_s=_WATCH_IDLE_S)
            except Exception as e:
                raise map_nats_error(e, what) from e
            async for msg in sub.messages:
                self.notify(msg.subject[len(pre) :])
            failure = AgoraError("hub_unreachable", f"{what}: the connection to the hub closed")
        except AgoraError as e:
            failure = e
        finally:
            if sub is not None:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
            self.finish(failure)

    async def _stop(self) -> None:
        if not self._pump.done():
            self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump


__all__ = [
    "DEFAULT_AD_TTL_S",
    "DEFAULT_MARKET_BUCKET",
    "NatsMarketIndex",
    "did_of_key",
    "kv_delete",
    "kv_put",
    "kv_snapshot",
    "kv_value",
    "market_key",
]
