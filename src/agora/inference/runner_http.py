"""A runner in front of any OpenAI-compatible server (llama.cpp server, vLLM, Ollama, xllamacpp).

Token counts come from the server's `usage` (its own tokenizer); streams always ask for it
(`stream_options.include_usage`), and a stream that ends without usage is a stream that stopped mid-way.
`extra_body` is merged into every request (the builtin runner sends `cache_prompt: false` and a seed).
HTTP statuses map onto the codes routing falls back on: 429 -> `inference_rate_limited`, 404 ->
`model_not_found`, 5xx or an answer that is not the expected JSON -> `runner_failed`, a timeout ->
`timeout`, nothing listening -> `runner_unavailable`. Error messages never quote the request or answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx

from agora.errors import AgoraError
from agora.inference.runner import Delta, RunRequest, RunResult, StreamEvent


def _status_error(status: int, model: str) -> AgoraError:
    if status == 429:
        return AgoraError("inference_rate_limited", "the model server is busy (429)")
    if status == 404:
        return AgoraError("model_not_found", f"the model server does not serve {model!r} (404)")
    return AgoraError("runner_failed", f"the model server answered HTTP {status}", details={"status": status})


def _garbage(what: str) -> AgoraError:
    return AgoraError("runner_failed", f"the model server's answer is not a valid {what}")


class HttpRunner:
    name = "http"

    def __init__(
        self,
        base_url: str,
        *,
        upstream_model: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout_s: float = 60.0,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        check_model: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.upstream_model = upstream_model
        self.extra_body = dict(extra_body or {})
        self.timeout_s = timeout_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._transport = transport
        self._headers = headers
        self._client: httpx.AsyncClient | None = None
        self.check_model = check_model  # refuse a model the server does not list (llama.cpp serves any name)
        self._listed: frozenset[str] | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url, timeout=self.timeout_s, headers=self._headers, transport=self._transport
            )
        return self._client

    async def start(self) -> None:
        self._http()

    async def models(self) -> Sequence[str]:
        resp = await self._send("GET", "/v1/models", None, "*")
        data = resp.get("data")
        if not isinstance(data, list):
            raise _garbage("model list")
        out: list[str] = []
        for m in data:
            if isinstance(m, dict) and "id" in m:
                out.append(str(m["id"]))
                out.extend(str(a) for a in m.get("aliases") or [] if str(a) not in out)
        return out

    async def _check(self, req: RunRequest) -> None:
        """model_not_found for a model the server does not list (asked once; unlisted: not checked)."""
        if not self.check_model:
            return
        if self._listed is None:
            try:
                self._listed = frozenset(await self.models())
            except AgoraError:
                return
        model = self.upstream_model or req.model
        if self._listed and model not in self._listed:
            raise AgoraError("model_not_found", f"the model server does not serve {model!r}")

    def _body(self, req: RunRequest, *, stream: bool = False) -> tuple[str, dict[str, Any]]:
        model = self.upstream_model or req.model
        if req.kind == "embeddings":
            return "/v1/embeddings", {"model": model, "input": list(req.inputs)}
        body: dict[str, Any] = {
            **self.extra_body,
            "model": model,
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
            "seed": req.seed,
        }
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        if req.kind == "chat":
            return "/v1/chat/completions", body | {"messages": [dict(m) for m in req.messages]}
        return "/v1/completions", body | {"prompt": req.prompt}

    async def _send(self, method: str, path: str, body: dict[str, Any] | None, model: str) -> dict[str, Any]:
        try:
            resp = await self._http().request(method, path, json=body)
        except httpx.TimeoutException:
            raise AgoraError("timeout", f"the model server did not answer within {self.timeout_s} s") from None
        except httpx.HTTPError as exc:
            raise AgoraError(
                "runner_unavailable", f"the model server is not reachable ({type(exc).__name__})"
            ) from None
        if resp.status_code != 200:
            raise _status_error(resp.status_code, model)
        try:
            data = resp.json()
        except ValueError:
            raise _garbage("JSON document") from None
        if not isinstance(data, dict):
            raise _garbage("JSON object")
        return data

    async def run(self, req: RunRequest) -> RunResult:
        await self._check(req)
        t0 = time.perf_counter()
        path, body = self._body(req)
        data = await self._send("POST", path, body, req.model)
        dt = time.perf_counter() - t0
        usage = data.get("usage")
        try:
            assert isinstance(usage, dict)
            tin = int(usage.get("prompt_tokens", 0))
            if req.kind == "embeddings":
                vecs = tuple(
                    tuple(float(x) for x in d["embedding"]) for d in sorted(data["data"], key=lambda d: d["index"])
                )
                if len(vecs) != len(req.inputs):
                    raise ValueError("count")
                return RunResult(embeddings=vecs, tokens_in=tin, ttft_s=dt, duration_s=dt)
            choice = data["choices"][0]
            text = choice["message"]["content"] if req.kind == "chat" else choice["text"]
            if not isinstance(text, str):
                raise ValueError("text")
            tout = int(usage["completion_tokens"])
            reason = str(choice.get("finish_reason") or "stop")
        except (AssertionError, KeyError, IndexError, TypeError, ValueError):
            raise _garbage(f"{req.kind} answer with usage") from None
        return RunResult(text=text, tokens_in=tin, tokens_out=tout, ttft_s=dt, duration_s=dt, finish_reason=reason)

    async def stream(self, req: RunRequest) -> AsyncIterator[StreamEvent]:
        if req.kind == "embeddings":
            yield await self.run(req)
            return
        await self._check(req)
        t0 = time.perf_counter()
        path, body = self._body(req, stream=True)
        ttft: float | None = None
        parts: list[str] = []
        usage: dict[str, Any] | None = None
        reason = "stop"
        try:
            async with self._http().stream("POST", path, json=body) as resp:
                if resp.status_code != 200:
                    raise _status_error(resp.status_code, req.model)
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        break
                    try:
                        chunk = json.loads(payload)
                        if chunk.get("usage"):
                            usage = chunk["usage"]
                        for choice in chunk.get("choices") or []:
                            piece = choice["delta"].get("content") if req.kind == "chat" else choice.get("text")
                            reason = choice.get("finish_reason") or reason
                            if piece:
                                if ttft is None:
                                    ttft = time.perf_counter() - t0
                                parts.append(piece)
                                yield Delta(piece)
                    except (ValueError, KeyError, TypeError, AttributeError):
                        raise _garbage("stream chunk") from None
        except httpx.TimeoutException:
            raise AgoraError("timeout", f"the model server stopped answering for {self.timeout_s} s") from None
        except httpx.HTTPError:
            return  # the connection broke mid-stream: no usage, the caller meters what was delivered
        if usage is None:
            return
        try:
            tin, tout = int(usage["prompt_tokens"]), int(usage["completion_tokens"])
        except (KeyError, TypeError, ValueError):
            raise _garbage("usage") from None
        dt = time.perf_counter() - t0
        yield RunResult(
            text="".join(parts),
            tokens_in=tin,
            tokens_out=tout,
            ttft_s=ttft if ttft is not None else dt,
            duration_s=dt,
            finish_reason=str(reason),
        )

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


__all__ = ["HttpRunner"]
