"""Routes about the compute market as this node sees it: the hub's index of capacity ads, verified here."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from agora.errors import AgoraError
from agora.node import Node
from agora.node.compute import compute_of
from agora.wire.market import CapacityAd


def ad_view(ad: CapacityAd, now: float) -> dict[str, Any]:
    """One provider's ad for people and scripts: free capacity, prices, executors, age and staleness."""
    free = ad.free.to_dict()
    return {
        "provider": ad.provider,
        "seq": ad.seq,
        "iat": ad.iat,
        "age_s": round(max(0.0, now - ad.iat), 3),
        "ttl_s": ad.ttl_s,
        "expires_at": ad.expires_at,
        "stale": now >= ad.expires_at,
        "version": ad.version,
        "offer_id": ad.offer.offer_id,
        "price": ad.offer.price.to_dict(),
        "terms": ad.offer.terms.to_dict(),
        "free": free,
        "executors": {name: {"available": s.available, "reason": s.reason} for name, s in ad.executors.items()},
        "benchmark_score": ad.benchmark_score,
        "labels": dict(ad.free.labels),
        "location": ad.free.location,
    }


def router(node: Node) -> APIRouter:
    app = APIRouter()

    @app.get("/market", tags=["market"])
    async def market() -> dict[str, Any]:
        """Every provider's newest ad in the hub's market index that verifies (forged or replayed entries are
        skipped and counted in `ignored`), with each ad's age and whether it is stale; `self` is this node's
        own publisher (null when it does not advertise)."""
        c = compute_of(node)
        index = c.market_index
        if index is None:
            raise AgoraError("unavailable", "this node has no market index (the memory transport has no hub)")
        ads = await index.ads()
        now = node.clock.now()
        return {
            "did": node.did,
            "bucket": node.config.ads.bucket,
            "now": now,
            "providers": [ad_view(ad, now) for ad in ads],
            "accepted": index.stats["accepted"],
            "ignored": {k: v for k, v in index.stats.items() if k != "accepted"},
            "self": c.advertiser.status() if c.advertiser is not None else None,
        }

    return app
