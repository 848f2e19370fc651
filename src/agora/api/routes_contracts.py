"""Routes for this node's market contracts (GET /contracts, GET /contracts/{id}, POST
/contracts/{id}/release|refund|dispute) and the marketplace snapshot (GET /metrics_summary).

A second release is `contract_already_released`, a refund after a release `contract_already_settled`,
anything on a disputed contract `contract_disputed` (each 409); a contract of a node without settlement
moved no money (`contract_invalid_state`). The rules are `agora.orchestrator.settle`'s."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from agora.node import Node
from agora.node.compute import compute_of
from agora.node.fl import fl_of
from agora.node.inference import inference_of


class ReleaseBody(BaseModel):
    amount: int | None = Field(None, ge=0, description="minor units (default: the price); less is a partial release")


class ReasonBody(BaseModel):
    reason: str = Field("", max_length=500)


def router(node: Node) -> APIRouter:
    app = APIRouter()

    @app.get("/contracts", tags=["contracts"])
    async def contracts(
        state: str | None = Query(None, description="a contract state (created, escrow_locked, ... refunded)"),
        job_id: str | None = Query(None),
        intent_id: str | None = Query(None),
        limit: int = Query(100, ge=1, le=10_000),
    ) -> dict[str, Any]:
        """This node's contracts, newest first."""
        found = await compute_of(node).contracts.list(state=state, job_id=job_id, intent_id=intent_id, limit=limit)
        return {"contracts": [c.to_dict() for c in found]}

    @app.get("/contracts/{contract_id}", tags=["contracts"])
    async def show(contract_id: str) -> dict[str, Any]:
        """One contract: parties, terms, price, escrow and its timeline with the evidence of each event."""
        return (await compute_of(node).contracts.get(contract_id)).to_dict()

    @app.post("/contracts/{contract_id}/release", tags=["contracts"])
    async def release(contract_id: str, body: ReleaseBody) -> dict[str, Any]:
        """Countersign the provider's usage receipt and release the escrow (all of it, or `amount`)."""
        return (await compute_of(node).settler.release(contract_id, amount=body.amount, note="api")).to_dict()

    @app.post("/contracts/{contract_id}/refund", tags=["contracts"])
    async def refund(contract_id: str, body: ReasonBody) -> dict[str, Any]:
        """Give the escrow back to this node (before a delivery: a delivered contract is disputed instead)."""
        return (await compute_of(node).settler.refund(contract_id, reason=body.reason or "refund (api)")).to_dict()

    @app.post("/contracts/{contract_id}/dispute", tags=["contracts"])
    async def dispute(contract_id: str, body: ReasonBody) -> dict[str, Any]:
        """Freeze the escrow until the hub operator resolves it (the reason is recorded)."""
        return (await compute_of(node).settler.dispute(contract_id, reason=body.reason or "disputed (api)")).to_dict()

    @app.get("/metrics_summary", tags=["market"])
    async def metrics_summary() -> dict[str, Any]:
        """The marketplace as this node sees it: offers, providers in the index, intents by status, contracts
        by state, escrow locked and released, match success rate and top rejection reasons."""
        summary = await compute_of(node).market_summary() | inference_of(node).summary()
        return {**summary, "training": await fl_of(node).manager.summary()}

    return app


__all__ = ["router"]
