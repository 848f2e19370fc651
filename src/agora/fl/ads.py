"""Data ads in the hub's market index: providers publish their signed `DataAd`, owners read every ad there.

The hub keeps data ads in a key-value bucket of its own (`DEFAULT_DATA_BUCKET`, beside the capacity ads'
bucket, with the same shape: one key per provider, `market_key(did)`, history 1, a TTL that drops the ads
of providers that stopped republishing). An open hub's first node creates it; an allowlisted hub creates it
at start and lets each member read every key and write only its own (`HubConfig.data_bucket`, the market
bucket's permissions). A separate bucket keeps the capacity index's readers from ever
seeing a data ad (they would count it as forged), and a data ad's own type tag keeps a capacity ad's
signature from passing for one.

The hub is not trusted, as for capacity ads: a reader opens every entry itself. The signature must verify
against the provider the key names, and a provider's `seq` must not go back (`check_newer_data`); a
forged, mis-filed or replayed entry is skipped and counted (`stats`), and the provider's last good ad is
kept. `MemoryDataIndex` holds the bytes in a dict (tests, the simulator); `NatsDataIndex` holds them in
the hub's JetStream bucket, over the node's own connection.

`DataAdvertiser` is the provider's side: it publishes the node's data ad when its data sets change and
before the TTL runs out, and withdraws it when the node offers none (or stops).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType

from nats.aio.client import Client as NatsClient
from nats.js.kv import KeyValue

from agora.errors import AgoraError
from agora.market.index_nats import kv_delete, kv_put, kv_snapshot, kv_value
from agora.transport.hub import ensure_market_bucket
from agora.transport.hub_config import DEFAULT_DATA_BUCKET, did_of_market_key, market_key
from agora.transport.nats_errors import map_nats_error
from agora.wire.fl import DataAd, check_newer_data

DEFAULT_DATA_TTL_S = 3600.0
COUNTERS = ("accepted", "forged", "replayed")
log = logging.getLogger("agora.fl.ads")


class DataIndex:
    """What every data index shares: publish, read and withdraw, every read verified here. A store gives
    `_raw(key)`, `_snapshot()`, `_write(key, raw)` and `_delete(key)`."""

    def __init__(self) -> None:
        self._latest: dict[str, DataAd] = {}
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._seen: dict[str, bytes] = {}  # the bytes last judged under each key: counted once

    async def _raw(self, key: str) -> bytes | None:
        raise NotImplementedError

    async def _snapshot(self) -> dict[str, bytes]:
        raise NotImplementedError

    async def _write(self, key: str, raw: bytes) -> None:
        raise NotImplementedError

    async def _delete(self, key: str) -> None:
        raise NotImplementedError

    @property
    def stats(self) -> Mapping[str, int]:
        return MappingProxyType(self._counts)

    async def publish(self, raw: bytes) -> DataAd:
        """Store a provider's signed data ad: `ad_invalid` (forged, malformed), `ad_replayed` (older than, or
        conflicting with, the stored one); the very same ad again changes nothing."""
        ad = DataAd.open(raw)
        stored_raw = await self._raw(market_key(ad.provider))
        stored = None
        if stored_raw is not None:
            with contextlib.suppress(AgoraError):  # a damaged entry never blocks a good publish
                stored = DataAd.open(stored_raw, expected_signer=ad.provider)
        if check_newer_data(ad, stored):
            await self._write(market_key(ad.provider), ad.raw)
        return ad

    async def withdraw(self, provider: str) -> None:
        """The provider offers no data set any more; idempotent."""
        await self._delete(market_key(provider))

    async def ads(self) -> list[DataAd]:
        """Every provider's newest data ad that verifies; bad entries skipped and counted."""
        current = {did_of_market_key(k): v for k, v in (await self._snapshot()).items()}
        for provider in [p for p in self._latest if p not in current]:
            del self._latest[provider]  # withdrawn or expired (its seq is not needed: the index is re-read)
            self._seen.pop(provider, None)  # so the same ad read again later is judged again, not skipped
        for provider, raw in sorted(current.items()):
            if self._seen.get(provider) == raw:
                continue
            self._seen[provider] = raw
            try:
                ad = DataAd.open(raw, expected_signer=provider)  # filed under its own provider's key only
            except AgoraError:
                self._counts["forged"] += 1
                continue
            try:
                newer = check_newer_data(ad, self._latest.get(provider))
            except AgoraError:
                self._counts["replayed"] += 1
                continue
            if newer:
                self._latest[provider] = ad
                self._counts["accepted"] += 1
        return [self._latest[p] for p in sorted(self._latest) if p in current]

    async def close(self) -> None:
        return None


