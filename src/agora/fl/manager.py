"""The node's training runs: start one from a training spec, follow it, stop it, summarise them.

`TrainingManager.start(body)` validates the training spec (`training_spec_invalid`), matches it against
the data ads this node can reach (`match_training`: every reason with counts; no match is an answer, not
an error) and starts the run in a task the manager owns (stopped and awaited by `close`). Each chosen
offer becomes a contract in the node's `ContractBook` (`fl.contracts`), paid per update through the
node's settlement when it has one (`EscrowPayer`). Every round and contract move is an event.

Reach: the data ads come from the hub's data-ad index (`fl.ads`, each ad verified by the reader); only
where there is no such index does the owner ask each live peer (`fetch_ads`). `providers=local` trains on
this node's own data sets instead (one machine holding several data sets).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import numpy as np

from agora.actor import Runtime
from agora.clock import SYSTEM_CLOCK, Clock
from agora.errors import AgoraError
from agora.fl.ads import DataIndex
from agora.fl.contracts import TrainingContracts
from agora.fl.datasets import DatasetBook
from agora.fl.matching import TrainingDecision, match_training
from agora.fl.remote import RemoteLink, WeightsShelf, fetch_ads
from agora.fl.rounds import EscrowPayer, FlProvider, LocalLink, Participant, TrainingRun
from agora.fl.trainers import Params
from agora.identity import Keypair
from agora.ledger.interfaces import Settlement
from agora.market.contracts import ContractBook
from agora.models.intent import Intent
from agora.models.training import TrainingSpec, training_from_dict
from agora.storage import Storage
from agora.wire.fl import DataAd

MAX_RUNS = 64
JOIN_TIMEOUT_S = 60.0  # a provider starts its sandboxed trainer (a Python process importing numpy)
AD_TTL_S = 3600


def initial_params(spec: TrainingSpec) -> Params:
    """The model's starting weights: zeros for softmax regression, seeded He init for the MLP (the same
    as the built-in trainers' `get_parameters`, so every provider starts from the owner's weights)."""
    features = len(spec.schema.features)
    classes = len(spec.schema.classes) or 2
    if spec.trainer == "mlp":
        rng = np.random.default_rng(spec.hyper.seed)
        h = spec.hyper.hidden
        return [
            rng.normal(0.0, np.sqrt(2.0 / features), (features, h)),
            np.zeros(h),
            rng.normal(0.0, np.sqrt(1.0 / h), (h, classes)),
            np.zeros(classes),
        ]
    return [np.zeros((features, classes)), np.zeros(classes)]


class EvidenceSink(Protocol):
    async def record(self, provider: str, kind: str, cites: dict[str, str], detail: str = "") -> None: ...


def rejection_evidence(trust: EvidenceSink, run_id: str) -> Callable[[Participant, int, AgoraError], Awaitable[None]]:
    """The run's `on_rejected`: a rejected update is a `failure` in the provider's trust record, citing
    the contract and the run (a NaN, wrong-shape or oversized update is the provider's fault)."""

    async def record(p: Participant, r: int, err: AgoraError) -> None:
        reason = str(err.details.get("reason", err.code))
        await trust.record(p.provider, "failure", {"contract": p.contract_id, "job": run_id}, f"round {r}: {reason}")

    return record


def late_evidence(trust: EvidenceSink, run_id: str) -> Callable[[Participant, int, str], Awaitable[None]]:
    """The run's `on_late`: a straggler's missed round is `late` evidence (lighter than a failure)."""

    async def record(p: Participant, r: int, why: str) -> None:
        await trust.record(p.provider, "late", {"contract": p.contract_id, "job": run_id}, f"round {r}: {why}")

    return record


class TrainingManager:
    def __init__(
        self,
        keypair: Keypair,
        datasets: DatasetBook,
        provider: FlProvider,
        contracts: ContractBook,
        *,
        settlement: Settlement | None = None,
        events: Any = None,
        trust: EvidenceSink | None = None,
        runtime: Runtime | None = None,
        peers: Callable[[], list[str]] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        objects: Storage | None = None,
        index: DataIndex | None = None,
    ) -> None:
        self.keypair = keypair
        self.index = index  # the hub's data-ad index: where the owner reads the providers' data ads
        self.objects = objects  # the hub object store: large global weights go through it
        self.datasets = datasets
        self.provider = provider
        self.contracts = contracts
        self.settlement = settlement
        self.events = events
        self.trust = trust
        self.runtime = runtime
        self.peers = peers
        self.clock = clock
        self._remote: dict[str, list[tuple[RemoteLink, str]]] = {}
        self.runs: dict[str, TrainingRun] = {}
        self.decisions: dict[str, dict[str, Any]] = {}
        self._tasks: dict[str, asyncio.Task[dict[str, Any]]] = {}
        self._seq = 0

    async def data_ads(self) -> list[DataAd]:
        """The data ads this node reaches: its own data sets, signed as a data ad."""
        offers = await self.datasets.list()
        if not offers:
            return []
        self._seq += 1
        ad = DataAd.issue(self.keypair, seq=self._seq, iat=int(self.clock.now()), ttl_s=AD_TTL_S, offers=offers)
        return [ad]

    async def _event(self, kind: str, subject: str, data: dict[str, Any]) -> None:
        if self.events is not None:
            await self.events.record(kind, subject, **data)

    async def for_intent(self, intent: Intent, preview: bool) -> dict[str, Any]:
        """What the matcher does with a `kind: training` intent: the decision (preview), or the run started
        with the intent's budget, its contracts naming the intent."""
        assert intent.training is not None
        if preview:
            spec = intent.training
            decision, source = await self._decide(spec, intent.budget, "peers")
            return {
                "state": "preview",
                "matched": decision.matched,
                "match": {**decision.to_dict(), "ads_from": source},
            }
        return await self.start(intent.training.to_dict(), budget=intent.budget, intent_id=intent.intent_id)

    async def _decide(self, spec: TrainingSpec, budget: int | None, providers: str) -> tuple[TrainingDecision, str]:
        """The decision, and where the ads came from: `local`, `index` (the hub's) or `peers`."""
        now = self.clock.now()
        if providers == "local":
            own = await self.data_ads()
            return match_training(spec, own, budget=budget, now=now, one_per_provider=False), "local"
        ads, source = await self._index_ads(), "index"
        if ads is None:  # no index on this hub (or it refused): ask each live peer for its data ad
            if self.runtime is None or self.peers is None:
                raise AgoraError("unavailable", "this node has no runtime to reach data providers")
            ads, source = await fetch_ads(self.runtime, [p for p in self.peers() if p != self.keypair.did]), "peers"
        decision = match_training(spec, ads, budget=budget, now=now, exclude=frozenset({self.keypair.did}))
        return decision, source

    async def _index_ads(self) -> list[DataAd] | None:
        """Every data ad in the hub's index (each verified there), or None when there is no index to read:
        a node without a hub, or a hub that does not hold the data-ad bucket (an allowlisted hub that
        opens only its configured buckets) -- the one case the peer path is still for."""
        if self.index is None:
            return None
        try:
            return await self.index.ads()
        except AgoraError as err:
            await self._event("training.index_unavailable", self.keypair.did, {"code": err.code})
            return None

    async def start(
        self,
        body: Mapping[str, Any],
        *,
        budget: int | None = None,
        providers: str = "peers",
        intent_id: str | None = None,
    ) -> dict[str, Any]:
        """`providers`: `peers` (the data ads of the peers this node sees, one contract per provider, over the
        runtime) or `local` (this node's own data sets, one contract per data set, in-process)."""
        if providers not in ("peers", "local"):
            raise AgoraError("invalid_argument", f"providers is peers or local, got {providers!r}")
        spec = training_from_dict(body)
        if len(self.runs) >= MAX_RUNS:
            raise AgoraError("invalid_argument", f"at most {MAX_RUNS} training runs are kept; restart the node")
        run_id = "run-" + secrets.token_hex(5)
        decision, source = await self._decide(spec, budget, providers)
        self.decisions[run_id] = {**decision.to_dict(), "ads_from": source}
        if not decision.matched:
            await self._event("training.unmatched", run_id, {"counts": dict(decision.counts)})
            return {"run_id": run_id, "state": "unmatched", "match": self.decisions[run_id]}
        participants = []
        shelf = WeightsShelf(self.objects)  # one put per round, shared by the run's links
        for i, offer in enumerate(decision.chosen):
            cid = f"{run_id}-c{i}"
            if providers == "local":
                await self.provider.join(cid, owner=self.keypair.did, run_id=run_id, offer_id=offer.offer_id, spec=spec)
                link: Any = LocalLink(self.provider)
            else:
                assert self.runtime is not None
                link = RemoteLink(self.runtime, offer.provider, shelf=shelf)
                try:
                    await link.join(
                        cid, run_id=run_id, offer_id=offer.offer_id, training=spec.to_dict(), timeout_s=JOIN_TIMEOUT_S
                    )
                except AgoraError as err:
                    await self._event("training.join_failed", cid, {"provider": offer.provider, "code": err.code})
                    continue
                self._remote.setdefault(run_id, []).append((link, cid))
            participants.append(Participant(offer.provider, cid, offer.offer_id, offer.price_per_update, link))
        if len(participants) < spec.min_providers:
            await self._leave_remote(run_id)
            await self._event("training.unmatched", run_id, {"joined": len(participants)})
            answer = dict(self.decisions[run_id])
            answer["counts"] = {**answer["counts"], "join_failed": len(decision.chosen) - len(participants)}
            return {"run_id": run_id, "state": "unmatched", "match": answer}
        payer = None
        if self.settlement is not None and any(p.price_per_update for p in participants):
            payer = EscrowPayer(self.settlement, self.keypair, run_id=run_id)
        run = TrainingRun(
            run_id,
            self.keypair,
            spec,
            participants,
            initial_params(spec),
            payer=payer,
            events=self._event,
            contracts=TrainingContracts(self.contracts, self.keypair.did, run_id=run_id, intent_id=intent_id),
            on_rejected=rejection_evidence(self.trust, run_id) if self.trust is not None else None,
            on_late=late_evidence(self.trust, run_id) if self.trust is not None else None,
        )
        self.runs[run_id] = run
        self._tasks[run_id] = asyncio.create_task(self._run(run), name=f"training {run_id}")
        return {"run_id": run_id, "state": "running", "match": self.decisions[run_id]}

    async def _run(self, run: TrainingRun) -> dict[str, Any]:
        try:
            return await run.run()
        finally:
            for p in run.participants:
                await self.provider.leave(p.contract_id)
            await self._leave_remote(run.run_id)

    async def _leave_remote(self, run_id: str) -> None:
        for link, cid in self._remote.pop(run_id, []):
            with contextlib.suppress(AgoraError):
                await link.leave(cid)

    async def wait(self, run_id: str, timeout_s: float) -> dict[str, Any]:
        task = self._tasks.get(run_id)
        if task is None:
            raise AgoraError("training_run_not_found", f"no training run {run_id!r} on this node")
        await asyncio.wait({task}, timeout=timeout_s)
        return self.status_of(run_id)

    def stop(self, run_id: str) -> dict[str, Any]:
        run = self.runs.get(run_id)
        if run is None:
            raise AgoraError("training_run_not_found", f"no training run {run_id!r} on this node")
        run.stop()
        return self.status_of(run_id)

    def status_of(self, run_id: str) -> dict[str, Any]:
        run = self.runs.get(run_id)
        if run is None:
            raise AgoraError("training_run_not_found", f"no training run {run_id!r} on this node")
        return {**run.status(), "match": self.decisions.get(run_id)}

    async def pending(self) -> dict[str, Any]:
        """Training contracts awaiting delivery or release, and the escrow they still hold."""
        out: dict[str, Any] = {"contracts": 0, "escrow_outstanding": 0, "awaiting": []}
        for run in self.runs.values():
            if run.state in ("completed", "failed", "stopped"):
                continue
            for p in run.participants:
                owed = p.price_per_update * run.spec.rounds - p.paid
                out["contracts"] += 1
                out["escrow_outstanding"] += max(0, owed) if self.settlement is not None else 0
                out["awaiting"].append({"contract_id": p.contract_id, "run_id": run.run_id, "owed": owed})
        return out

    async def status(self) -> dict[str, Any]:
        return {
            "runs": [self.status_of(r) for r in sorted(self.runs)],
            "datasets": await self.datasets.public(),
            "pending": await self.pending(),
        }

    async def summary(self) -> dict[str, Any]:
        """The training section of `metrics_summary`."""
        states: dict[str, int] = {}
        delivered = late = rejected = paid = 0
        for run in self.runs.values():
            states[run.state] = states.get(run.state, 0) + 1
            for p in run.participants:
                delivered += len(p.delivered)
                late += len(p.late)
                rejected += len(p.rejected)
                paid += p.paid
        return {
            "runs": states,
            "updates": {"delivered": delivered, "late": late, "rejected": rejected},
            "paid": paid,
            "datasets": len(await self.datasets.list()),
            "pending": await self.pending(),
        }

    async def close(self) -> None:
        for run in self.runs.values():
            run.stop()
        for task in self._tasks.values():
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.provider.close()


__all__ = ["EvidenceSink", "TrainingManager", "initial_params", "late_evidence", "rejection_evidence"]
