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

Streams: the provider's runner streams into a session on the provider that the node follows with watch
calls (`inference/rpc.py`), or, on a member with an inference router, into the hub's session that follows
the provider's; text reaches the client as it arrives, batched for at most 0.1 s per call.
Routing falls back only before the first text; a provider that stops mid-way ends the stream with an
error event and is paid nothing; a runner that stops mid-way is paid by its partial record.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from agora.api.routes_inference import outcome_meta
from agora.errors import AgoraError
from agora.inference.openai_shape import DONE, answer, chunk, error_body, parse_request
from agora.inference.requester import Outcome
from agora.inference.routing import RoutingPolicy
from agora.inference.runner import Delta, RunRequest, RunResult
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


def _metered(out: Outcome) -> RunResult:
    """The answer with usage as metered, signed and verified."""
    return RunResult(
        text=out.result.text,
        embeddings=out.result.embeddings,
        tokens_in=out.record.tokens_in,
        tokens_out=out.record.tokens_out,
        finish_reason=out.result.finish_reason,
    )


async def _sse(
    req: RunRequest, first: Delta | Outcome, events: AsyncGenerator[Delta | Outcome, None], include_usage: bool
) -> AsyncIterator[str]:
    """The stream as OpenAI sends it: a role chunk, the text as it comes, the finish, usage if asked, [DONE].
    A provider that fails mid-way ends the stream with an error event (and is paid nothing)."""
    rid = f"{'chatcmpl' if req.kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"
    if req.kind == "chat":
        yield chunk(req, rid, text="")
    ev: Delta | Outcome | None = first
    try:
        while ev is not None:
            if isinstance(ev, Delta):
                yield chunk(req, rid, text=ev.text)
            else:
                res = _metered(ev)
                yield chunk(req, rid, finish=res.finish_reason)
                if include_usage:
                    yield chunk(req, rid, usage=res, extra={"agora": outcome_meta(ev)})
                yield DONE
                return
            ev = await anext(events, None)
    except AgoraError as exc:
        yield f"data: {json.dumps(error_body(exc))}\n\n"
    finally:
        await events.aclose()


def router(node: Node) -> APIRouter:
    app = APIRouter()

    async def handle(kind: str, request: Request) -> Any:
        try:
            try:
                body = await request.json()
            except ValueError:
                raise AgoraError("invalid_argument", "the request body must be JSON") from None
            req = parse_request(kind, body)
            policy = policy_of(body)
            requester = inference_of(node).requester
            if body.get("stream") and kind != "embeddings":
                events = requester.stream(req, policy)
                first = await anext(events)  # errors before any text keep their HTTP status
                return StreamingResponse(
                    _sse(req, first, events, bool((body.get("stream_options") or {}).get("include_usage"))),
                    media_type="text/event-stream",
                )
            out = await requester.run(req, policy)
        except AgoraError as exc:
            return _error(exc)
        return answer(req, _metered(out), extra={"agora": outcome_meta(out)})

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