class MemoryDataIndex(DataIndex):
    """The data index in memory: raw signed ads by key (what the hub would hold), verified on read."""

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[str, bytes] = {}

    async def _raw(self, key: str) -> bytes | None:
        return self.store.get(key)

    async def _snapshot(self) -> dict[str, bytes]:
        return dict(self.store)

    async def _write(self, key: str, raw: bytes) -> None:
        self.store[key] = raw

    async def _delete(self, key: str) -> None:
        self.store.pop(key, None)


class NatsDataIndex(DataIndex):
    """The data index in a JetStream KV bucket on the hub `nc` is connected to (created when missing, as
    an open hub allows; an allowlisted hub made it at start; the connection is the node's and is never
    closed here)."""

    def __init__(
        self,
        nc: NatsClient,
        bucket: str = DEFAULT_DATA_BUCKET,
        *,
        ttl_s: float = DEFAULT_DATA_TTL_S,
        timeout: float = 5.0,
    ) -> None:
        super().__init__()
        self._nc = nc
        self.bucket = bucket
        self._ttl_s = ttl_s
        self._timeout = timeout
        self._kv_handle: KeyValue | None = None
        self._lock = asyncio.Lock()

    async def _kv(self) -> KeyValue:
        async with self._lock:
            if self._kv_handle is None:
                try:
                    js = self._nc.jetstream(timeout=self._timeout)
                    self._kv_handle = await ensure_market_bucket(js, self.bucket, ttl_s=self._ttl_s, replicas=1)
                except Exception as e:
                    raise map_nats_error(e, f"data-ad bucket {self.bucket}") from e
            return self._kv_handle

    async def _raw(self, key: str) -> bytes | None:
        return await kv_value(await self._kv(), key, what=f"data ad {key}")

    async def _write(self, key: str, raw: bytes) -> None:
        await kv_put(await self._kv(), key, raw, what=f"data ad {key}")

    async def _delete(self, key: str) -> None:
        await kv_delete(await self._kv(), key, what=f"data ad {key}")

    async def _snapshot(self) -> dict[str, bytes]:
        return await kv_snapshot(await self._kv(), what=f"data-ad bucket {self.bucket}")


class DataAdvertiser:
    """The provider's data ad in the index: published at start and whenever `changed()` is called (a data
    set added or removed), republished every `ttl_s / 2`, withdrawn when no data set is offered any more or
    at stop. Owns one task, which does every publish, so a hub that is slow or refuses the bucket never
    delays the node's start; a failed publish is logged and tried again at the next turn. A node that never
    published (it offers no data) never touches the index."""

    def __init__(
        self,
        index: DataIndex,
        make_ad: Callable[[], Awaitable[DataAd | None]],
        provider: str,
        *,
        ttl_s: float,
        stop_timeout_s: float = 2.0,
    ) -> None:
        self.index = index
        self.make_ad = make_ad
        self.provider = provider
        self.period_s = max(1.0, ttl_s / 2)
        self.stop_timeout_s = stop_timeout_s
        self.published = 0
        self._listed = False  # an ad of this process is in the index now
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def publish_now(self) -> None:
        ad = await self.make_ad()
        if ad is None:
            if self._listed:
                await self.index.withdraw(self.provider)
                self._listed = False
        else:
            await self.index.publish(ad.raw)
            self.published += 1
            self._listed = True

    def changed(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._wake.set()  # the first turn publishes at once
        self._task = asyncio.create_task(self._loop(), name="fl-data-ads")

    async def _loop(self) -> None:
        while True:  # ends when stop() cancels it; each turn waits for a change or the period
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.period_s)
            self._wake.clear()
            try:
                await self.publish_now()
            except AgoraError as err:
                log.warning("publishing the data ad failed: %s", err.message)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._listed:  # a clean stop takes the ad out (bounded: the hub may be gone already)
            with contextlib.suppress(AgoraError, TimeoutError):
                async with asyncio.timeout(self.stop_timeout_s):
                    await self.index.withdraw(self.provider)
            self._listed = False


__all__ = [
    "DEFAULT_DATA_BUCKET",
    "DataAdvertiser",
    "DataIndex",
    "MemoryDataIndex",
    "NatsDataIndex",
]
