"""The deterministic mock runner (tests, the simulator, demos without a model).

Tokens are whitespace-separated words. The answer is a pure function of the request: `reply_words`
words (at most `max_tokens`) taken from the SHA-256 of the request's content, so two providers running
the mock agree byte for byte and a test can compute the expected output and counts itself
(`expected_output`). `fail` makes it misbehave the ways routing must survive: `rate_limit` (429),
`error` (5xx), `hang` (never answers), `garbage` (an answer without usage is refused), `die` (a stream
that stops after the first word), `not_found` (the model is gone).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Sequence

from agora.errors import AgoraError
from agora.inference.runner import Delta, RunRequest, RunResult, StreamEvent

FAILURES = ("rate_limit", "error", "hang", "garbage", "die", "not_found")
EMBED_DIM = 8


def count_tokens(text: str) -> int:
    return len(text.split())


def input_tokens(req: RunRequest) -> int:
    if req.kind == "chat":
        return sum(count_tokens(m.get("content", "")) for m in req.messages)
    if req.kind == "completion":
        return count_tokens(req.prompt)
    return sum(count_tokens(i) for i in req.inputs)


def expected_output(req: RunRequest, reply_words: int = 6) -> RunResult:
    """What the mock answers to `req` (timings zero)."""
    digest = hashlib.sha256(req.content.encode()).hexdigest()
    if req.kind == "embeddings":
        vecs = tuple(
            tuple(b / 255 for b in hashlib.sha256(f"{i}:{text}".encode()).digest()[:EMBED_DIM])
            for i, text in enumerate(req.inputs)
        )
        return RunResult(embeddings=vecs, tokens_in=input_tokens(req), tokens_out=0)
    n = min(req.max_tokens, reply_words)
    words = [f"w{digest[2 * i : 2 * i + 4]}" for i in range(n)]
    return RunResult(
        text=" ".join(words),
        tokens_in=input_tokens(req),
        tokens_out=n,
        finish_reason="length" if n == req.max_tokens else "stop",
    )


class MockRunner:
    name = "mock"

    def __init__(
        self,
        models: Sequence[str] = ("mock-chat", "mock-embed"),
        *,
        reply_words: int = 6,
        delay_s: float = 0.0,
        fail: str | None = None,
    ) -> None:
        if fail is not None and fail not in FAILURES:
            raise ValueError(f"fail must be one of {FAILURES}")
        self._models = tuple(models)
        self.reply_words = reply_words
        self.delay_s = delay_s  # per output token (a slower provider for routing tests)
        self.fail = fail
        self.calls = 0

    async def start(self) -> None:
        return None

    async def models(self) -> Sequence[str]:
        return self._models

    async def _precheck(self, req: RunRequest) -> None:
        self.calls += 1
        if req.model not in self._models or self.fail == "not_found":
            raise AgoraError("model_not_found", f"the runner does not serve model {req.model!r}")
        if self.fail == "rate_limit":
            raise AgoraError("inference_rate_limited", "the mock runner is at its concurrency")
        if self.fail == "error":
            raise AgoraError("runner_failed", "the mock runner answered 500")
        if self.fail == "hang":
            await asyncio.Event().wait()  # the caller's timeout ends it

    async def run(self, req: RunRequest) -> RunResult:
        t0 = time.perf_counter()
        await self._precheck(req)
        if self.fail == "garbage":
            raise AgoraError("runner_failed", "the mock runner answered garbage (no usage)")
        out = expected_output(req, self.reply_words)
        if self.delay_s:
            await asyncio.sleep(self.delay_s * max(1, out.tokens_out))
        dt = time.perf_counter() - t0
        return RunResult(
            text=out.text,
            embeddings=out.embeddings,
            tokens_in=out.tokens_in,
            tokens_out=out.tokens_out,
            ttft_s=dt,
            duration_s=dt,
            finish_reason=out.finish_reason,
        )

    async def stream(self, req: RunRequest) -> AsyncIterator[StreamEvent]:
        t0 = time.perf_counter()
        await self._precheck(req)
        out = expected_output(req, self.reply_words)
        words = out.text.split(" ")
        ttft = 0.0
        for i, w in enumerate(words):
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if i == 0:
                ttft = time.perf_counter() - t0
            yield Delta(w if i == 0 else " " + w)
            if self.fail == "die":
                return  # stopped mid-stream: no usage
        yield RunResult(
            text=out.text,
            tokens_in=out.tokens_in,
            tokens_out=out.tokens_out,
            ttft_s=ttft,
            duration_s=time.perf_counter() - t0,
            finish_reason=out.finish_reason,
        )

    async def close(self) -> None:
        return None


__all__ = ["EMBED_DIM", "FAILURES", "MockRunner", "count_tokens", "expected_output", "input_tokens"]
