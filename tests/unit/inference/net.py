"""A small in-process inference market for tests: providers (mock runners), their ads, a requester."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from agora.clock import ManualClock
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.inference.offers import ModelBook
from agora.inference.provider import InferenceProvider, ProviderSettings
from agora.inference.rpc import QUOTE_CMD, STREAM_CMD, WATCH_CMD, request_from_wire, result_to_wire
from agora.inference.runner import Runner, RunnerSpec
from agora.inference.runner_mock import MockRunner
from agora.models.capability import Capability, GiB
from agora.store import MemoryStore
from agora.wire.market import CapacityAd, ExecutorState
from agora.wire.model_offer import ModelOffer
from tests.unit.market.ads import offer

CLOCK_START = 1_700_000_000.0


async def make_provider(
    clock: ManualClock, runner: Runner, *, price: tuple[int, int] = (10, 20), context: int = 1000, conc: int = 2
) -> tuple[InferenceProvider, CapacityAd]:
    kp = Keypair.generate()
    book = ModelBook(await MemoryStore(clock).open(), runner_factory=lambda _spec: runner)
    m = ModelOffer("mock-chat", "chat", context, price[0], price[1], conc)
    await book.add(m, RunnerSpec("mock"))
    await book.add(ModelOffer("mock-embed", "embeddings", context, price[0], 0, conc), RunnerSpec("mock"))
    prov = InferenceProvider(kp, book, clock=clock, settings=ProviderSettings(quote_ttl_s=60, run_timeout_s=30))
    ad = CapacityAd.issue(
        kp,
        seq=1,
        iat=int(clock.now()),
        ttl_s=600,
        offer=offer(kp.did, valid=(0, 2_000_000_000)),
        free=Capability(cpu_millis=1000, memory_bytes=GiB),
        executors={"wasm": ExecutorState(True)},
        benchmark_score=None,
        version="0",
        models=book.offers(),
    )
    return prov, ad


class Link:
    """Delivers the requester's calls to providers the way their behaviors would (quote, run)."""

    def __init__(self, requester: str, providers: Sequence[InferenceProvider]) -> None:
        self.requester = requester
        self.providers = {p.did: p for p in providers}
        self.calls: list[tuple[str, str]] = []
        self.gone: set[str] = set()  # providers that stopped answering (their calls time out)

    async def __call__(self, target: str, cmd: str, args: dict[str, Any], timeout: float) -> Any:
        self.calls.append((target, cmd))
        p = self.providers[target]
        if target in self.gone:
            raise AgoraError("timeout", "the provider does not answer")
        async with asyncio.timeout(timeout):
            if cmd == STREAM_CMD:
                return {"session": p.open_stream(self.requester, args["quote"], request_from_wire(args["request"]))}
            if cmd == WATCH_CMD:
                return await p.watch_stream(self.requester, args["session"], args["cursor"], args["wait"])
            if cmd == QUOTE_CMD:
                return {"quote": p.make_quote(self.requester, args["model"], args["est_in"], args["est_out"]).raw}
            res, rec = await p.serve(self.requester, args["quote"], request_from_wire(args["request"]))
            return {"result": result_to_wire(res), "meter": rec.raw}


def mock(**kw: Any) -> MockRunner:
    return MockRunner(**kw)
