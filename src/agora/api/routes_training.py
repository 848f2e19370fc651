"""Routes about training runs (POST /training/runs, GET /training/status, GET /training/runs/{id},
POST /training/runs/{id}/stop): the model owner's side of federated learning.

A start is validated (`training_spec_invalid`, 400, every field listed) and matched; no match is a 200
answer with `state: unmatched` and the reasons with counts. `GET /training/status` lists the runs
(rounds, per-provider delivered/late/rejected updates, loss and accuracy per round), this node's data sets
and the pending-contract summary (contracts awaiting delivery or release, escrow outstanding)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query

from agora.node import Node
from agora.node.fl import fl_of


def router(node: Node) -> APIRouter:
    app = APIRouter()

    @app.post("/training/runs", tags=["training"], status_code=201)
    async def start(
        body: dict[str, Any] = Body(..., description="a training spec (docs/federated-learning.md)"),
        budget: int | None = Query(None, ge=1, description="the most the run may pay, minor units"),
        providers: str = Query("peers", description="peers (other nodes' data sets) or local (this node's)"),
    ) -> dict[str, Any]:
        """Match a training spec against the data offers and start the run."""
        return await fl_of(node).manager.start(body, budget=budget, providers=providers)

    @app.get("/training/status", tags=["training"])
    async def status() -> dict[str, Any]:
        """Runs, data sets and the pending-contract summary."""
        return await fl_of(node).manager.status()

    @app.get("/training/runs/{run_id}", tags=["training"])
    async def show(
        run_id: str, wait_s: float = Query(0.0, ge=0, le=600, description="wait up to this long for the end")
    ) -> dict[str, Any]:
        """One run (waiting at most wait_s for it to end)."""
        manager = fl_of(node).manager
        if wait_s > 0:
            return await manager.wait(run_id, wait_s)
        return manager.status_of(run_id)

    @app.post("/training/runs/{run_id}/stop", tags=["training"])
    async def stop(run_id: str) -> dict[str, Any]:
        """Stop after the current round (paid updates stay paid; the rest is refunded)."""
        return fl_of(node).manager.stop(run_id)

    return app


__all__ = ["router"]
