"""Routes about the data sets this node offers for federated learning (POST/GET/DELETE /datasets).

A data set is read where it lies on this machine (`path`: a CSV, an NPZ or a folder of those) and
described (schema, rows, size, content hash); the path is never part of the published offer. A missing
file is `dataset_not_found` (404), a declared `schema` that does not match the file
`dataset_schema_mismatch` (400)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from agora.node import Node
from agora.node.fl import fl_of


class DatasetBody(BaseModel):
    path: str = Field(..., description="a CSV file, an NPZ file (x, y) or a folder of those, on this machine")
    tags: list[str] = Field(..., min_length=1, max_length=64)
    licence: str = Field(..., min_length=1, max_length=128)
    name: str | None = Field(None, max_length=200)
    price_per_update: int = Field(0, ge=0, description="minor units paid per delivered, verified update")
    custom_code: bool = Field(False, description="accept custom training code (default: built-in trainers only)")
    label: str | None = Field(None, description="the label column (CSV; default: the last column)")
    schema_: dict[str, Any] | None = Field(None, alias="schema", description="declared schema, checked")


def router(node: Node) -> APIRouter:
    app = APIRouter()

    @app.post("/datasets", tags=["training"], status_code=201)
    async def add(body: DatasetBody) -> dict[str, Any]:
        """Offer a data set (described from the file; the local path stays on this node)."""
        offer = await fl_of(node).datasets.add(
            Path(body.path),
            tags=body.tags,
            licence=body.licence,
            name=body.name,
            price_per_update=body.price_per_update,
            custom_code=body.custom_code,
            label=body.label,
            schema=body.schema_,
        )
        return offer.to_dict()

    @app.get("/datasets", tags=["training"])
    async def datasets() -> dict[str, Any]:
        """This node's data-set offers, as published (no paths)."""
        return {"datasets": await fl_of(node).datasets.public()}

    @app.delete("/datasets/{offer_id}", tags=["training"])
    async def remove(offer_id: str) -> dict[str, Any]:
        """Stop offering a data set."""
        return (await fl_of(node).datasets.remove(offer_id)).to_dict()

    return app


__all__ = ["router"]
