"""The FastAPI application of a node: one router per noun, errors as `{"error": {code, message, hint,
retryable}}` with the catalog's HTTP status, and the local-only guard around everything."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from agora import __version__
from agora.api.guard import LocalOnlyMiddleware
from agora.errors import AgoraError
from agora.node import Node


class PingBody(BaseModel):
    did: str = Field(description="The DID of the node to ping")
    count: int = Field(1, ge=1, le=100)
    timeout: float = Field(5.0, gt=0, le=60)


def error_response(err: AgoraError) -> JSONResponse:
    return JSONResponse({"error": err.to_dict()}, status_code=err.http_status)


def create_app(node: Node) -> FastAPI:
    app = FastAPI(
        title="agora node API",
        version=__version__,
        description="The local API of an agora node. It answers callers on this machine only.",
    )
    app.add_middleware(LocalOnlyMiddleware, on_reject=node.metrics.count_reject)

    @app.exception_handler(AgoraError)
    async def _agora_error(_: Request, exc: AgoraError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"path": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        return error_response(AgoraError("invalid_argument", "request validation failed", details={"errors": errors}))

    @app.get("/health", tags=["node"])
    async def health() -> dict[str, Any]:
        """Liveness and the state of the link to the hub."""
        return node.health()

    @app.get("/node", tags=["node"])
    async def node_info() -> dict[str, Any]:
        """This node's identity, version, hubs, capabilities, commands and uptime."""
        return node.info()

    @app.get("/peers", tags=["peers"])
    async def peers(status: str | None = Query(None, description="alive, lost or left")) -> dict[str, Any]:
        """The peer table: every node this one has heard from, with last-seen and status."""
        rows = node.peer_table.snapshot()
        if status is not None:
            rows = [p for p in rows if p["status"] == status]
        return {"peers": rows}

    @app.post("/ping", tags=["peers"])
    async def ping(body: PingBody) -> dict[str, Any]:
        """Send signed /agora/node/ping invocations to a node through the hub; returns round trips in ms."""
        rtts = await node.ping(body.did, count=body.count, timeout=body.timeout)
        return {"did": body.did, "rtt_ms": rtts}

    @app.get("/events", tags=["events"])
    async def events(
        after: int = Query(0, ge=0, description="return events with seq > after"),
        kind: str | None = None,
        subject: str | None = None,
        limit: int = Query(100, ge=1, le=1000),
    ) -> dict[str, Any]:
        """The node's append-only event log, oldest first."""
        rows = await node.store.events(after_seq=after, kind=kind, subject=subject, limit=limit)
        return {"events": [e.to_dict() for e in rows]}

    @app.get("/metrics", tags=["node"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics."""
        body, content_type = node.metrics.render()
        return Response(body, media_type=content_type)

    return app


__all__ = ["create_app", "error_response"]
