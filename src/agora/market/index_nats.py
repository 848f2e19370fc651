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
from typing import Any

import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from agora.errors import AgoraError
from agora.market.index import IndexReader, IndexWatch
from agora.transport.hub import ensure_market_bucket
from agora.transport.hub_config import DEFAULT_MARKET_BUCKET, DEFAULT_MARKET_TTL_S, market_key
from agora.transport.hub_config import did_of_market_key as did_of_key

DEFAULT_AD_TTL_S = DEFAULT_MARKET_TTL_S
"""How long the bucket keeps an ad that is not republished (the stream's max age)."""
_SNAPSHOT_LIMIT_S = 10.0


def map_hub_error(e: BaseException, what: str) -> AgoraError:
    """A NATS error as agora's: refused by the hub's permissions, or the hub did not answer."""
    if isinstance(e, AgoraError):
        return e
    text = str(e).lower()
    if "permissions violation" in text or "authorization" in text:
        return AgoraError("hub_permission_denied", f"{what}: the hub refused it ({e})")
    return AgoraError("hub_unreachable", f"{what}: the hub did not answer ({type(e).__name__}: {e})")


async def kv_snapshot(kv: KeyValue, *, timeout: float, what: str) -> dict[str, bytes]:
    """Every key's current value in a KV bucket, read with one ordered consumer (deleted keys left out)."""
    found: dict[str, bytes] = {}
    try:
        async with asyncio.timeout(_SNAPSHOT_LIMIT_S):
            watcher: Any = await kv.watchall()  # nats-py's KeyWatcher is untyped
            try:
                while True:
                    entry = await watcher.updates(timeout=timeout)
                    if entry is None:  # the end of what the bucket held when the watch began
                        break
                    if entry.operation in (KV_DEL, KV_PURGE):
                        found.pop(entry.key, None)
                    else:
                        found[entry.key] = bytes(entry.value or b"")
            finally:
                await watcher.stop()
    except Exception as e:
        raise map_hub_error(e, what) from e
    return found


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
                    raise map_hub_error(e, f"market bucket {self.bucket}") from e
            return self._kv_handle

    async def _raw(self, key: str) -> bytes | None:
        """The bytes the hub holds under `key` now (None: no ad, deleted or expired)."""
        kv = await self._kv()
        try:
            entry = await kv.get(key)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None
        except Exception as e:
            raise map_hub_error(e, f"market ad {key}") from e
        if entry.operation in (KV_DEL, KV_PURGE):
            return None
        return bytes(entry.value or b"")

    async def _write(self, key: str, raw: bytes) -> None:
        """Write bytes under a key as any writer of the bucket can (tests use it to play a hostile hub)."""
        kv = await self._kv()
        try:
            await kv.put(key, raw)
        except Exception as e:
            raise map_hub_error(e, f"market ad {key}") from e

    async def _snapshot(self) -> dict[str, bytes]:
        return await kv_snapshot(await self._kv(), timeout=self._timeout, what=f"market bucket {self.bucket}")

    async def withdraw(self, provider: str) -> None:
        """Leave a tombstone under the provider's key (a node may write only its own key; purge is not
        granted on an allowlisted hub, and the TTL removes the tombstone)."""
        kv = await self._kv()
        try:
            await kv.delete(market_key(provider))
        except Exception as e:
            raise map_hub_error(e, f"market ad of {provider}") from e

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
        """Note each changed key (its value is read when the watcher asks): bounded by the number of keys."""
        watcher: Any = None
        failure: AgoraError | None = None
        try:
            kv = await self._nats._kv()
            try:
                watcher = await kv.watchall()
            except Exception as e:
                raise map_hub_error(e, f"market bucket {self._nats.bucket}") from e
            async for entry in watcher:
                if entry is None:
                    continue  # the end of the current keys: changes follow
                self.notify(entry.key)
        except AgoraError as e:
            failure = e
        finally:
            if watcher is not None:
                with contextlib.suppress(Exception):
                    await watcher.stop()
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
    "kv_snapshot",
    "map_hub_error",
    "market_key",
]
