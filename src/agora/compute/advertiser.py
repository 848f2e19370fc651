"""The provider's capacity ad publisher: a signed `CapacityAd` in the hub's market index, kept current.

What goes in an ad comes from one function the node passes in (`content()`: the offer, free capacity now,
executors with their availability, benchmark score), so the publisher knows nothing of where those come
from. `default_offer` builds the node's offer from its machine until an operator publishes one (offers).

- **Sequence numbers only go up, across restarts.** The next seq is written to the node's store before the
  ad is signed, so a crash after publishing never reuses a number (readers refuse an older or conflicting
  seq as a replay).
- **Republished when free capacity changes, debounced** (`debounce_s`: a burst of allocations starting and
  ending makes one ad), **and periodically** (`republish_s`, well inside the ad's and the bucket's TTL, so
  a live provider never expires while a dead one does).
- **Withdrawn on a clean stop** (bounded by `withdraw_timeout_s`); a provider that dies just expires.
- A failed publish (hub away, or a clustered hub that has not made its bucket yet) is logged and counted,
  never fatal: it is retried with a backoff (0.5 s doubling up to the period) or at the next change.
- The publisher owns its one task; `stop()` cancels and awaits it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from agora import __version__
from agora.clock import SYSTEM_CLOCK, Clock
from agora.identity import Keypair
from agora.market.index import MarketIndex
from agora.models.capability import Capability
from agora.models.offer import ResourceOffer
from agora.store import Store
from agora.wire.market import MAX_TEXT, CapacityAd, ExecutorState
from agora.wire.model_offer import ModelOffer

log = logging.getLogger("agora.compute.advertiser")

SEQ_COLLECTION = "market"
SEQ_ID = "ad_seq"
_RETRY_FIRST_S = 0.25  # after a failed publish: 0.5 s, 1 s, 2 s, ... up to the period
_BUCKET_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass
class AdvertiserSettings:
    """Capacity ads in the hub's market index (`--ads-*`, `AGORA_ADS_*`)."""

    enabled: bool = True  # publish this node's capacity ad
    bucket: str = "agora-market"  # the hub's market KV bucket (agora.transport.hub_config.DEFAULT_MARKET_BUCKET)
    ttl_s: int = 180  # an ad's lifetime; a hub this node runs keeps the bucket's entries as long
    republish_s: float | None = None  # republish at least this often (at most half the TTL; default a third)
    debounce_s: float = 0.5  # wait this long after a capacity change, so a burst makes one ad
    withdraw_timeout_s: float = 2.0  # longest wait for the withdrawal on a clean stop

    @property
    def period_s(self) -> float:
        """How often an unchanged ad is republished: `republish_s`, else a third of the TTL."""
        return self.republish_s if self.republish_s is not None else self.ttl_s / 3

    def __post_init__(self) -> None:
        if not _BUCKET_RE.fullmatch(self.bucket):
            raise ValueError(f"bucket {self.bucket!r}: 1-64 letters, digits, '-' or '_'")
        if self.ttl_s < 2:
            raise ValueError(f"ttl_s must be at least 2 seconds, got {self.ttl_s}")
        if self.republish_s is not None and not 0 < self.republish_s <= self.ttl_s / 2:
            raise ValueError(f"republish_s must be in (0, ttl_s/2 = {self.ttl_s / 2}], got {self.republish_s}")
        if not 0 <= self.debounce_s < self.period_s:
            raise ValueError(f"debounce_s must be in [0, republish_s), got {self.debounce_s}")
        if self.withdraw_timeout_s <= 0:
            raise ValueError(f"withdraw_timeout_s must be positive, got {self.withdraw_timeout_s}")


@dataclass(frozen=True)
class AdContent:
    """What one ad says besides who, when and which seq."""

    offer: ResourceOffer
    free: Capability
    executors: Mapping[str, ExecutorState]
    benchmark_score: float | None
    models: tuple[ModelOffer, ...] = ()  # inference model offers (node/inference.py adds them)


def market_view(cap: Capability) -> Capability:
    """A capability as an ad or offer carries it: no price, trust, latency or benchmark (the offer has the
    prices, the requester judges the rest)."""
    return replace(cap, price=None, trust=None, latency_ms=None, benchmark_score=None)


