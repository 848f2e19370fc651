"""The provider's side: signed quotes and metered runs, as two public behaviors.

- **quote**: the model's offer prices for the caller, for its estimate, valid `quote_ttl_s`.
- **run**: the caller presents a quote this node signed, for itself and this model, not expired; the prompt
  must fit the model's context (`context_exceeded`, before anything runs or is paid); at most
  `max_concurrency` requests per model run at once (`inference_rate_limited`, so routing falls back); the
  runner gets `run_timeout_s` (`timeout`). The answer carries the runner's result and a signed
  `MeteringRecord` (the runner's own token counts, TTFT, duration, the hashes of the request and of the
  output, the quote, the quote's prices applied).
Nothing here logs a prompt or an output; counters only (`stats`).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from agora.actor import Actor, CallContext, behavior
from agora.clock import SYSTEM_CLOCK, Clock
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.inference.offers import ModelBook
from agora.inference.rpc import (
    QUOTE_CMD,
    RUN_CMD,
    STREAM_CMD,
    WATCH_CMD,
    check_version,
    request_from_wire,
    result_to_wire,
)
from agora.inference.runner import Delta, RunRequest, RunResult
from agora.inference.sessions import Session, Sessions, wait_arg
from agora.wire.inference import MeteringRecord, Quote

CHARS_PER_TOKEN_MIN = 8  # a prompt of more than context * 8 characters cannot fit (no tokenizer needed)


@dataclass(frozen=True)
class ProviderSettings:
    quote_ttl_s: int = 60
    run_timeout_s: float = 60.0
    max_sessions: int = 256  # streams open or finished-but-unread at once
    session_keep_s: float = 60.0  # a finished stream nobody reads is dropped after this
    watch_wait_max_s: float = 10.0  # longest a watch call waits for new text
    watch_batch_s: float = 0.1  # after new text, wait this long for more (a call per batch, not per token)


def estimate_tokens(req: RunRequest) -> int:
    """A cheap, generous estimate of the prompt's tokens (words, or characters / 4, the larger)."""
    if req.kind == "chat":
        text = " ".join(m.get("content", "") for m in req.messages)
    elif req.kind == "completion":
        text = req.prompt
    else:
        text = " ".join(req.inputs)
    return max(len(text.split()), len(text) // 4)


def check_context(req: RunRequest, context: int) -> None:
    """`context_exceeded` when the prompt cannot fit (checked before any quote is used or money moves)."""
    if req.text_size() > context * CHARS_PER_TOKEN_MIN or estimate_tokens(req) > context:
        raise AgoraError(
            "context_exceeded",
            f"the prompt (about {estimate_tokens(req)} tokens) does not fit the model's context of {context}",
            details={"context": context, "estimate": estimate_tokens(req)},
        )


class InferenceProvider(Actor):
    name = "inference"

    def __init__(
        self,
        keypair: Keypair,
        book: ModelBook,
        *,
        settings: ProviderSettings | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.keypair = keypair
        self.did = keypair.did
        self.book = book
        self.settings = settings or ProviderSettings()
        self.clock = clock
        self._nonce = 0
        self._inflight: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()
        self.revenue = 0
        # one streamed request each: the runner's deltas as they come, then the record or an error
        self.sessions = Sessions(
            self.settings, clock, final_keys=("meter",), name="inference-stream", where="on this provider"
        )

    async def stop(self) -> None:
        """The node stops: end the open streams, close the runners (the builtin one owns a model server)."""
        await self.sessions.close()
        await self.book.close()

    def make_quote(self, requester: str, model: str, est_in: int, est_out: int) -> Quote:
        entry = self.book.get(model)
        if type(est_in) is not int or type(est_out) is not int or est_in < 0 or est_out < 0:
            raise AgoraError("invalid_argument", "est_in and est_out must be non-negative integers")
        self._nonce += 1
        self.stats["quotes"] += 1
        return Quote.issue(
            self.keypair,
            requester=requester,
            offer=entry.offer,
            est_in=est_in,
            est_out=est_out,
            iat=int(self.clock.now()),
            ttl_s=self.settings.quote_ttl_s,
            nonce=f"{int(self.clock.now())}-{self._nonce}",
        )

    def _admit(self, requester: str, quote_raw: bytes, req: RunRequest) -> Quote:
        """The checks before anything runs: the quote (ours, for this caller and model, not expired), the
        context, the model's concurrency."""
        quote = Quote.open(quote_raw, expected_signer=self.did)
        quote.check_valid(self.clock.now(), requester=requester, model=req.model)
        entry = self.book.get(req.model)
        check_context(req, entry.offer.context)
        if self._inflight[req.model] >= entry.offer.max_concurrency:
            self.stats["rate_limited"] += 1
            raise AgoraError("inference_rate_limited", f"{req.model} is at its max concurrency here")
        return quote

    def sign(self, quote: Quote, req: RunRequest, res: RunResult) -> MeteringRecord:
        rec = MeteringRecord.issue(
            self.keypair,
            quote=quote,
            tokens_in=res.tokens_in,
            tokens_out=res.tokens_out,
            ttft_ms=round(res.ttft_s * 1000),
            duration_ms=round(res.duration_s * 1000),
            prompt_hash=req.prompt_hash,
            output_hash=res.output_hash,
            partial=res.partial,
        )
        self.stats["served"] += 1
        self.revenue += rec.price  # what the record claims; what is actually paid shows in the ledger
        return rec

    async def serve(self, requester: str, quote_raw: bytes, req: RunRequest) -> tuple[RunResult, MeteringRecord]:
        """Run one request under a quote this node signed; the result and its signed metering record."""
        quote = self._admit(requester, quote_raw, req)
        self._inflight[req.model] += 1
        try:
            runner = await self.book.runner(req.model)
            try:
                async with asyncio.timeout(self.settings.run_timeout_s):
                    res = await runner.run(req)
            except TimeoutError:
                self.stats["timeouts"] += 1
                raise AgoraError(
                    "timeout", f"the runner did not answer within {self.settings.run_timeout_s} s"
                ) from None
        except AgoraError:
            self.stats["failed"] += 1
            raise
        finally:
            self._inflight[req.model] -= 1
        return res, self.sign(quote, req, res)

    # -- streams ----------------------------------------------------------------------------------
    def open_stream(self, requester: str, quote_raw: bytes, req: RunRequest) -> str:
        """Start streaming one request (same checks as `serve`); follow it with `watch_stream`."""
        self.sessions.check_room()
        quote = self._admit(requester, quote_raw, req)
        self._inflight[req.model] += 1

        async def pump(s: Session) -> None:
            await self._pump(s, quote, req)

        return self.sessions.open(requester, pump)

    async def _pump(self, s: Session, quote: Quote, req: RunRequest) -> None:
        t0 = time.perf_counter()
        ttft: float | None = None
        try:
            runner = await self.book.runner(req.model)
            final: RunResult | None = None
            async with asyncio.timeout(self.settings.run_timeout_s):
                async for ev in runner.stream(req):
                    if isinstance(ev, Delta):
                        if ttft is None:
                            ttft = time.perf_counter() - t0
                        s.push(ev.text)
                    else:
                        final = ev
            text = "".join(s.deltas)
            if final is None or final.text != text:
                if not s.deltas:
                    raise AgoraError("runner_failed", "the runner stopped before any output")
                # stopped mid-way: meter what was delivered (a chunk counts as a token, the prompt as estimated)
                final = RunResult(
                    text=text,
                    tokens_in=final.tokens_in if final is not None else estimate_tokens(req),
                    tokens_out=len(s.deltas),
                    ttft_s=ttft or 0.0,
                    duration_s=time.perf_counter() - t0,
                    finish_reason="error",
                    partial=True,
                )
            s.final["meter"] = self.sign(quote, req, final).raw
        except TimeoutError:
            self.stats["timeouts"] += 1
            s.error = AgoraError("timeout", f"the runner did not finish within {self.settings.run_timeout_s} s")
        except AgoraError as exc:
            self.stats["failed"] += 1
            s.error = exc
        except Exception as exc:  # a broken runner is the provider's failure, never the node's
            self.stats["failed"] += 1
            s.error = AgoraError("runner_failed", f"the runner failed ({type(exc).__name__})")
        finally:
            self._inflight[req.model] -= 1

    async def watch_stream(self, requester: str, sid: str, cursor: int, wait_s: float) -> dict[str, Any]:
        """What the stream has after `cursor` (waiting up to `wait_s` for something new), and its end."""
        return await self.sessions.watch(requester, sid, cursor, wait_s)

    # -- behaviors --------------------------------------------------------------------------------
    @behavior(QUOTE_CMD, public=True, mutating=False)
    async def quote(self, ctx: CallContext) -> dict[str, Any]:
        args = ctx.args
        check_version(args)
        q = self.make_quote(ctx.invoker, str(args.get("model")), args.get("est_in", 0), args.get("est_out", 0))
        return {"quote": q.raw}

    @behavior(RUN_CMD, public=True, mutating=True)
    async def run(self, ctx: CallContext) -> dict[str, Any]:
        res, rec = await self.serve(ctx.invoker, *_quoted_request(ctx.args))
        return {"result": result_to_wire(res), "meter": rec.raw}

    @behavior(STREAM_CMD, public=True, mutating=True)
    async def stream(self, ctx: CallContext) -> dict[str, Any]:
        return {"session": self.open_stream(ctx.invoker, *_quoted_request(ctx.args))}

    @behavior(WATCH_CMD, public=True, mutating=False)
    async def watch(self, ctx: CallContext) -> dict[str, Any]:
        args = ctx.args
        check_version(args)
        return await self.watch_stream(ctx.invoker, str(args.get("session")), args.get("cursor", 0), wait_arg(args))


def _quoted_request(args: Any) -> tuple[bytes, RunRequest]:
    """A run's or a stream's args: the signed quote's bytes and the request."""
    check_version(args)
    raw = args.get("quote")
    if not isinstance(raw, bytes):
        raise AgoraError("quote_invalid", "args.quote must be the signed quote's bytes")
    return raw, request_from_wire(args.get("request"))


__all__ = ["InferenceProvider", "ProviderSettings", "check_context", "estimate_tokens"]
