"""The hub's index of capacity ads: providers publish, requesters read and watch (instead of broadcasting).

The hub is not trusted. Whatever it stores or returns, a reader opens every ad itself (`AdVerifier`):
the signature must verify against the provider named in the ad, the ad must be filed under that
provider's key, and its sequence number must not go back (`check_newer`). A forged, mis-filed or
replayed ad is ignored, counted (`stats`), and the last good ad of that provider is kept, so a hub that
rolls an ad back or swaps in a forgery cannot change what the requester matches against.

`MarketIndex` is the interface; `MemoryMarketIndex` keeps the raw signed bytes in a dict (one entry per
provider, the newest) and is what tests and the simulator use. The NATS JetStream KV implementation
(one key per provider DID in a bucket on the hub) is `index_nats.NatsMarketIndex`; the conformance suite in
tests/unit/market/index_conformance.py is written so that it runs unchanged against it.

A `watch()` yields each provider's newest verified ad as it changes, current ads first. Updates are
coalesced per provider: a slow watcher sees the latest ad of each provider, never a backlog of stale
ones, so its memory is bounded by the number of providers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import MappingProxyType, TracebackType
from typing import Protocol

from agora.errors import AgoraError
from agora.wire.market import CapacityAd, check_newer

COUNTERS = ("accepted", "forged", "replayed")


class AdVerifier:
    """A reader's view of the ads it has verified: the newest good ad per provider, and counts."""

    def __init__(self) -> None:
        self._latest: dict[str, CapacityAd] = {}
        self._seen: dict[str, bytes] = {}  # the bytes last read under each key: judged once, counted once
        self._gone: dict[str, CapacityAd] = {}  # withdrawn: a hub re-inserting an older ad is still a replay
        self._counts = dict.fromkeys(COUNTERS, 0)

    @property
    def latest(self) -> Mapping[str, CapacityAd]:
        return MappingProxyType(self._latest)

    @property
    def stats(self) -> Mapping[str, int]:
        return MappingProxyType(self._counts)

    def offer(self, raw: bytes, *, key: str | None = None) -> CapacityAd | None:
        """The ad if it is new and good; None if it is what this key held last time, or (counted) forged,
        mis-filed or replayed."""
        if key is not None:
            if self._seen.get(key) == raw:
                return None
            self._seen[key] = raw
        try:
            ad = CapacityAd.open(raw)
        except AgoraError:
            self._counts["forged"] += 1
            return None
        if key is not None and ad.provider != key:
            self._counts["forged"] += 1  # a good ad of one provider filed under another's key
            return None
        try:
            newer = check_newer(ad, self._latest.get(ad.provider) or self._gone.get(ad.provider))
        except AgoraError:
            self._counts["replayed"] += 1
            return None
        if not newer:
            return None
        self._latest[ad.provider] = ad
        self._gone.pop(ad.provider, None)
        self._counts["accepted"] += 1
        return ad

    def forget(self, provider: str) -> None:
        """The provider's ad is gone from the index; its sequence number is remembered."""
        gone = self._latest.pop(provider, None)
        if gone is not None:
            self._gone[provider] = gone
        self._seen.pop(provider, None)


class AdWatch(Protocol):
    """An async iterator of verified ads (one provider's newest at a time), closed with `aclose`."""

    @property
    def stats(self) -> Mapping[str, int]: ...

    def __aiter__(self) -> AdWatch: ...

    async def __anext__(self) -> CapacityAd: ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> AdWatch: ...

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class MarketIndex(Protocol):
    async def publish(self, raw: bytes) -> CapacityAd:
        """Store a provider's signed ad. Raises `ad_invalid` (forged, malformed) or `ad_replayed` (older
        than, or conflicting with, the stored one); the very same ad again is accepted and changes nothing."""
        ...

    async def ads(self) -> list[CapacityAd]:
        """Every provider's newest ad that verifies (by provider DID); bad entries are skipped and counted."""
        ...

    async def get(self, provider: str) -> CapacityAd | None: ...

    async def withdraw(self, provider: str) -> None:
        """Remove a provider's ad (it leaves the market); idempotent."""
        ...

    def watch(self) -> AdWatch: ...

    @property
    def stats(self) -> Mapping[str, int]:
        """What this reader has accepted and ignored: accepted, forged, replayed (each distinct bytes once)."""
        ...

    async def close(self) -> None: ...


