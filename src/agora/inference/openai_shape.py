"""OpenAI's JSON shapes: requests parsed into `RunRequest`s, results written as OpenAI answers.

One place for the shapes, used by the node's `/v1/*` routes (api/routes_openai.py) and by tests that
play an OpenAI-compatible server. Errors use OpenAI's shape with our stable code inside:
`{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from agora.errors import AgoraError
from agora.inference.runner import RunRequest, RunResult


def _arg(msg: str) -> AgoraError:
    return AgoraError("invalid_argument", msg)


def parse_request(kind: str, body: Any) -> RunRequest:
    """An OpenAI request body as a RunRequest (`invalid_argument` naming what is wrong)."""
    if not isinstance(body, Mapping):
        raise _arg("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _arg("`model` is required")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens", 64))
    temperature = body.get("temperature", 0.0)
    seed = body.get("seed", 42)
    if type(max_tokens) is not int or not isinstance(temperature, int | float) or type(seed) is not int:
        raise _arg("max_tokens and seed must be integers, temperature a number")
    common: dict[str, Any] = {"max_tokens": max_tokens, "temperature": float(temperature), "seed": seed}
    if kind == "chat":
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise _arg("`messages` must be a non-empty list")
        out = []
        for m in msgs:
            if not isinstance(m, Mapping) or not isinstance(m.get("role"), str):
                raise _arg("each message needs a `role` and a string `content`")
            content = m.get("content")
            if isinstance(content, list):  # content parts: the text parts, in order
                content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
            if not isinstance(content, str):
                raise _arg("each message needs a `role` and a string `content`")
            out.append({"role": m["role"], "content": content})
        return RunRequest("chat", model, messages=tuple(out), **common)
    if kind == "completion":
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise _arg("`prompt` must be a string")
        return RunRequest("completion", model, prompt=prompt, **common)
    inputs = body.get("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        raise _arg("`input` must be a string or a non-empty list of strings")
    return RunRequest("embeddings", model, inputs=tuple(inputs))


def usage_of(res: RunResult) -> dict[str, int]:
    return {
        "prompt_tokens": res.tokens_in,
        "completion_tokens": res.tokens_out,
        "total_tokens": res.tokens_in + res.tokens_out,
    }


def answer(
    req: RunRequest, res: RunResult, *, rid: str | None = None, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The non-streamed OpenAI answer for a result (`extra`: our own fields, e.g. the metering record)."""
    created = int(time.time())
    if req.kind == "embeddings":
        out: dict[str, Any] = {
            "object": "list",
            "model": req.model,
            "data": [{"object": "embedding", "index": i, "embedding": list(v)} for i, v in enumerate(res.embeddings)],
            "usage": {"prompt_tokens": res.tokens_in, "total_tokens": res.tokens_in},
        }
    elif req.kind == "chat":
        out = {
            "id": rid or f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": created,
            "model": req.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": res.text},
                    "finish_reason": res.finish_reason,
                }
            ],
            "usage": usage_of(res),
        }
    else:
        out = {
            "id": rid or f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": created,
            "model": req.model,
            "choices": [{"index": 0, "text": res.text, "finish_reason": res.finish_reason, "logprobs": None}],
            "usage": usage_of(res),
        }
    return out | dict(extra or {})


def chunk(
    req: RunRequest,
    rid: str,
    *,
    text: str | None = None,
    finish: str | None = None,
    usage: RunResult | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """One SSE event of a stream (`data: {...}\\n\\n`)."""
    created = int(time.time())
    if req.kind == "chat":
        choices = (
            []
            if usage is not None
            else [{"index": 0, "delta": {"content": text} if text is not None else {}, "finish_reason": finish}]
        )
        obj: dict[str, Any] = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": req.model,
            "choices": choices,
        }
    else:
        choices = [] if usage is not None else [{"index": 0, "text": text or "", "finish_reason": finish}]
        obj = {"id": rid, "object": "text_completion", "created": created, "model": req.model, "choices": choices}
    if usage is not None:
        obj["usage"] = usage_of(usage)
    obj |= dict(extra or {})
    return f"data: {json.dumps(obj, separators=(',', ':'))}\n\n"


DONE = "data: [DONE]\n\n"


def error_body(err: AgoraError) -> dict[str, Any]:
    """OpenAI's error shape, our code inside (the message never carries the prompt)."""
    kind = {
        400: "invalid_request_error",
        401: "authentication_error",
        402: "insufficient_quota",
        403: "permission_error",
        404: "not_found_error",
        409: "invalid_request_error",
        422: "invalid_request_error",
        429: "rate_limit_error",
    }.get(err.http_status, "api_error")
    return {"error": {"message": err.message, "type": kind, "param": None, "code": err.code}}


__all__ = ["DONE", "answer", "chunk", "error_body", "parse_request", "usage_of"]
