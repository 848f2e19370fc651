"""The FastAPI application of a node: one router per noun, errors as `{"error": {code, message, hint,
retryable}}` with the catalog's HTTP status, and the local-only guard around everything."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from agora import __version__
from agora.api.guard import LocalOnlyMiddleware
from agora.api.routes_compute import router as compute_router
from agora.api.routes_jobs import router as jobs_router
from agora.api.routes_node import router as node_router
from agora.errors import AgoraError
from agora.node import Node


def error_response(err: AgoraError) -> JSONResponse:
    return JSONResponse({"error": err.to_dict()}, status_code=err.http_status)


def routers(node: Node) -> list[APIRouter]:
    """One router per noun; a feature adds its router to this list."""
    return [
        node_router(node),
        jobs_router(node),
        compute_router(node),
    ]


def create_app(node: Node, *, api_token: str | None = None) -> FastAPI:
    """`api_token`: TCP callers must send it (`Authorization: Bearer`); see the guard."""
    app = FastAPI(
        title="agora node API",
        version=__version__,
        description="The local API of an agora node. It answers callers on this machine only.",
    )
    app.add_middleware(LocalOnlyMiddleware, on_reject=node.metrics.count_reject, token=api_token)

    @app.exception_handler(AgoraError)
    async def _agora_error(_: Request, exc: AgoraError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"path": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        return error_response(AgoraError("invalid_argument", "request validation failed", details={"errors": errors}))

    for router in routers(node):
        app.include_router(router)
    return app


__all__ = ["create_app", "error_response"]
