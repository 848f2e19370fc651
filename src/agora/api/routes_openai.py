"""The OpenAI-compatible API of a node: existing clients buy inference on the network unchanged.

    GET  /v1/models              the models offered in the market now
    POST /v1/chat/completions    chat (stream: true -> server-sent events, usage with stream_options)
    POST /v1/completions         text completion (streams too)
    POST /v1/embeddings          embeddings

Each call is routed to the network (quote, route, run, verify the metering record, pay) by the node's
`InferenceRequester`. Routing controls ride in the request body as `provider`: {"strategy", "order",
"only", "ignore", "allow_fallbacks", "max_price"} (the request-level names OpenRouter's users know; an
unknown field is refused). The answer is the provider's, with `usage` from the verified record, plus an
`agora` object (provider, quote, metering record, amount paid).

Errors have OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with our stable code in
`code` and the catalog's HTTP status: an unknown model is the 404 `openai.NotFoundError` expects, over
budget 402, a provider at capacity 429.

Streams: the provider answers the network call whole (the RPC is request/response), and the node sends it
as SSE chunks; time to first token through agora is therefore the whole answer's time for now.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from agora.api.routes_inference import outcome_meta
from agora.errors import AgoraError
from agora.inference.openai_shape import DONE, answer, chunk, error_body, parse_request
from agora.inference.routing import RoutingPolicy
from agora.inference.runner import RunResult
from agora.node import Node
from agora.node.inference import inference_of

_CONTROLS = {"strategy", "order", "only", "ignore", "allow_fallbacks", "max_price"}


def policy_of(body: dict[str, Any]) -> RoutingPolicy:
    p = body.get("provider") or {}
    if not isinstance(p, dict) or not set(p) <= _CONTROLS:
        raise AgoraError("invalid_argument", f"`provider` takes {sorted(_CONTROLS)}")
    lists = {k: tuple(str(x) for x in p.get(k) or ()) for k in ("order", "only", "ignore")}
    return RoutingPolicy(
        str(p.get("strategy", "balanced")),
        lists["order"],
        lists["only"],
        lists["ignore"],
        bool(p.get("allow_fallbacks", True)),
        p.get("max_price"),
    )


def _error(exc: AgoraError) -> JSONResponse:
    return JSONResponse(error_body(exc), status_code=exc.http_status)


def router(node: Node) -> APIRouter:
    app = APIRouter()

    async def handle(kind: str, request: Request) -> Any:
        try:
            try:
                body = await request.json()
            except ValueError:
                raise AgoraError("invalid_argument", "the request body must be JSON") from None
            req = parse_request(kind, body)
            out = await inference_of(node).requester.run(req, policy_of(body))
        except AgoraError as exc:
            return _error(exc)
        res = RunResult(
            text=out.result.text,
            embeddings=out.result.embeddings,
            tokens_in=out.record.tokens_in,  # usage as metered, signed and verified
            tokens_out=out.record.tokens_out,
            finish_reason=out.result.finish_reason,
        )
        meta = {"agora": outcome_meta(out)}
        if not body.get("stream") or kind == "embeddings":
            return answer(req, res, extra=meta)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        rid = f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"

        async def events() -> AsyncIterator[str]:
            if kind == "chat":
                yield chunk(req, rid, text="")  # the role chunk clients expect first
            if res.text:
                yield chunk(req, rid, text=res.text)
            yield chunk(req, rid, finish=res.finish_reason)
            if include_usage:
                yield chunk(req, rid, usage=res, extra=meta)
            yield DONE

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/v1/models", tags=["openai"])
    async def models() -> Any:
        """The models offered in the market now (OpenAI's list shape)."""
        try:
            offered = await inference_of(node).requester.models()
        except AgoraError as exc:
            return _error(exc)
        now = int(time.time())
        return {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": now, "owned_by": "agora", "providers": len(c)}
                for m, c in offered.items()
            ],
        }

    @app.post("/v1/chat/completions", tags=["openai"])
    async def chat(request: Request) -> Any:
        return await handle("chat", request)

    @app.post("/v1/completions", tags=["openai"])
    async def completions(request: Request) -> Any:
        return await handle("completion", request)

    @app.post("/v1/embeddings", tags=["openai"])
    async def embeddings(request: Request) -> Any:
        return await handle("embeddings", request)

    return app


__all__ = ["policy_of", "router"]
