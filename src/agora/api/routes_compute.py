"""Routes about this node as a provider: resources, benchmark, grants, held delegations, allocations."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from agora.compute import DEFAULT_COMMAND, DEFAULT_TTL_S, parse_token
from agora.node import Node
from agora.node.compute import compute_of


class GrantBody(BaseModel):
    did: str = Field(description="The node (or user) allowed to run tasks here")
    command: str = Field(DEFAULT_COMMAND, description="The command path granted (and everything below it)")
    ttl_s: int = Field(DEFAULT_TTL_S, description="How long the grant lasts, in seconds")
    policy: list[Any] = Field(default_factory=list, description="UCAN policy on the args, e.g. wasm tasks only")


class TokenBody(BaseModel):
    token: str = Field(description="A delegation token (base64), as `agora node grant` prints it")


def router(node: Node) -> APIRouter:
    app = APIRouter()

    @app.get("/node/resources", tags=["node"])
    async def resources() -> dict[str, Any]:
        """What this machine has, what is free now, which executors work (and why not), the benchmark."""
        return compute_of(node).resources()

    @app.post("/node/bench", tags=["node"])
    async def bench() -> dict[str, Any]:
        """Run the onboarding benchmark again and store it (a few seconds)."""
        return await compute_of(node).rebench()

    @app.post("/grants", tags=["grants"], status_code=201)
    async def grant(body: GrantBody) -> dict[str, Any]:
        """Let a node run tasks here: sign a delegation to it and offer it to that node."""
        c = compute_of(node)
        return await c.grant(body.did, command=body.command, ttl_s=body.ttl_s, policy=body.policy)

    @app.get("/grants", tags=["grants"])
    async def grants(limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        """Delegations this node issued, newest first."""
        return {"grants": await compute_of(node).book.issued(limit=limit)}

    @app.post("/delegations", tags=["grants"], status_code=201)
    async def add_delegation(body: TokenBody) -> dict[str, Any]:
        """Import a delegation another node gave this one out of band."""
        d, new = await compute_of(node).book.accept(parse_token(body.token), source="api")
        return {"cid": str(d.cid), "iss": d.iss, "cmd": d.cmd, "exp": d.exp, "stored": new}

    @app.get("/delegations", tags=["grants"])
    async def delegations() -> dict[str, Any]:
        """Delegations other nodes gave this one (used automatically to call them)."""
        return {"delegations": compute_of(node).book.held()}

    @app.get("/allocations", tags=["compute"])
    async def allocations(
        state: str | None = Query(None, description="accepted, staging, running, completed, failed or cancelled"),
        limit: int = Query(100, ge=1, le=1000),
    ) -> dict[str, Any]:
        """Tasks this node ran or runs for others, newest first."""
        manager = compute_of(node).manager
        if manager is None:
            return {"allocations": []}
        return {"allocations": await manager.history(state=state, limit=limit)}

    return app


__all__ = ["GrantBody", "TokenBody", "router"]