class _MemoryWatch:
    def __init__(self, index: MemoryMarketIndex) -> None:
        self._index = index
        self._verifier = AdVerifier()
        self._pending: dict[str, None] = dict.fromkeys(sorted(index._store))  # current ads first
        self._wake = asyncio.Event()
        self._closed = False

    @property
    def stats(self) -> Mapping[str, int]:
        return self._verifier.stats

    def _notify(self, provider: str) -> None:
        self._pending[provider] = None
        self._wake.set()

    def __aiter__(self) -> _MemoryWatch:
        return self

    async def __anext__(self) -> CapacityAd:
        while not self._closed:  # each turn consumes one pending provider or waits for a notification
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            provider = next(iter(self._pending))
            del self._pending[provider]
            raw = self._index._store.get(provider)
            if raw is None:
                self._verifier.forget(provider)
                continue
            ad = self._verifier.offer(raw, key=provider)
            if ad is not None:
                return ad
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self._closed = True
        self._wake.set()
        self._index._watches.discard(self)

    async def __aenter__(self) -> _MemoryWatch:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class MemoryMarketIndex:
    """The index in memory: raw signed ads by provider DID (what the hub would hold), verified on read."""

    def __init__(self) -> None:
        self._store: dict[str, bytes] = {}
        self._reader = AdVerifier()
        self._watches: set[_MemoryWatch] = set()
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise AgoraError("unavailable", "the market index is closed")

    async def publish(self, raw: bytes) -> CapacityAd:
        self._check_open()
        ad = CapacityAd.open(raw)
        last = self._stored(ad.provider)
        if check_newer(ad, last):
            self._put(ad.provider, ad.raw)
        return ad

    def _stored(self, key: str) -> CapacityAd | None:
        """What the store holds for `key`, if it verifies (a damaged entry never blocks a good publish)."""
        raw = self._store.get(key)
        try:
            return CapacityAd.open(raw, expected_signer=key) if raw is not None else None
        except AgoraError:
            return None

    def _put(self, key: str, raw: bytes) -> None:
        """Write bytes under a key as the hub does (tests use it to play a hostile hub)."""
        self._store[key] = raw
        for w in list(self._watches):
            w._notify(key)

    async def ads(self) -> list[CapacityAd]:
        self._check_open()
        for key in [k for k in self._reader.latest if k not in self._store]:
            self._reader.forget(key)
        for key, raw in sorted(self._store.items()):
            self._reader.offer(raw, key=key)
        return [self._reader.latest[k] for k in sorted(self._reader.latest)]

    async def get(self, provider: str) -> CapacityAd | None:
        self._check_open()
        raw = self._store.get(provider)
        if raw is None:
            self._reader.forget(provider)
            return None
        self._reader.offer(raw, key=provider)
        return self._reader.latest.get(provider)

    async def withdraw(self, provider: str) -> None:
        self._check_open()
        if self._store.pop(provider, None) is not None:
            for w in list(self._watches):
                w._notify(provider)

    def watch(self) -> _MemoryWatch:
        self._check_open()
        w = _MemoryWatch(self)
        self._watches.add(w)
        return w

    @property
    def stats(self) -> Mapping[str, int]:
        return self._reader.stats

    async def close(self) -> None:
        self._closed = True
        for w in list(self._watches):
            await w.aclose()


__all__ = ["COUNTERS", "AdVerifier", "AdWatch", "MarketIndex", "MemoryMarketIndex"]
