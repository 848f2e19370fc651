"""An OpenAI-compatible server played by a runner (tests): the http runner's conformance runs against it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from agora.errors import AgoraError
from agora.inference.openai_shape import DONE, answer, chunk, error_body, parse_request
from agora.inference.runner import Delta, Runner, RunResult


def fake_openai_app(runner: Runner, *, usage_in_stream: bool = True) -> FastAPI:
    app = FastAPI()

    async def handle(kind: str, request: Request) -> Any:
        body = await request.json()
        try:
            req = parse_request(kind, body)
            if not body.get("stream"):
                return answer(req, await runner.run(req))
        except AgoraError as exc:
            return JSONResponse(error_body(exc), status_code=exc.http_status)
        include = bool((body.get("stream_options") or {}).get("include_usage")) and usage_in_stream
        rid = f"chatcmpl-{uuid.uuid4().hex}"

        async def events() -> AsyncIterator[str]:
            async for ev in runner.stream(req):
                if isinstance(ev, Delta):
                    yield chunk(req, rid, text=ev.text)
                elif isinstance(ev, RunResult):
                    yield chunk(req, rid, finish=ev.finish_reason)
                    if include:
                        yield chunk(req, rid, usage=ev)
                    yield DONE

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": m, "object": "model"} for m in await runner.models()]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        return await handle("chat", request)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        return await handle("completion", request)

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Any:
        return await handle("embeddings", request)

    return app
