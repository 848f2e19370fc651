"""Routes for what this node asks of the market: intents (POST/GET /intents, GET /intents/{id}, POST
/intents/{id}/transition) and matching them (POST /match, `preview: true` for a dry run).

An intent is validated by `agora.models.intent` and `agora.market.intents` (`intent_invalid`, 400, naming
the field in details.field; `intent_kind_unsupported` for the reserved kinds); the status workflow is
enforced by the intent book (`intent_transition_invalid`, 409, naming the allowed moves). A request may
only open or cancel an intent: matched, fulfilled and expired are the node's word."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, Field

from agora.node import Node
from agora.node.compute import compute_of


class TransitionBody(BaseModel):
    status: str = Field(description="open or cancelled")
    cause: str = Field("", max_length=500, description="why, for the intent's history")


class MatchBody(BaseModel):
    intent_id: str = Field(description="an open intent of this node")
    preview: bool = Field(False, description="matching only: no bid request, no reservation, nothing stored")
    base_dirs: list[str] | None = Field(
        None, description="where the job's relative paths are read (default: at creation)"
    )
    wait: float = Field(30.0, gt=0, le=120, description="how long to wait for the placement (seconds)")


def router(node: Node) -> APIRouter:
    app = APIRouter()

    @app.post("/intents", tags=["intents"], status_code=201)
    async def create(
        body: dict[str, Any] = Body(..., description="an intent: kind, job, budget, policy, validity; open: true"),
    ) -> dict[str, Any]:
        """Keep an intent (a draft, or open with `open: true`); what it leaves out is filled in."""
        return await compute_of(node).intents.create(body, source="api")

    @app.get("/intents", tags=["intents"])
    async def intents(
        status: str | None = Query(None, description="draft, open, matched, fulfilled, cancelled or expired"),
        limit: int = Query(100, ge=1, le=1000),
    ) -> dict[str, Any]:
        """This node's intents, newest first (those past their validity are expired first)."""
        return {"intents": await compute_of(node).intents.list(status=status, limit=limit)}

    @app.get("/intents/{intent_id}", tags=["intents"])
    async def show(intent_id: str) -> dict[str, Any]:
        """One intent with its history, its jobs, contracts and the last match's outcome."""
        return await compute_of(node).intents.show(intent_id)

    @app.post("/intents/{intent_id}/transition", tags=["intents"])
    async def transition(intent_id: str, body: TransitionBody) -> dict[str, Any]:
        """Open or cancel an intent; any other move is `intent_transition_invalid` naming the allowed ones."""
        cause = body.cause or f"{body.status} (api)"
        return await compute_of(node).intents.transition(intent_id, body.status, cause=cause, by_user=True)

    @app.post("/match", tags=["intents"])
    async def match(body: MatchBody) -> dict[str, Any]:
        """Match an open intent on the market: its contract(s), or the rejection reasons with counts (incl.
        `budget_rejections`). `preview: true` reads the index and matches only: nothing changes anywhere."""
        matcher = compute_of(node).matcher
        if body.preview:
            return await matcher.preview(body.intent_id)
        return await matcher.match(body.intent_id, base_dirs=body.base_dirs, wait_s=body.wait)

    return app


__all__ = ["router"]