def executor_states(availability: Mapping[str, tuple[bool, str | None]]) -> dict[str, ExecutorState]:
    """Engine -> (available, reason) as the ad's executor states (reasons cut to what the wire accepts)."""
    return {
        name: ExecutorState(ok, None if ok else (reason or "unavailable")[:MAX_TEXT])
        for name, (ok, reason) in sorted(availability.items())
    }


class Advertiser:
    def __init__(
        self,
        keypair: Keypair,
        index: MarketIndex,
        content: Callable[[], AdContent | None],
        store: Store,
        *,
        settings: AdvertiserSettings | None = None,
        clock: Clock = SYSTEM_CLOCK,
        version: str = __version__,
    ) -> None:
        self._keypair = keypair
        self._index = index
        self._content = content
        self._store = store
        self.settings = settings or AdvertiserSettings()
        self._clock = clock
        self._version = version
        self._seq = 0
        self._dirty = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.last: CapacityAd | None = None
        self.published = 0
        self.failures = 0

    async def start(self) -> None:
        """Load the last seq and start publishing (the first ad goes out at once)."""
        doc = await self._store.get(SEQ_COLLECTION, SEQ_ID)
        self._seq = int(doc["seq"]) if doc is not None else 0
        self._dirty.set()
        self._task = asyncio.create_task(self._run(), name="market-advertiser")

    def changed(self) -> None:
        """Free capacity (or anything else in the ad) changed: republish after the debounce."""
        self._dirty.set()

    async def publish_now(self) -> CapacityAd | None:
        """Sign and publish the ad as things are now (raises what the index raises). With nothing to sell
        (`content` gives None: no active offer) the ad is taken out of the index instead. Returns once the
        index holds it, so a caller that changed what the ad says (`agora model add`) answers after the
        market can see it; a change noted before this call is in this ad (no second ad for it)."""
        async with self._lock:
            noted = self._dirty.is_set()
            self._dirty.clear()  # what changed so far is read now; a change from here on sets it again
            try:
                return await self._publish()
            except BaseException:
                if noted:  # the change is not out yet: the loop publishes it (its own failures back off)
                    self._dirty.set()
                raise

    async def _publish(self) -> CapacityAd | None:
        """Sign and publish one ad (the lock held)."""
        c = self._content()
        if c is None:
            if self.last is not None:
                await self._index.withdraw(self._keypair.did)
                self.last = None
            return None
        seq = self._seq + 1
        await self._store.put(SEQ_COLLECTION, SEQ_ID, {"seq": seq})  # before signing: never reused
        self._seq = seq
        ad = CapacityAd.issue(
            self._keypair,
            seq=seq,
            iat=int(self._clock.now()),
            ttl_s=self.settings.ttl_s,
            offer=c.offer,
            free=market_view(c.free),
            executors=c.executors,
            benchmark_score=c.benchmark_score,
            version=self._version,
            models=c.models,
        )
        await self._index.publish(ad.raw)
        self.last = ad
        self.published += 1
        return ad

    async def _run(self) -> None:
        """One ad per change (after the debounce) or per period; ends when `stop` cancels it."""
        first = True
        wait = self.settings.period_s
        while True:
            if not self._dirty.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._dirty.wait()
            if self._dirty.is_set() and not first:
                await asyncio.sleep(self.settings.debounce_s)  # let a burst of changes settle into one ad
            first = False
            self._dirty.clear()
            try:
                await self.publish_now()
                wait = self.settings.period_s
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the hub may be away (or its bucket not made yet): retry sooner, backing off
                self.failures += 1
                wait = min(self.settings.period_s, _RETRY_FIRST_S * 2 ** min(self.failures, 10))
                log.warning("could not publish the capacity ad (retry in %.1f s): %s", wait, exc)

    async def stop(self, *, withdraw: bool = True) -> None:
        """Stop publishing and (a clean stop) take the ad out of the index, waiting at most
        `withdraw_timeout_s`."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if withdraw and self.last is not None:
            try:
                async with asyncio.timeout(self.settings.withdraw_timeout_s):
                    await self._index.withdraw(self._keypair.did)
            except Exception as exc:  # the ad expires by itself at its TTL
                log.warning("could not withdraw the capacity ad: %s", exc)

    def status(self) -> dict[str, Any]:
        last = self.last
        return {
            "seq": self._seq,
            "published": self.published,
            "failures": self.failures,
            "last_iat": last.iat if last is not None else None,
        }


__all__ = [
    "AdContent",
    "Advertiser",
    "AdvertiserSettings",
    "executor_states",
    "market_view",
]
