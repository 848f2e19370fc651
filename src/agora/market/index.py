"""The hub's index of capacity ads: providers publish, requesters read and watch (instead of broadcasting).

The hub is not trusted. Whatever it stores or returns, a reader opens every ad itself (`AdVerifier`):
the signature must verify against the provider named in the ad, the ad must be filed under that
provider's key, and its sequence number must not go back (`check_newer`). A forged, mis-filed or
replayed ad is ignored, counted (`stats`), and the last good ad of that provider is kept, so a hub that
rolls an ad back or swaps in a forgery cannot change what the requester matches against.

`MarketIndex` is the interface. `IndexReader` is the one reader both implementations share (publish,
`ads`, `get`, stats, close, and `IndexWatch`): an implementation only gives its store's primitives (read a
key, snapshot every key, write a key, DID <-> key), so the memory and NATS indexes run the same
verification code. `MemoryMarketIndex` keeps the raw signed bytes in a dict (one entry per provider, the
newest) and is what tests and the simulator use. The NATS JetStream KV implementation (one key per
provider DID in a bucket on the hub) is `index_nats.NatsMarketIndex`; the conformance suite in
tests/unit/market/index_conformance.py runs unchanged against both.

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
        # not newer than the ad this reader last saw gone (a read that missed its key, or a hub serving it
        # again): the same bytes are the same ad, which a hub could as well have kept serving, so it is current
        # again (an older one after the gap is still a replay, above); not newer than the current one: nothing
        if not newer and self._gone.get(ad.provider) is None:
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


class IndexWatch:
    """A watch over any index built on `IndexReader`: keys noted as changed (coalesced, current ones first),
    each read and verified when the watcher asks for the next ad, so a slow watcher never holds a backlog.
    Its own `AdVerifier`: what one watcher has seen never changes what another, or `ads()`, accepts.
    A wait that is cancelled (a watcher's own timeout) or whose read fails keeps the key pending for the
    next wait. A store that follows changes with a task of its own (NATS) feeds `notify` and ends with `finish`."""

    def __init__(self, index: IndexReader, current: list[str] | None = None) -> None:
        self._index = index
        self._verifier = AdVerifier()
        self._pending: dict[str, None] = dict.fromkeys(current or ())
        self._wake = asyncio.Event()
        self._closed = False
        self._ended = False
        self._failure: AgoraError | None = None

    @property
    def stats(self) -> Mapping[str, int]:
        return self._verifier.stats

    def notify(self, key: str) -> None:
        """The store's value under `key` changed (or is gone); read when the watcher gets to it."""
        self._pending[key] = None
        self._wake.set()

    def finish(self, failure: AgoraError | None = None) -> None:
        """No more changes will come (the follower ended): pending keys are still served, then the end or
        `failure` is raised."""
        self._ended = True
        self._failure = failure
        self._wake.set()

    def __aiter__(self) -> IndexWatch:
        return self

    async def __anext__(self) -> CapacityAd:
        while not self._closed:  # each turn consumes one pending key or waits for a change
            if not self._pending:
                if self._failure is not None:
                    raise self._failure
                if self._ended:
                    break
                self._wake.clear()
                await self._wake.wait()
                continue
            key = next(iter(self._pending))
            del self._pending[key]
            provider = self._index._provider(key)
            try:
                raw = await self._index._raw(key)
            except BaseException:  # a wait cancelled (a watcher's timeout) or a failed read loses no change
                self._pending = {key: None, **self._pending}
                raise
            if raw is None:
                self._verifier.forget(provider)
                continue
            ad = self._verifier.offer(raw, key=provider)
            if ad is not None:
                return ad
        raise StopAsyncIteration

    async def _stop(self) -> None:
        """Stop following the store (a subclass with a follower task cancels and awaits it)."""

    async def aclose(self) -> None:
        self._closed = True
        self._wake.set()
        self._index._watches.discard(self)
        await self._stop()

    async def __aenter__(self) -> IndexWatch:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class IndexReader:
    """What every `MarketIndex` over a key-value store shares: publish, read, get, stats and close run the
    same verification (`AdVerifier`) whatever holds the bytes. A store gives the primitives: `_raw(key)`,
    `_snapshot()` (every key's current bytes), `_write(key, raw)`, and the mapping between a provider DID
    and its key (`_key`, `_provider`; the identity by default); `withdraw` and `watch` are its own."""

    def __init__(self) -> None:
        self._reader = AdVerifier()
        self._watches: set[IndexWatch] = set()
        self._closed = False

    # ---- the store's primitives ----

    async def _raw(self, key: str) -> bytes | None:
        """The bytes the store holds under `key` now (None: no ad)."""
        raise NotImplementedError

    async def _snapshot(self) -> dict[str, bytes]:
        """Every key's current bytes."""
        raise NotImplementedError

    async def _write(self, key: str, raw: bytes) -> None:
        """Write bytes under a key as any writer of the store can (tests use it to play a hostile hub)."""
        raise NotImplementedError

    def _key(self, provider: str) -> str:
        return provider

    def _provider(self, key: str) -> str:
        return key

    # ---- shared: every read is verified here ----

    def _check_open(self) -> None:
        if self._closed:
            raise AgoraError("unavailable", "the market index is closed")

    async def _stored(self, provider: str) -> CapacityAd | None:
        """What the store holds for `provider`, if it verifies (a damaged entry never blocks a good publish)."""
        raw = await self._raw(self._key(provider))
        try:
            return CapacityAd.open(raw, expected_signer=provider) if raw is not None else None
        except AgoraError:
            return None

    async def publish(self, raw: bytes) -> CapacityAd:
        self._check_open()
        ad = CapacityAd.open(raw)
        if check_newer(ad, await self._stored(ad.provider)):
            await self._write(self._key(ad.provider), ad.raw)
        return ad

    async def ads(self) -> list[CapacityAd]:
        self._check_open()
        current = {self._provider(k): v for k, v in (await self._snapshot()).items()}
        for provider in [p for p in self._reader.latest if p not in current]:
            self._reader.forget(provider)
        for provider, raw in sorted(current.items()):
            self._reader.offer(raw, key=provider)
        return [self._reader.latest[p] for p in sorted(self._reader.latest)]

    async def get(self, provider: str) -> CapacityAd | None:
        self._check_open()
        raw = await self._raw(self._key(provider))
        if raw is None:
            self._reader.forget(provider)
            return None
        self._reader.offer(raw, key=provider)
        return self._reader.latest.get(provider)

    @property
    def stats(self) -> Mapping[str, int]:
        return self._reader.stats

    async def close(self) -> None:
        self._closed = True
        for w in list(self._watches):
            await w.aclose()


class MemoryMarketIndex(IndexReader):
    """The index in memory: raw signed ads by provider DID (what the hub would hold), verified on read."""

    def __init__(self) -> None:
        super().__init__()
        self._store: dict[str, bytes] = {}

    async def _raw(self, key: str) -> bytes | None:
        return self._store.get(key)

    async def _snapshot(self) -> dict[str, bytes]:
        return dict(self._store)

    async def _write(self, key: str, raw: bytes) -> None:
        self._put(key, raw)

    def _put(self, key: str, raw: bytes) -> None:
        """Write bytes under a key as the hub does (tests use it to play a hostile hub)."""
        self._store[key] = raw
        for w in list(self._watches):
            w.notify(key)

    async def withdraw(self, provider: str) -> None:
        self._check_open()
        if self._store.pop(provider, None) is not None:
            for w in list(self._watches):
                w.notify(provider)

    def watch(self) -> IndexWatch:
        self._check_open()
        w = IndexWatch(self, sorted(self._store))  # current ads first
        self._watches.add(w)
        return w


__all__ = ["COUNTERS", "AdVerifier", "AdWatch", "IndexReader", "IndexWatch", "MarketIndex", "MemoryMarketIndex"]
