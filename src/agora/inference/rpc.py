"""How inference rides on the node-to-node RPC (both commands public: their authority is the signed quote).

    /agora/inference/quote  {"v": 1, "model", "est_in", "est_out"}  ->  {"quote": <Quote bytes>}
    /agora/inference/run    {"v": 1, "quote": <Quote bytes>, "request": {...}}
                            ->  {"result": {...}, "meter": <MeteringRecord bytes>}
    /agora/inference/route  {"v": 1, "request": {...}, "policy": {...}}   (a hub routing for a member)
                            ->  {"provider", "quote": <Quote bytes>, "result": {...}, "meter": <bytes>}
    /agora/inference/stream {"v": 1, "quote": <Quote bytes>, "request": {...}}  ->  {"session": id}
    /agora/inference/watch  {"v": 1, "session": id, "cursor": n, "wait": s}
                            ->  {"deltas": [text...], "cursor": n, "done": bool, "meter": <bytes> | None,
                                 "error": {code, message} | None}
    /agora/inference/route_stream  {"v": 1, "request": {...}, "policy": {...}}  ->  {"session": id}
    /agora/inference/route_watch   {"v": 1, "session": id, "cursor": n, "wait": s}   (a hub streaming for a
                            member)  ->  {"deltas", "cursor", "done", "provider", "quote", "meter", "error"}

A stream is a session on the provider that owns the runner's stream; the requester follows it with watch
calls (each waits up to `wait` seconds for new text, then batches what came for a moment, so a fast model
does not make a call per token). When the runner finishes, the last watch carries the metering record; if
the runner stops mid-way, the record is `partial` and meters what was delivered. A hub streams for a member
the same way, one level up: its session follows the provider's stream (its requester's `stream`, with
fallback before the first text) and passes each provider delta on unchanged; its last watch carries the
provider, the provider's signed quote and record, so the member verifies the text it got against them.

The request and the result carry the prompt and the output: they travel only inside the signed,
point-to-point invocation and its receipt, never into logs, events or stores.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agora.errors import AgoraError
from agora.inference.routing import RoutingPolicy
from agora.inference.runner import RunRequest, RunResult

RPC_VERSION = 1
QUOTE_CMD = "/agora/inference/quote"
RUN_CMD = "/agora/inference/run"
STREAM_CMD = "/agora/inference/stream"
WATCH_CMD = "/agora/inference/watch"
ROUTE_CMD = "/agora/inference/route"
ROUTE_STREAM_CMD = "/agora/inference/route_stream"
ROUTE_WATCH_CMD = "/agora/inference/route_watch"


def _bad(msg: str) -> AgoraError:
    return AgoraError("invalid_argument", f"inference RPC: {msg}")


def check_version(args: Mapping[str, Any]) -> None:
    if args.get("v", RPC_VERSION) != RPC_VERSION:
        raise _bad(f"version must be {RPC_VERSION}")


def request_to_wire(req: RunRequest) -> dict[str, Any]:
    return {
        "kind": req.kind,
        "model": req.model,
        "messages": [dict(m) for m in req.messages],
        "prompt": req.prompt,
        "inputs": list(req.inputs),
        "max_tokens": req.max_tokens,
        "temperature": req.temperature,
        "seed": req.seed,
    }


def request_from_wire(d: Any) -> RunRequest:
    try:
        assert isinstance(d, Mapping)
        msgs = tuple({"role": str(m["role"]), "content": str(m["content"])} for m in d["messages"])
        return RunRequest(
            str(d["kind"]),
            str(d["model"]),
            messages=msgs,
            prompt=str(d["prompt"]),
            inputs=tuple(str(i) for i in d["inputs"]),
            max_tokens=int(d["max_tokens"]),
            temperature=float(d["temperature"]),
            seed=int(d["seed"]),
        )
    except (AssertionError, KeyError, TypeError, ValueError):
        raise _bad("request must be {kind, model, messages, prompt, inputs, max_tokens, temperature, seed}") from None


def result_to_wire(res: RunResult) -> dict[str, Any]:
    return {
        "text": res.text,
        "embeddings": [list(e) for e in res.embeddings],
        "tin": res.tokens_in,
        "tout": res.tokens_out,
        "ttft": res.ttft_s,
        "dur": res.duration_s,
        "finish": res.finish_reason,
        "partial": res.partial,
    }


def result_from_wire(d: Any) -> RunResult:
    try:
        assert isinstance(d, Mapping)
        return RunResult(
            text=str(d["text"]),
            embeddings=tuple(tuple(float(x) for x in e) for e in d["embeddings"]),
            tokens_in=int(d["tin"]),
            tokens_out=int(d["tout"]),
            ttft_s=float(d["ttft"]),
            duration_s=float(d["dur"]),
            finish_reason=str(d["finish"]),
            partial=bool(d["partial"]),
        )
    except (AssertionError, KeyError, TypeError, ValueError):
        raise AgoraError("runner_failed", "the provider's result is malformed") from None


def policy_to_wire(p: RoutingPolicy) -> dict[str, Any]:
    return {
        "strategy": p.strategy,
        "order": list(p.order),
        "only": list(p.only),
        "ignore": list(p.ignore),
        "allow_fallbacks": p.allow_fallbacks,
        "max_price": p.max_price,
    }


def policy_from_wire(d: Any) -> RoutingPolicy:
    try:
        assert isinstance(d, Mapping)
        max_price = d["max_price"]
        assert max_price is None or (type(max_price) is int and max_price >= 0)
        return RoutingPolicy(
            str(d["strategy"]),
            order=tuple(str(x) for x in d["order"]),
            only=tuple(str(x) for x in d["only"]),
            ignore=tuple(str(x) for x in d["ignore"]),
            allow_fallbacks=bool(d["allow_fallbacks"]),
            max_price=max_price,
        )
    except (AssertionError, KeyError, TypeError, ValueError):
        raise _bad("policy must be {strategy, order, only, ignore, allow_fallbacks, max_price}") from None


__all__ = [
    "QUOTE_CMD",
    "ROUTE_CMD",
    "ROUTE_STREAM_CMD",
    "ROUTE_WATCH_CMD",
    "RPC_VERSION",
    "RUN_CMD",
    "STREAM_CMD",
    "WATCH_CMD",
    "check_version",
    "policy_from_wire",
    "policy_to_wire",
    "request_from_wire",
    "request_to_wire",
    "result_from_wire",
    "result_to_wire",
]
