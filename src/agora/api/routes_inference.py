"""Routes of the inference marketplace (docs/inference.md):

    GET    /inference/models           the network's models: providers and prices (the market index, with
                                       this node's own newest published ad)
    GET    /inference/models/local     the models this node serves (with their runners)
    POST   /inference/models           serve a model (`agora model add`)
    DELETE /inference/models/{model}   stop serving it
    POST   /inference/quote            signed quotes from the providers routing would use
    POST   /inference/run              one request through the market (`agora infer`): answer, metering, payment
                                       (`quote`: a quote's CID from /inference/quote, answered by its provider)
    GET    /inference/summary          spend, revenue, refused records

Prompts and outputs pass through these handlers only in memory: nothing here logs them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from agora.inference.requester import Outcome
from agora.inference.routing import RoutingPolicy
from agora.inference.runner import RunnerSpec, RunRequest
from agora.node import Node
from agora.node.inference import inference_of
from agora.wire.inference import MeteringRecord, Quote
from agora.wire.model_offer import ModelOffer


class ModelBody(BaseModel):
    model: str
    kind: str = "chat"
    context: int = 2048
    price_in: int = 0
    price_out: int = 0
    max_concurrency: int = 1
    runner: str = "mock"
    url: str | None = None
    upstream_model: str | None = None


class Routing(BaseModel):
    strategy: str = "balanced"
    order: list[str] = Field(default_factory=list)
    only: list[str] = Field(default_factory=list)
    ignore: list[str] = Field(default_factory=list)
    allow_fallbacks: bool = True
    max_price: int | None = None

    def policy(self) -> RoutingPolicy:
        return RoutingPolicy(
            self.strategy, tuple(self.order), tuple(self.only), tuple(self.ignore), self.allow_fallbacks, self.max_price
        )


class QuoteBody(Routing):
    model: str
    est_in: int = Field(100, ge=0)
    est_out: int = Field(100, ge=0)


class RunBody(Routing):
    model: str = "smollm2-135m"
    prompt: str
    max_tokens: int = 64
    kind: str = "chat"
    quote: str | None = None  # the CID of a quote from /inference/quote: answered by THAT provider under it


def quote_dict(q: Quote) -> dict[str, Any]:
    return {
        "cid": str(q.cid),
        "provider": q.provider,
        "model": q.model,
        "price_in": q.price_in,
        "price_out": q.price_out,
        "est_in": q.est_in,
        "est_out": q.est_out,
        "max_total": q.max_total,
        "iat": q.iat,
        "valid_until": q.valid_until,
    }


def record_dict(r: MeteringRecord) -> dict[str, Any]:
    return {
        "cid": str(r.cid),
        "provider": r.provider,
        "requester": r.requester,
        "quote": str(r.quote),
        "model": r.model,
        "tokens_in": r.tokens_in,
        "tokens_out": r.tokens_out,
        "ttft_ms": r.ttft_ms,
        "duration_ms": r.duration_ms,
        "prompt_hash": r.prompt_hash,
        "output_hash": r.output_hash,
        "price": r.price,
        "partial": r.partial,
        "verified": True,
    }


def outcome_meta(out: Outcome) -> dict[str, Any]:
    """What the requester learns beside the answer: who served it, the verified record, what was paid."""
    return {
        "provider": out.provider,
        "quote": quote_dict(out.quote),
        "metering": record_dict(out.record),
        "paid": out.paid,
    }


def router(node: Node) -> APIRouter:
    app = APIRouter()

    @app.get("/inference/models", tags=["inference"])
    async def network_models() -> dict[str, Any]:
        """Every model offered in the live capacity ads, with its providers and prices."""
        models = await inference_of(node).requester.models()
        return {
            "models": [
                {
                    "model": m,
                    "kind": cands[0].offer.kind,
                    "providers": [{"provider": c.provider, **c.offer.to_dict()} for c in cands],
                }
                for m, cands in models.items()
            ]
        }

    @app.get("/inference/models/local", tags=["inference"])
    async def local_models() -> dict[str, Any]:
        """The models this node serves, with their runners."""
        return {"models": [e.to_dict() for e in inference_of(node).book.entries()]}

    @app.post("/inference/models", tags=["inference"])
    async def add_model(body: ModelBody) -> dict[str, Any]:
        """Serve a model (replaces this node's entry of the same id); answers once the capacity ad offering it
        is published (`ad`: its seq, or why it is not in the market)."""
        offer = ModelOffer(body.model, body.kind, body.context, body.price_in, body.price_out, body.max_concurrency)
        spec = RunnerSpec.from_dict({"kind": body.runner, "url": body.url, "upstream_model": body.upstream_model})
        return await inference_of(node).add_model(offer, spec)

    @app.delete("/inference/models/{model:path}", tags=["inference"])
    async def remove_model(model: str) -> dict[str, Any]:
        return await inference_of(node).remove_model(model)

    @app.post("/inference/quote", tags=["inference"])
    async def quote(body: QuoteBody) -> dict[str, Any]:
        """Signed quotes (valid until a time) from the providers routing would use, in routing order."""
        qs = await inference_of(node).requester.quotes(body.model, body.est_in, body.est_out, body.policy())
        return {"quotes": [quote_dict(q) for q in qs]}

    @app.post("/inference/run", tags=["inference"])
    async def run(body: RunBody) -> dict[str, Any]:
        """One request through the market: the answer, the verified metering record and the payment."""
        if body.kind == "completion":
            req = RunRequest("completion", body.model, prompt=body.prompt, max_tokens=body.max_tokens)
        else:
            msgs = ({"role": "user", "content": body.prompt},)
            req = RunRequest("chat", body.model, messages=msgs, max_tokens=body.max_tokens)
        out = await inference_of(node).requester.run(req, body.policy(), quote=body.quote)
        return {
            "text": out.result.text,
            "usage": {"prompt_tokens": out.record.tokens_in, "completion_tokens": out.record.tokens_out},
        } | outcome_meta(out)

    @app.get("/inference/summary", tags=["inference"])
    async def summary() -> dict[str, Any]:
        return inference_of(node).summary()

    return app


__all__ = ["outcome_meta", "quote_dict", "record_dict", "router"]
