"""The inference-routing part of the world: model providers and requesters running the real inference code.

Each provider is the real `agora.inference.provider.InferenceProvider` (signed quotes, the context and
quote checks, signed `MeteringRecord`s) over a `ModelBook` whose runner is `SimRunner`: the model is not
run, its answer is drawn from the provider's profile (tokens/s, time to first token, reliability, how often
a failure hangs until the requester's timeout, max concurrency, answered with 429 while busy). A dishonest
provider signs records that bill more output tokens than its answer reported. Each requester is the real
`agora.inference.requester.InferenceRequester` (candidates from the capacity ads, `routing.plan` with its
strategy and trust's cooldowns, `routing.fallback`, `metering.verify_record`, escrow per request through
the world's `InternalLedgerSettlement`, `pay_after` or `pay_before`); its `call` hands the RPC arguments to
the provider in-process instead of over the transport (the faster path). A request is handled at its arrival
event; its simulated latency is the sum of what each attempt cost (a hang costs the requester's run
timeout) plus the answering provider's network round trip, time to first token and generation time.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.inference.offers import ModelBook
from agora.inference.provider import InferenceProvider, ProviderSettings
from agora.inference.requester import InferenceRequester
from agora.inference.routing import RoutingPolicy
from agora.inference.rpc import QUOTE_CMD, RUN_CMD, request_from_wire, result_to_wire
from agora.inference.runner import RunnerSpec, RunRequest, RunResult
from agora.ledger import Evidence
from agora.ledger import trust as trustlib
from agora.models.capability import Capability, PriceSchedule
from agora.models.offer import OfferTerms, PriceTerms, ResourceOffer
from agora.store.memory import MemoryStore
from agora.wire.inference import MeteringRecord, Quote
from agora.wire.market import CapacityAd
from agora.wire.model_offer import ModelOffer

if TYPE_CHECKING:
    from agora.sim.scenario import Inference
    from agora.sim.world import World

REAL_CODE = {
    "inference provider": (
        "agora.inference.provider.InferenceProvider: signed quotes, the quote/context checks, signed MeteringRecords"
    ),
    "inference requester": (
        "agora.inference.requester.InferenceRequester.run_direct: candidates from the ads, routing.plan with the "
        "strategy and trust's cooldowns, routing.fallback, metering.verify_record, escrow per request"
    ),
    "inference payment": (
        "escrow per request through InternalLedgerSettlement: pay_after released against the countersigned "
        "record, pay_before refunded and the record's price transferred; a failed attempt refunded"
    ),
    "inference trust": (
        "failed attempts recorded as the node records them (timeout / failure); trust.penalty's cooldowns"
    ),
}
FASTER_PATH = {
    "inference messages": "the quote and run RPCs' arguments handed to the provider in-process (no transport)",
    "inference runner": (
        "no model runs: SimRunner draws tokens, time to first token, generation time, failures and hangs from "
        "the provider's profile; a busy provider answers 429; a hang costs the run timeout in simulated time"
    ),
    "inference time": "a request is handled at its arrival; its latency is the simulated cost of its attempts",
}
MODEL = "sim-chat"
REQUEST_STATES = ("served", "failed")
# what an attempt that did not answer cost the requester, by code (seconds; a hang costs the run timeout)
FAIL_COST_S = {"inference_rate_limited": 0.0, "runner_failed": 0.5, "metering_invalid": 0.0}


def keypair_for(seed: int, name: str) -> Keypair:
    """A deterministic keypair per simulated actor (the routing strategies break ties by DID)."""
    return Keypair.from_seed(hashlib.sha256(f"agora-sim:{seed}:{name}".encode()).digest())


@dataclass
class ModelProvider:
    name: str
    actor: InferenceProvider
    runner: SimRunner
    offer: ModelOffer
    dishonest: bool
    ad: CapacityAd | None = None
    earned: int = 0
    evidence: list[Evidence] = field(default_factory=list)


@dataclass
class SimRunner:
    """A model backend drawn from the provider's profile (see the module doc)."""

    tokens_per_s: float
    ttft_s: float
    rtt_s: float
    reliability: float
    hang_share: float
    max_concurrency: int
    sim: InferenceSim
    name: str = "sim"
    busy: list[float] = field(default_factory=list)  # simulated end times of the runs in progress

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def models(self) -> Sequence[str]:
        return (MODEL,)

    async def run(self, req: RunRequest) -> RunResult:
        sim, now = self.sim, self.sim.world.clock.now()
        self.busy = [t for t in self.busy if t > now]
        if len(self.busy) >= self.max_concurrency:
            raise AgoraError("inference_rate_limited", "the provider is at its max concurrency")
        rng = sim.rng
        if rng.random() >= self.reliability:
            if rng.random() < self.hang_share:
                raise AgoraError("timeout", "the provider did not answer in time")
            raise AgoraError("runner_failed", "the model server answered 500")
        r = sim.current
        tokens_out = max(1, min(req.max_tokens, round(req.max_tokens * r.output_share)))
        gen = tokens_out / self.tokens_per_s
        self.busy.append(now + self.ttft_s + gen)
        text = f"{r.id}:{tokens_out}"
        return RunResult(
            text=text,
            tokens_in=r.tokens_in,
            tokens_out=tokens_out,
            ttft_s=self.ttft_s,
            duration_s=self.ttft_s + gen,
        )

    def stream(self, req: RunRequest) -> Any:
        raise AgoraError("unavailable", "the simulator does not stream")


