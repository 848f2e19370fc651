"""Routes about trust: this node's view of the providers it dealt with (GET /trust, GET /trust/{did}).

The scores are the requester's own, computed from the evidence it recorded (docs/market.md "Trust"): a
provider it never dealt with scores the prior, and is no error."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Query

from agora.identity import public_from_did
from agora.node import Node
from agora.node.compute import compute_of

MAX_RECORDS_SHOWN = 1000


def router(node: Node) -> APIRouter:
    app = APIRouter()

    @app.get("/trust", tags=["trust"])
    async def trust_all() -> dict[str, Any]:
        """Every provider this node holds evidence or a latency estimate about: score, breakdown, penalty."""
        book = compute_of(node).trust_book
        now = node.clock.now()
        return {
            "now": now,
            "settings": dataclasses.asdict(book.settings),
            "providers": [r.to_dict(now) for r in book.reports(now)],
        }

    @app.get("/trust/{did}", tags=["trust"])
    async def trust_one(
        did: str,
        records: int = Query(20, ge=0, le=MAX_RECORDS_SHOWN, description="how many of the newest records to list"),
    ) -> dict[str, Any]:
        """One provider's score with its breakdown, its penalty, and its newest evidence records (each citing
        the signed receipt, award or event it comes from)."""
        public_from_did(did)  # did_invalid / did_unsupported
        book = compute_of(node).trust_book
        now = node.clock.now()
        kept = book.records(did)
        shown = kept[-records:] if records else []
        return book.report(did, now).to_dict(now) | {
            "records": [r.to_dict() for r in reversed(shown)],
            "records_kept": len(kept),
        }

    return app
