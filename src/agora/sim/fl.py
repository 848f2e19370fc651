"""The federated-learning part of the world: data providers and model owners running the real FL code.

A data provider is the real `agora.fl.rounds.FlProvider` (the round's escrow checked at the hub before it
trains: `training_escrow_missing`; the `UpdateReceipt` and `UsageReceipt` signed over the update's sha256)
publishing a real signed `DataAd` of one `DatasetOffer`. Its trainer is `SimTrainer` instead of the
sandboxed warm process: no model is trained; an update is the global weights plus small noise (a synthetic
numpy vector), its fit time drawn from the provider's profile (a straggler's is `slowdown` times longer, a
fit past the round deadline answers `timeout` at once instead of after the deadline in real time), a
dropout is a dead trainer (`unavailable`), and a dishonest provider sends a bad update (NaN, a wrong shape,
or a huge norm). A model owner's training intent is matched by the real `fl.matching.match_training` over
the data ads and run by the real `fl.rounds.TrainingRun` (min_fit, one retry per round, the update checks
`check_update`: shape, not_finite, norm, aggregation) with the real `EscrowPayer` (an escrow per round and
participant, released against the countersigned usage receipt of a verified update, the rest refunded)
and the real `TrainingContracts` over a `ContractBook` (a line per round per participant). A run is played
start to end at its arrival event; its simulated duration is the sum of its round attempts' (the slowest
update that came in time, or the deadline when one did not).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from agora.errors import AgoraError
from agora.fl.contracts import TrainingContracts
from agora.fl.matching import match_training
from agora.fl.rounds import EscrowPayer, FlProvider, LocalLink, Participant, TrainingRun, _Seat
from agora.fl.strategies import decode, encode
from agora.fl.trainers import Params
from agora.identity import Keypair
from agora.ledger import Evidence
from agora.ledger import trust as trustlib
from agora.market.contracts import ContractBook
from agora.models.dataset import DatasetOffer, DatasetSchema
from agora.models.training import TrainingSpec, training_from_dict
from agora.sim.inference import keypair_for
from agora.store.memory import MemoryStore
from agora.wire.fl import DataAd

if TYPE_CHECKING:
    from agora.sim.scenario import Fl
    from agora.sim.world import World

REAL_CODE = {
    "fl matching": "agora.fl.matching.match_training over real signed DataAds of DatasetOffers",
    "fl rounds": (
        "agora.fl.rounds.TrainingRun: min_fit, one retry per round, receipt and hash checks, check_update "
        "(shape, not_finite, norm), aggregation; FlProvider.fit: the round's escrow checked, receipts signed"
    ),
    "fl payment": "agora.fl.rounds.EscrowPayer: an escrow per round and participant, released per verified update",
    "fl contracts": "agora.fl.contracts.TrainingContracts over a ContractBook (a line per round per participant)",
}
FASTER_PATH = {
    "fl trainer": (
        "no model trains: an update is the global weights plus small noise (a synthetic numpy vector), or a bad "
        "one (NaN, wrong shape, huge norm) from a dishonest provider; fit times, stragglers, dropouts drawn"
    ),
    "fl deadline": "a fit past the round deadline answers timeout at once instead of after the deadline in real time",
    "fl time": "a run is played start to end at its arrival; its rounds' simulated times are recorded",
}
RUN_STATES = ("completed", "failed")
SCHEMA = DatasetSchema(features=("x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7"), label="y", classes=("a", "b"))
TAGS = ("sim",)
BAD_KINDS = ("not_finite", "shape", "norm")


def spec_document(training: dict[str, Any]) -> dict[str, Any]:
    """The scenario's `fl.training` completed with the simulated data's schema and tags."""
    return {"trainer": "softmax", "schema": SCHEMA.to_dict(), "data_tags": list(TAGS), **training}


@dataclass
class DataProvider:
    name: str
    did: str
    actor: SimFlProvider
    offer: DatasetOffer
    fit_s: float
    straggler: bool
    dishonest: bool
    earned: int = 0
    evidence: list[Evidence] = field(default_factory=list)


class SimFlProvider(FlProvider):
    """The real provider with a simulated trainer seated for a contract (instead of `join`'s sandbox)."""

    def seat(self, contract_id: str, trainer: SimTrainer, *, owner: str, run_id: str, price: int) -> None:
        self._trainers[contract_id] = _Seat(trainer, owner, run_id, price)  # type: ignore[arg-type]


@dataclass
class RunState:
    id: str
    owner: str
    spec: TrainingSpec
    attempt_s: float = 0.0  # the current round attempt's simulated time so far
    duration_s: float = 0.0
    bad_sent: int = 0
    state: str = "pending"
    status: dict[str, Any] = field(default_factory=dict)


class SimTrainer:
    """One provider's trainer for one contract (see the module doc)."""

    def __init__(self, sim: FlSim, p: DataProvider, run: RunState) -> None:
        self.sim, self.p, self.run = sim, p, run

    async def fit(self, round_: int, weights: bytes, timeout_s: float) -> tuple[bytes, int, dict[str, float]]:
        sim, p, run, rng = self.sim, self.p, self.run, self.sim.rng
        cfg = sim.cfg.providers
        if rng.random() < cfg.dropout:
            run.attempt_s = max(run.attempt_s, rng.uniform(0.0, timeout_s))
            raise AgoraError("unavailable", "the trainer process ended", details={"reason": "trainer_died"})
        took = p.fit_s * rng.uniform(0.8, 1.25) * (cfg.slowdown if p.straggler else 1.0)
        if took > timeout_s:
            run.attempt_s = max(run.attempt_s, timeout_s)
            raise AgoraError("timeout", f"round {round_}: no update within {timeout_s:.1f}s")
        run.attempt_s = max(run.attempt_s, took)
        params = decode(weights)
        gen = np.random.default_rng(rng.getrandbits(32))
        update: Params = [a + gen.normal(0.0, 0.01, a.shape) for a in params]
        if p.dishonest and rng.random() < cfg.bad_rate:
            kind = BAD_KINDS[rng.randrange(len(BAD_KINDS))]
            run.bad_sent += 1
            sim.bad_sent[kind] += 1
            if kind == "not_finite":
                update[0] = update[0].copy()
                update[0].flat[0] = math.nan
            elif kind == "shape":
                update[0] = np.zeros((update[0].shape[0] + 1, *update[0].shape[1:]))
            else:
                update = [a + 1e6 for a in update]
        loss = 1.0 / (1.0 + round_) + gen.uniform(0.0, 0.05)
        return encode(update), p.offer.rows, {"train_loss": float(loss)}

    async def stop(self) -> None:
        return None


class FlSim:
    def __init__(self, world: World, cfg: Fl) -> None:
        self.world = world
        self.cfg = cfg
        seed = world.sc.seed
        self.rng = random.Random(f"{seed}:fl")
        self._arrivals = random.Random(f"{seed}:fl-arrivals")
        self.providers: dict[str, DataProvider] = {}
        self.ads: list[DataAd] = []
        self.owners: list[Keypair] = []
        self.runs: dict[str, RunState] = {}
        self.store = MemoryStore(world.clock)
        self.contracts = ContractBook(self.store, clock=world.clock)
        self.trust: dict[str, float] = {}
        self.unmatched: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.late: Counter[str] = Counter()
        self.bad_sent: Counter[str] = Counter()
        self.round_s: list[float] = []
        self.round_spend: list[int] = []
        self.samples: Counter[str] = Counter()
        self._current: RunState | None = None
        self._round_paid = 0

    async def setup(self) -> None:
        cfg, rng, w = self.cfg, self.rng, self.world
        seed, now = w.sc.seed, int(w.clock.now())
        pr = cfg.providers
        for i in range(pr.count):
            name = f"d{i:05d}"
            kp = keypair_for(seed, name)
            offer = DatasetOffer(
                offer_id=f"ds-{name}",
                provider=kp.did,
                name=f"sim data {name}",
                tags=frozenset(TAGS),
                format="csv",
                schema=SCHEMA,
                rows=pr.rows.draw_int(rng, 1),
                size_bytes=1 << 20,
                content_hash="sha256:" + "0" * 64,
                licence="CC-BY-4.0",
                price_per_update=pr.price_per_update.draw_int(rng, 0),
                custom_code=False,
                valid_from=now - 1,
                valid_until=int(w.end) + 86400,
            )
            actor = SimFlProvider(kp, None, escrows=w.checked)  # type: ignore[arg-type]  # no data set: no join
            p = DataProvider(
                name,
                kp.did,
                actor,
                offer,
                fit_s=max(0.1, pr.fit_s.draw(rng)),
                straggler=rng.random() < pr.stragglers,
                dishonest=rng.random() < pr.dishonest,
            )
            self.providers[kp.did] = p
            w.earners.add(kp.did)
            self.ads.append(DataAd.issue(kp, seq=1, iat=now, ttl_s=10**9, offers=[offer]))
        for i in range(cfg.owners.count):
            kp = keypair_for(seed, f"fo{i:05d}")
            self.owners.append(kp)
            if cfg.owners.funds:
                await w.checked.mint(kp.did, cfg.owners.funds, actor=w.operator, idem=f"fund:{kp.did}")

    def schedule(self, now: float) -> None:
        a = self.cfg.owners.arrivals
        if a.rate_per_hour <= 0:
            return
        t = self.world.next_arrival(now, a, self._arrivals)
        if t is not None:
            self.world.at(t, "train")

    async def _on_event(self, kind: str, subject: str, data: dict[str, Any]) -> None:
        run = self._current
        assert run is not None
        self.events[kind] += 1
        if kind == "training.round_started":
            run.attempt_s = 0.0
            self._round_paid = 0
        elif kind in ("training.round_closed", "training.round_retried"):
            self.round_s.append(run.attempt_s)
            run.duration_s += run.attempt_s
            if kind == "training.round_closed":
                self.round_spend.append(self._round_paid)
                self.samples["rounds"] += 1
        elif kind == "contract.update_rejected":
            self.rejected[str(data.get("reason"))] += 1
        elif kind == "contract.update_late":
            self.late[str(data.get("why"))] += 1
        elif kind == "training.failed":
            # the last attempt's time (the failing round has no round_closed/retried event after it)
            self.round_s.append(run.attempt_s)
            run.duration_s += run.attempt_s

    def _evidence(self, did: str, kind: str, cite: str) -> None:
        w, now = self.world, self.world.clock.now()
        p = self.providers[did]
        p.evidence.append(Evidence(did, kind, now, cites={"contract": cite}))
        if len(p.evidence) > 256:
            del p.evidence[: len(p.evidence) - 256]
        self.trust[did] = trustlib.report(did, p.evidence, now, w.trust_settings).score

    async def arrive(self) -> None:
        cfg, rng, w = self.cfg, self.rng, self.world
        now = w.clock.now()
        owner = self.owners[rng.randrange(len(self.owners))]
        run_id = f"fl{len(self.runs):06d}"
        spec = cfg.spec
        decision = match_training(spec, self.ads, budget=cfg.budget, now=now, exclude=frozenset({owner.did}))
        run = RunState(run_id, owner.did, spec)
        self.runs[run_id] = run
        if not decision.matched:
            run.state = "unmatched"
            for code, n in decision.counts.items():
                self.unmatched[code] += n
            return
        participants = []
        for j, offer in enumerate(decision.chosen):
            p = self.providers[offer.provider]
            contract = f"{run_id}.{j}"
            p.actor.seat(
                contract, SimTrainer(self, p, run), owner=owner.did, run_id=run_id, price=offer.price_per_update
            )
            participants.append(
                Participant(p.did, contract, offer.offer_id, offer.price_per_update, LocalLink(p.actor))
            )
        initial: Params = [np.zeros((len(SCHEMA.features), len(SCHEMA.classes))), np.zeros(len(SCHEMA.classes))]

        async def on_rejected(part: Participant, r: int, err: AgoraError) -> None:
            self._evidence(part.provider, "disagreement", part.contract_id)

        async def on_late(part: Participant, r: int, why: str) -> None:
            self._evidence(part.provider, "timeout", part.contract_id)

        payer = _CountingPayer(self, EscrowPayer(w.checked, owner, run_id=run_id))
        self._current = run
        training = TrainingRun(
            run_id,
            owner,
            spec,
            participants,
            initial,
            payer=payer,
            events=self._on_event,
            on_rejected=on_rejected,
            on_late=on_late,
            contracts=TrainingContracts(self.contracts, owner.did, run_id=run_id),
        )
        run.status = await training.run()
        run.state = training.state
        self._current = None
        for part in participants:
            p = self.providers[part.provider]
            p.earned += part.paid
            if part.delivered:
                self._evidence(part.provider, "success", part.contract_id)
            await p.actor.leave(part.contract_id)
        self.samples[run.state] += 1
        await self.check_run(run, participants)

    async def check_run(self, run: RunState, participants: list[Participant]) -> None:
        """`round_state` and `escrow_settled` for a run that just ended."""
        inv = self.world.inv
        if run.state not in RUN_STATES:
            inv.fail("round_state", f"training run {run.id} ended in an unrecorded state {run.state!r}")
        who = {p.provider for p in participants}
        for rec in run.status["rounds"]:
            acc, late, rej = set(rec["accepted"]), set(rec["late"]), set(rec["rejected"])
            if (acc & late) or (acc & rej) or (late & rej) or not (acc | late | rej) <= who:
                inv.fail("round_state", f"run {run.id} round {rec['round']}: a provider is in two outcomes")
            if acc and acc | late | rej != who:
                inv.fail("round_state", f"run {run.id} round {rec['round']}: a provider's update has no outcome")
        for part in participants:
            if part.paid != part.price_per_update * len(part.delivered) or len(set(part.delivered)) != len(
                part.delivered
            ):
                inv.fail("round_state", f"run {run.id}: {part.contract_id} paid {part.paid} for {part.delivered}")
            try:
                c = await self.contracts.get(part.contract_id)
            except AgoraError as exc:  # no contract: the run failed before it opened them (its escrow refused)
                if exc.code != "contract_not_found" or part.paid or part.delivered or run.state != "failed":
                    raise
                continue
            if c.state not in ("escrow_released", "partially_released", "refunded", "cancelled"):
                inv.fail("round_state", f"run {run.id}: contract {part.contract_id} ended {c.state!r}")
        inv.escrows_settled(f"{run.id}.", f"training run {run.id}")

    def final(self) -> None:
        for run in self.runs.values():
            if run.state not in (*RUN_STATES, "unmatched"):
                self.world.inv.fail("round_state", f"training run {run.id} is in an unrecorded state {run.state!r}")

    # -- metrics ----------------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        from agora.sim.metrics import deciles, quantiles

        runs = list(self.runs.values())
        updates_asked = self._updates_asked()
        paid = self.events["contract.update_paid"]
        late = sum(self.late.values())
        rejected = sum(self.rejected.values())
        earnings = sorted(p.earned for p in self.providers.values())
        spend = self.round_spend
        dishonest = [d for d, p in self.providers.items() if p.dishonest]
        honest = [d for d, p in self.providers.items() if not p.dishonest]

        def mean_trust(ds: list[str]) -> float | None:
            ts = [self.trust[d] for d in ds if d in self.trust]
            return round(sum(ts) / len(ts), 6) if ts else None

        q = quantiles(self.round_s, (0.5, 0.95))
        return {
            "fl_runs": len(runs),
            "fl_runs_completed": sum(r.state == "completed" for r in runs),
            "fl_runs_failed": sum(r.state == "failed" for r in runs),
            "fl_runs_unmatched": sum(r.state == "unmatched" for r in runs),
            "fl_unmatched_reasons": dict(sorted(self.unmatched.items())),
            "fl_rounds_completed": self.events["training.round_closed"],
            "fl_rounds_failed": self.events["training.round_retried"] + self.events["training.failed"],
            "fl_round_duration_s": {"p50": round(q["p50"], 3), "p95": round(q["p95"], 3), "n": q["n"]},
            "fl_straggler_share": round(self.late["timeout"] / updates_asked, 6) if updates_asked else 0.0,
            "fl_updates": {
                "asked": updates_asked,
                "paid": paid,
                "unpaid": updates_asked - paid,
                "late": late,
                "rejected": rejected,
                "accepted_in_failed_rounds": updates_asked - paid - late - rejected,
            },
            "fl_late_reasons": dict(sorted(self.late.items())),
            "fl_bad_updates_sent": dict(sorted(self.bad_sent.items())),
            "fl_bad_updates_caught": dict(sorted(self.rejected.items())),
            "fl_spend_per_round": round(sum(spend) / len(spend), 3) if spend else 0.0,
            "fl_spend_total": sum(p.earned for p in self.providers.values()),
            "fl_earnings_by_decile": deciles(earnings),
            "fl_dishonest_providers": len(dishonest),
            "fl_trust_end": {"honest": mean_trust(honest), "dishonest": mean_trust(dishonest)},
        }

    def _updates_asked(self) -> int:
        n = 0
        for r in self.runs.values():
            k = len(r.status.get("providers", []))
            n += k * len(r.status.get("rounds", []))
        return n

    def sample(self, series: dict[str, list[Any]]) -> None:
        series["fl_rounds"].append(self.samples["rounds"])
        series["fl_runs_failed"].append(self.samples["failed"])
        self.samples.clear()


class _CountingPayer:
    """The real `EscrowPayer`, with what each round paid counted for `fl_spend_per_round`."""

    def __init__(self, sim: FlSim, inner: EscrowPayer) -> None:
        self.sim, self.inner = sim, inner

    async def lock(self, p: Participant, rounds: int) -> None:
        await self.inner.lock(p, rounds)

    async def pay(self, p: Participant, round_: int, usage: bytes) -> None:
        await self.inner.pay(p, round_, usage)
        self.sim._round_paid += p.price_per_update

    async def refund_rest(self, p: Participant, rounds: int) -> None:
        await self.inner.refund_rest(p, rounds)


def parse_training(doc: dict[str, Any]) -> TrainingSpec:
    return training_from_dict(spec_document(doc))


__all__ = ["RUN_STATES", "FlSim", "SimTrainer", "parse_training", "spec_document"]