class DishonestProvider(InferenceProvider):
    """Signs metering records that bill more output tokens than its answer reported."""

    inflate: float = 1.5

    def sign(self, quote: Quote, req: RunRequest, res: RunResult) -> MeteringRecord:
        billed = RunResult(
            text=res.text,
            tokens_in=res.tokens_in,
            tokens_out=max(res.tokens_out + 1, math.ceil(res.tokens_out * self.inflate)),
            ttft_s=res.ttft_s,
            duration_s=res.duration_s,
        )
        return super().sign(quote, req, billed)


@dataclass
class Request:
    id: str
    requester: str
    strategy: str
    tokens_in: int
    max_tokens: int
    output_share: float
    arrival: float
    state: str = "pending"
    cost_s: float = 0.0  # what the attempts cost so far (simulated seconds)
    attempts: int = 0
    provider: str | None = None


class InferenceSim:
    def __init__(self, world: World, cfg: Inference) -> None:
        self.world = world
        self.cfg = cfg
        seed = world.sc.seed
        self.rng = random.Random(f"{seed}:inference")
        self._arrivals = random.Random(f"{seed}:inference-arrivals")
        self.providers: dict[str, ModelProvider] = {}
        self.requesters: dict[str, InferenceRequester] = {}
        self.strategy_of: dict[str, str] = {}
        self._order: list[str] = []  # the requesters' DIDs, sorted (which one sends the next request)
        self.requests: dict[str, Request] = {}
        self.current = Request("", "", "", 0, 1, 1.0, 0.0)
        self.trust: dict[str, float] = {}
        self.cooling: dict[str, float] = {}
        self.store = MemoryStore(world.clock)
        # metrics
        self.failed: Counter[str] = Counter()
        self.fallbacks = 0
        self.latency: dict[str, list[float]] = {}
        self.tokens_paid: Counter[str] = Counter()  # by strategy
        self.paid: Counter[str] = Counter()
        self.cooldowns = 0
        self.samples: Counter[str] = Counter()

    # -- setup ------------------------------------------------------------------------------------------

    async def setup(self) -> None:
        cfg, rng, w = self.cfg, self.rng, self.world
        seed = w.sc.seed
        for i in range(cfg.providers.count):
            name = f"m{i:05d}"
            kp = keypair_for(seed, name)
            pr = cfg.providers
            runner = SimRunner(
                tokens_per_s=max(1.0, pr.tokens_per_s.draw(rng)),
                ttft_s=pr.ttft_ms.draw(rng) / 1000.0,
                rtt_s=pr.latency_ms.draw(rng) / 1000.0,
                reliability=pr.reliability.draw(rng),
                hang_share=pr.hang_share,
                max_concurrency=pr.max_concurrency.draw_int(rng, 1),
                sim=self,
            )
            offer = ModelOffer(
                MODEL,
                "chat",
                pr.context,
                pr.price_in.draw_int(rng, 0),
                pr.price_out.draw_int(rng, 0),
                runner.max_concurrency,
            )
            dishonest = rng.random() < pr.dishonest

            def factory(_spec: RunnerSpec, r: SimRunner = runner) -> SimRunner:
                return r

            book = ModelBook(self.store, runner_factory=factory)
            await book.add(offer, RunnerSpec("mock"))
            settings = ProviderSettings(quote_ttl_s=300, run_timeout_s=cfg.run_timeout_s)
            actor: InferenceProvider
            if dishonest:
                actor = DishonestProvider(kp, book, settings=settings, clock=w.clock)
                actor.inflate = pr.inflate
            else:
                actor = InferenceProvider(kp, book, settings=settings, clock=w.clock)
            self.providers[kp.did] = ModelProvider(name, actor, runner, offer, dishonest)
            w.earners.add(kp.did)
        for did, p in self.providers.items():
            p.ad = CapacityAd(
                provider=did,
                seq=1,
                iat=int(w.clock.now()),
                ttl_s=10**9,
                offer=ResourceOffer(
                    offer_id=f"o-{p.name}",
                    provider=did,
                    resources=Capability(cpu_millis=1000, memory_bytes=1 << 30, executors=frozenset({"process"})),
                    price=PriceTerms(base=PriceSchedule(cpu_second=0)),
                    terms=OfferTerms(),
                    valid_from=int(w.clock.now()) - 1,
                    valid_until=int(w.end) + 86400,
                ),
                free=Capability(cpu_millis=1000, memory_bytes=1 << 30, executors=frozenset({"process"})),
                executors={},
                benchmark_score=None,
                version="sim",
                models=(p.offer,),
            )
        ads = tuple(p.ad for p in self.providers.values() if p.ad is not None)
        names, weights = zip(*cfg.strategies, strict=True)
        for i in range(cfg.requesters.count):
            kp = keypair_for(seed, f"ir{i:05d}")
            strategy = rng.choices(names, weights=weights)[0]
            did = kp.did

            async def call(provider: str, command: str, args: dict[str, Any], timeout: float, me: str = did) -> Any:
                return await self._call(me, provider, command, args)

            async def all_ads() -> tuple[CapacityAd, ...]:
                return ads

            async def on_failure(provider: str, exc: AgoraError) -> None:
                self._failed_attempt(provider, exc)

            self.requesters[did] = InferenceRequester(
                did,
                call,
                all_ads,
                settlement=w.checked,
                payment=cfg.payment,
                clock=w.clock,
                on_failure=on_failure,
                cooling=self._cooling_down,
                run_timeout_s=cfg.run_timeout_s,
                keypair=kp,
            )
            self.strategy_of[did] = strategy
            self.latency.setdefault(strategy, [])
            if cfg.requesters.funds:
                await w.checked.mint(did, cfg.requesters.funds, actor=w.operator, idem=f"fund:{did}")
        self._order = sorted(self.requesters)

    def schedule(self, now: float) -> None:
        a = self.cfg.requesters.arrivals
        if a.rate_per_hour <= 0:
            return
        t = self.world.next_arrival(now, a, self._arrivals)
        if t is not None:
            self.world.at(t, "infer")

    # -- one request --------------------------------------------------------------------------------------

    async def _call(self, requester: str, provider: str, command: str, args: dict[str, Any]) -> Any:
        p = self.providers[provider]
        r = self.current
        if command == QUOTE_CMD:
            q = p.actor.make_quote(requester, str(args["model"]), args["est_in"], args["est_out"])
            return {"quote": q.raw}
        if command == RUN_CMD:
            r.attempts += 1
            try:
                res, rec = await p.actor.serve(requester, args["quote"], request_from_wire(args["request"]))
            except AgoraError as exc:
                r.cost_s += p.runner.rtt_s + (
                    self.cfg.run_timeout_s if exc.code == "timeout" else FAIL_COST_S.get(exc.code, 0.0)
                )
                raise
            r.cost_s += p.runner.rtt_s + res.duration_s
            r.provider = provider
            return {"result": result_to_wire(res), "meter": rec.raw}
        raise AgoraError("internal", f"the simulator has no inference command {command}")

    def _cooling_down(self, provider: str) -> bool:
        return self.cooling.get(provider, 0.0) > self.world.clock.now()

    def _failed_attempt(self, provider: str, exc: AgoraError) -> None:
        kind = "timeout" if exc.code == "timeout" else "failure"  # what the node records (node/inference.py)
        self.failed[exc.code] += 1
        self._evidence(provider, kind)

    def _evidence(self, provider: str, kind: str) -> None:
        w, now = self.world, self.world.clock.now()
        p = self.providers[provider]
        p.evidence.append(Evidence(provider, kind, now, cites={"job": self.current.id}))
        if len(p.evidence) > 256:
            del p.evidence[: len(p.evidence) - 256]
        rep = trustlib.report(provider, p.evidence, now, w.trust_settings)
        self.trust[provider] = rep.score
        if rep.penalty.cooling_until is not None:
            if self.cooling.get(provider) != rep.penalty.cooling_until:
                self.cooldowns += 1
            self.cooling[provider] = rep.penalty.cooling_until
        else:
            self.cooling.pop(provider, None)

    async def arrive(self) -> None:
        cfg, rng, w = self.cfg, self.rng, self.world
        now = w.clock.now()
        rq = cfg.requests
        did = self._order[rng.randrange(len(self._order))]
        r = Request(
            id=f"q{len(self.requests):08d}",
            requester=did,
            strategy=self.strategy_of[did],
            tokens_in=rq.prompt_tokens.draw_int(rng, 1),
            max_tokens=rq.max_tokens.draw_int(rng, 1),
            output_share=rq.output_share.draw(rng),
            arrival=now,
        )
        self.requests[r.id] = r
        self.current = r
        req = RunRequest(
            kind="chat",
            model=MODEL,
            messages=({"role": "user", "content": " ".join(["w"] * r.tokens_in)},),
            max_tokens=r.max_tokens,
        )
        max_price = None if rq.max_price is None else rq.max_price.draw_int(rng, 0)
        policy = RoutingPolicy(strategy=r.strategy, max_price=max_price)
        requester = self.requesters[did]
        try:
            out = await requester.run_direct(req, policy)
        except AgoraError as exc:
            r.state = "failed"
            self.failed[f"request:{exc.code}"] += 1
            self.samples["failed"] += 1
            w.inv.touch_request(r)
            return
        r.state = "served"
        r.provider = out.provider
        p = self.providers[out.provider]
        p.earned += out.paid
        self._evidence(out.provider, "success")
        if r.attempts > 1:
            self.fallbacks += 1
        self.latency[r.strategy].append(r.cost_s)
        self.tokens_paid[r.strategy] += out.record.tokens_in + out.record.tokens_out
        self.paid[r.strategy] += out.paid
        self.samples["served"] += 1
        w.inv.touch_request(r)

    # -- metrics ----------------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        from agora.sim.metrics import deciles, quantiles

        served = sum(r.state == "served" for r in self.requests.values())
        failed = sum(r.state == "failed" for r in self.requests.values())
        spend = [self.requesters[d].totals.spend for d in sorted(self.requesters)]
        earnings = sorted(p.earned for p in self.providers.values())
        refused = sum(rq.audit.refused.total() for rq in self.requesters.values())
        dishonest = [d for d, p in self.providers.items() if p.dishonest]

        def mean_trust(ds: list[str]) -> float | None:
            ts = [self.trust[d] for d in ds if d in self.trust]
            return round(sum(ts) / len(ts), 6) if ts else None

        honest = [d for d, p in self.providers.items() if not p.dishonest]
        lat = {}
        self.paid["all"] = sum(self.paid[s] for s in self.latency)
        self.tokens_paid["all"] = sum(self.tokens_paid[s] for s in self.latency)
        for s in sorted(self.latency):
            q = quantiles(self.latency[s], (0.5, 0.95))
            lat[s] = {"p50": round(q["p50"], 3), "p95": round(q["p95"], 3), "n": q["n"]}
        return {
            "inference_requests": len(self.requests),
            "inference_served": served,
            "inference_failed": failed,
            "inference_failures": dict(sorted(self.failed.items())),
            "inference_fallback_rate": round(self.fallbacks / served, 6) if served else 0.0,
            "inference_latency_s": lat,
            "inference_spend_per_requester": {
                "mean": round(sum(spend) / len(spend), 3) if spend else 0.0,
                "max": max(spend, default=0),
                "total": sum(spend),
            },
            "inference_earnings_by_decile": deciles(earnings),
            "inference_price_per_1k_tokens": {
                s: round(self.paid[s] * 1000 / self.tokens_paid[s], 6) if self.tokens_paid[s] else 0.0
                for s in [*sorted(self.latency), "all"]
            },
            "metering_disputes_caught": refused,
            "inference_dishonest_providers": len(dishonest),
            "inference_trust_end": {"honest": mean_trust(honest), "dishonest": mean_trust(dishonest)},
            "inference_cooldowns": self.cooldowns,
        }

    def sample(self, series: dict[str, list[Any]]) -> None:
        series["inference_served"].append(self.samples["served"])
        series["inference_failed"].append(self.samples["failed"])
        self.samples.clear()

    def check(self, r: Request) -> None:
        if r.state not in REQUEST_STATES:
            self.world.inv.fail("request_state", f"inference request {r.id} is in an unrecorded state {r.state!r}")

    def final(self) -> None:
        for r in self.requests.values():
            self.check(r)


__all__ = ["MODEL", "REQUEST_STATES", "InferenceSim", "SimRunner", "keypair_for"]
