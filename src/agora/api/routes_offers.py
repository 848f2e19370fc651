"""Routes about what this node sells: its offers (POST/GET/DELETE /offers, GET /offers/{id}).

An offer is validated by `agora.models.offer` (`offer_invalid`, 400, naming the field in details.field);
what the body leaves out (provider, offer_id, validity) is filled in by the offer book. `from_node: true`
publishes the default offer from this machine instead (the machine minus a reserve, default prices)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query

from agora.errors import AgoraError
from agora.node import Node
from agora.node.compute import compute_of


def router(node: Node) -> APIRouter:
    app = APIRouter()

    @app.post("/offers", tags=["offers"], status_code=201)
    async def create(body: dict[str, Any] = Body(..., description="an offer, or {from_node: true}")) -> dict[str, Any]:
        """Start selling under an offer (validated; missing provider, id and validity are filled in)."""
        c = compute_of(node)
        if body.get("from_node") is True:
            if set(body) != {"from_node"}:
                raise AgoraError("offer_invalid", "from_node takes no other field", details={"field": "from_node"})
            return await c.sell_from_node()
        return await c.offers.create(body, source="api")

    @app.get("/offers", tags=["offers"])
    async def offers(
        state: str | None = Query(None, description="active or withdrawn (default: both)"),
    ) -> dict[str, Any]:
        """This node's offers, newest first."""
        if state not in (None, "active", "withdrawn"):
            raise AgoraError("invalid_argument", f"state is active or withdrawn, got {state!r}")
        return {"offers": compute_of(node).offers.list(state=state)}

    @app.get("/offers/{offer_id}", tags=["offers"])
    async def show(offer_id: str) -> dict[str, Any]:
        """One offer, active or withdrawn."""
        return compute_of(node).offers.show(offer_id)

    @app.delete("/offers/{offer_id}", tags=["offers"])
    async def withdraw(offer_id: str) -> dict[str, Any]:
        """Stop selling under an offer (it stays listed as withdrawn; new bid requests are declined)."""
        return await compute_of(node).offers.withdraw(offer_id)

    return app


__all__ = ["router"]
