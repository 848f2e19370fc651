"""The FastAPI application of a node: one router per noun, errors as `{"error": {code, message, hint,
retryable}}` with the catalog's HTTP status, and the local-only guard around everything."""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse

from agora import __version__
from agora.api.guard import LocalOnlyMiddleware
from agora.api.routes_compute import router as compute_router
from agora.api.routes_contracts import router as contracts_router
from agora.api.routes_datasets import router as datasets_router
from agora.api.routes_inference import router as inference_router
from agora.api.routes_intents import router as intents_router
from agora.api.routes_jobs import router as jobs_router
from agora.api.routes_ledger import router as ledger_router
from agora.api.routes_market import router as market_router
from agora.api.routes_node import router as node_router
from agora.api.routes_offers import router as offers_router
from agora.api.routes_openai import router as openai_router
from agora.api.routes_training import router as training_router
from agora.api.routes_trust import router as trust_router
from agora.dashboard import mount_dashboard
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
        offers_router(node),
        market_router(node),
        trust_router(node),
        intents_router(node),
        contracts_router(node),
        ledger_router(node),
        datasets_router(node),
        training_router(node),
        inference_router(node),
        openai_router(node),
    ]


def create_app(node: Node, *, api_token: str | None = None) -> FastAPI:
    """`api_token`: TCP callers must send it (`Authorization: Bearer`); see the guard."""
    app = FastAPI(
        title="agora node API",
        version=__version__,
        description="The local API of an agora node. It answers callers on this machine only.",
        docs_url=None,  # FastAPI's Swagger UI and ReDoc load their scripts from a CDN: /docs is served below
        redoc_url=None,
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
    mount_dashboard(app, api_token=api_token)  # the web pages under /ui (docs/dashboard.md)

    @app.get("/docs", include_in_schema=False)
    async def _docs() -> HTMLResponse:
        return HTMLResponse(docs_page(app.openapi()))

    return app


def docs_page(spec: dict[str, Any]) -> str:
    """The endpoint list as one self-contained page: nothing is fetched from another site (a node may run
    offline, and a page of this origin loading foreign scripts could drive the API)."""
    rows = []
    for path, ops in sorted(spec.get("paths", {}).items()):
        for method, op in ops.items():
            summary = op.get("summary") or op.get("description", "").split("\n")[0]
            rows.append(
                f"<tr><td><code>{escape(method.upper())}</code></td><td><code>{escape(path)}</code></td>"
                f"<td>{escape(summary)}</td></tr>"
            )
    title = escape(f"{spec['info']['title']} {spec['info']['version']}")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{padding:2px 12px 2px 0;vertical-align:top}</style>"
        f"</head><body><h1>{title}</h1><p>{escape(spec['info'].get('description', ''))}</p>"
        "<p>The full schema is <a href='/openapi.json'>/openapi.json</a>; open it in any OpenAPI viewer. "
        "Swagger UI is not served: it would load its scripts from a CDN.</p>"
        f"<table>{''.join(rows)}</table></body></html>"
    )


__all__ = ["create_app", "docs_page", "error_response"]
