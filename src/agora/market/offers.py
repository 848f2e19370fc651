"""The provider's offer book: the offers this node sells under, kept in the node's store.

An operator creates an offer from a file (`agora offer create FILE`, POST /offers) or from the machine
(`--from-node`, and a node started with `--sell` does it at start: `default_offer`), lists, shows and
withdraws it. Every offer is validated by `agora.models.offer` (`offer_invalid` naming the field); what the
operator leaves out of a file is filled in: `provider` (this node; another DID is refused), `offer_id`,
`valid_from` (now) and `valid_until` (`DEFAULT_VALIDITY_S` later).

The bidder reads the book synchronously (`get`, `active`): the offers are kept decoded in memory as well
as in the store, loaded at start (`load`). A withdrawn offer stays in the store (state `withdrawn`) so
`offer show` can still say what was sold; it takes no new bid requests. Each change is one store
transaction with its event (`offer.created`, `offer.withdrawn`).
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from agora.clock import SYSTEM_CLOCK, Clock
from agora.errors import AgoraError
from agora.models.capability import Capability, PriceSchedule
from agora.models.offer import (
    AccessPolicy,
    Offer,
    OfferTerms,
    PriceTerms,
    ResourceOffer,
    offer_from_dict,
    offered_resources,
)
from agora.store import Store

COLLECTION = "offers"
ACTIVE = "active"
WITHDRAWN = "withdrawn"
DEFAULT_VALIDITY_S = 30 * 24 * 3600
MAX_ACTIVE = 64  # offers one node sells under at once
MAX_KEPT = 1024  # offers the book reads back at start (withdrawn ones included)

# Default prices (integer minor units): 1 per core-second, 1 per GiB-second of memory, 100 per GPU-second,
# at least 10 a job. A starting point an operator edits, not a market rate.
DEFAULT_PRICES = PriceSchedule(cpu_second=1, memory_gib_second=1, gpu_second=100, minimum=10)
# What the operator keeps for the machine itself when it sells from the node: half a core, 512 MiB.
DEFAULT_RESERVE = Capability(cpu_millis=500, memory_bytes=512 * 1024 * 1024)


def default_reserve(detected: Capability) -> Capability:
    """`DEFAULT_RESERVE`, capped so a small machine still has something to sell (at most half of each)."""
    return Capability(
        cpu_millis=min(DEFAULT_RESERVE.cpu_millis, detected.cpu_millis // 2),
        memory_bytes=min(DEFAULT_RESERVE.memory_bytes, detected.memory_bytes // 2),
    )


def default_offer(
    provider: str,
    detected: Capability,
    *,
    now: float,
    reserve: Capability | None = None,
    offer_id: str | None = None,
    validity_s: int = DEFAULT_VALIDITY_S,
) -> ResourceOffer:
    """The offer a node sells under when its operator says only `--sell`: the machine minus a reserve, every
    engine it has, open to anyone, no duration bound, default prices."""
    resources = offered_resources(detected, reserve if reserve is not None else default_reserve(detected))
    resources = dataclasses.replace(resources, price=None, trust=None, latency_ms=None, benchmark_score=None)
    start = int(now)
    return ResourceOffer(
        offer_id=offer_id or new_offer_id(),
        provider=provider,
        resources=resources,
        price=PriceTerms(DEFAULT_PRICES),
        terms=OfferTerms(access=AccessPolicy()),
        valid_from=start,
        valid_until=start + validity_s,
    )


def new_offer_id() -> str:
    return "offer-" + secrets.token_hex(6)


class OfferBook:
    def __init__(self, store: Store, provider: str, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.store = store
        self.provider = provider
        self.clock = clock
        self._docs: dict[str, dict[str, Any]] = {}
        self._offers: dict[str, Offer] = {}
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        """Called after an offer starts or stops being sold (the capacity ad carries the newest active one)."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    async def load(self) -> int:
        """Read the book back at start; an offer that no longer validates is kept in the store but not sold."""
        for doc in await self.store.query(COLLECTION, limit=MAX_KEPT):
            try:
                offer = offer_from_dict(doc["offer"])
            except (AgoraError, KeyError, TypeError):
                continue
            self._docs[offer.offer_id] = doc
            if doc.get("state") == ACTIVE:
                self._offers[offer.offer_id] = offer
        return len(self._offers)

    # -- reads (synchronous: the bidder answers from memory) -----------------------------------
    def get(self, offer_id: str) -> Offer | None:
        """The active offer `offer_id`, or None (unknown or withdrawn)."""
        return self._offers.get(offer_id)

    def active(self) -> list[ResourceOffer]:
        """Active resource offers valid now, newest first."""
        now = self.clock.now()
        out = [o for o in self._offers.values() if isinstance(o, ResourceOffer) and o.is_valid_at(now)]
        return sorted(out, key=lambda o: (-o.valid_from, o.offer_id))

    def list(self, *, state: str | None = None) -> list[dict[str, Any]]:
        docs = [d for d in self._docs.values() if state is None or d.get("state") == state]
        return sorted(docs, key=lambda d: (-float(d.get("created_at", 0)), str(d["offer"]["offer_id"])))

    def show(self, offer_id: str) -> dict[str, Any]:
        doc = self._docs.get(offer_id)
        if doc is None:
            raise AgoraError(
                "offer_not_found", f"no offer {offer_id!r} on this node", hint="`agora offer list` shows them."
            )
        return doc

    # -- changes -------------------------------------------------------------------------------
    async def create(self, data: Mapping[str, Any], *, source: str = "file") -> dict[str, Any]:
        """Validate `data` (filling in what it leaves out) and start selling under it."""
        if not isinstance(data, Mapping):
            raise AgoraError("offer_invalid", "an offer is an object", details={"field": "offer", "errors": []})
        now = int(self.clock.now())
        filled = dict(data)
        filled.setdefault("kind", "resources")
        filled.setdefault("provider", self.provider)
        filled.setdefault("offer_id", new_offer_id())
        filled.setdefault("valid_from", now)
        if "valid_until" not in filled:
            start = filled["valid_from"]
            base = start if isinstance(start, int) and not isinstance(start, bool) else now
            filled["valid_until"] = base + DEFAULT_VALIDITY_S
        offer = offer_from_dict(filled)  # offer_invalid, naming the field
        return await self.add(offer, source=source)

    async def add(self, offer: Offer, *, source: str = "file") -> dict[str, Any]:
        if offer.provider != self.provider:
            raise AgoraError(
                "offer_invalid",
                f"provider: an offer of this node is signed by it ({self.provider}), not {offer.provider}",
                hint="Leave `provider` out of the file; the node fills it in.",
                details={"field": "provider", "errors": [{"path": "provider", "expected": self.provider}]},
            )
        if offer.offer_id in self._docs:
            raise AgoraError("already_exists", f"offer {offer.offer_id!r} already exists on this node")
        if len(self._offers) >= MAX_ACTIVE:
            raise AgoraError(
                "offer_limit_reached",
                f"this node already sells under {len(self._offers)} offers (at most {MAX_ACTIVE})",
                hint="Withdraw one first: `agora offer withdraw ID` (`agora offer list` shows them).",
                details={"limit": MAX_ACTIVE, "offers": len(self._offers)},
            )
        doc = {
            "offer_id": offer.offer_id,
            "kind": offer.kind,
            "state": ACTIVE,
            "source": source,
            "created_at": self.clock.now(),
            "withdrawn_at": None,
            "offer": offer.to_dict(),
        }
        async with self.store.transaction():
            await self.store.put(COLLECTION, offer.offer_id, doc)
            await self.store.append_event("offer.created", offer.offer_id, {"kind": offer.kind, "source": source})
        self._docs[offer.offer_id] = doc
        self._offers[offer.offer_id] = offer
        self._changed()
        return doc

    async def withdraw(self, offer_id: str) -> dict[str, Any]:
        """Stop selling under `offer_id` (idempotent: a withdrawn offer stays withdrawn)."""
        doc = self.show(offer_id)
        if doc["state"] == WITHDRAWN:
            return doc
        new = {**doc, "state": WITHDRAWN, "withdrawn_at": self.clock.now()}
        async with self.store.transaction():
            await self.store.put(COLLECTION, offer_id, new)
            await self.store.append_event("offer.withdrawn", offer_id, {})
        self._docs[offer_id] = new
        self._offers.pop(offer_id, None)
        self._changed()
        return new


__all__ = [
    "ACTIVE",
    "COLLECTION",
    "DEFAULT_PRICES",
    "DEFAULT_RESERVE",
    "DEFAULT_VALIDITY_S",
    "WITHDRAWN",
    "OfferBook",
    "default_offer",
    "default_reserve",
    "new_offer_id",
]
