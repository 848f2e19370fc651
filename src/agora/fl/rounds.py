"""Rounds: the data provider's side (`FlProvider`: a warm sandboxed trainer per contract, signed receipts)
and the model owner's side (`TrainingRun`: send the global weights, wait until the deadline, verify,
check, pay, aggregate, next round).

A delivery is the update's bytes with two provider-signed receipts naming the update's sha256: the
`UpdateReceipt` (run, round, contract, examples, metrics: what aggregation needs) and a `UsageReceipt`
(the ledger's metering format; its `alloc` is the round's escrow id `<contract>.r<round>`), which the
owner countersigns to release that round's escrow.

Per round the owner waits at most `round_deadline_s` for every provider; what arrives late is cancelled
and not paid (`late`), what fails the checks (bad signature, wrong run/round/contract, hash mismatch,
shape, NaN, norm) is `rejected`, not paid and reported to `on_rejected` (trust evidence). The round closes
with at least `min_fit` accepted updates; otherwise it is tried once more (`retries`) and then the run
fails with `training_too_few_updates`. Payment is per verified update through a `Payer` (escrow per
round: `EscrowPayer`); at the end every escrow not released is refunded, so a provider that delivered some
rounds is paid for those only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from agora.codec import CID
from agora.errors import AgoraError
from agora.fl.datasets import DatasetBook
from agora.fl.sandbox import WarmTrainer
from agora.fl.strategies import Update, add_noise, check_update, clip, decode, encode, strategy
from agora.fl.trainers import Params
from agora.identity import Keypair
from agora.ledger.interfaces import EscrowState, Settlement
from agora.models.training import TrainingSpec
from agora.wire.fl import UpdateReceipt, update_hash
from agora.wire.settle import countersign
from agora.wire.usage import OutputDigest, UsageReceipt

CANCEL_GRACE_S = 5.0
EventSink = Callable[[str, str, dict[str, Any]], Awaitable[None]]


def round_escrow(contract_id: str, round_: int) -> str:
    return f"{contract_id}.r{round_}"


@dataclass(frozen=True)
class Delivery:
    update: bytes
    receipt: bytes  # UpdateReceipt
    usage: bytes  # UsageReceipt for the round's escrow


class EscrowView(Protocol):
    """Where the provider reads an escrow (the hub's ledger: `Settlement.escrow`)."""

    async def escrow(self, contract: str) -> EscrowState | None: ...


class _Seat(NamedTuple):
    trainer: WarmTrainer
    owner: str
    run_id: str
    price: int  # the provider's own price per update (from its offer, never from the owner)


class FlProvider:
    """The data provider: one warm trainer per contract, each update signed.

    With `escrows` (the hub's ledger), a priced round is trained only once the owner's escrow for it
    (`<contract>.r<round>`) is locked at the hub, from the contract's owner to this provider, for at least
    the offer's price per update (`training_escrow_missing`): no unpaid work on an owner's word."""

    def __init__(
        self,
        keypair: Keypair,
        datasets: DatasetBook,
        *,
        bwrap: str | None = None,
        escrows: EscrowView | None = None,
    ) -> None:
        self.keypair = keypair
        self.datasets = datasets
        self.bwrap = bwrap
        self.escrows = escrows
        self._trainers: dict[str, _Seat] = {}  # contract -> its warm trainer, owner, run and price

    async def join(
        self,
        contract_id: str,
        *,
        owner: str,
        run_id: str,
        offer_id: str,
        spec: TrainingSpec,
        eval_fraction: float = 0.2,
    ) -> None:
        """Start the warm trainer for `contract_id` on the offer's data; custom code only where allowed."""
        offer, path = await self.datasets.get(offer_id)
        if spec.trainer == "custom" and not offer.custom_code:
            raise AgoraError("custom_code_refused", f"data set {offer_id} accepts built-in trainers only")
        init = {
            "trainer": spec.trainer,
            "code": spec.custom_code,
            "hyper": spec.hyper.to_dict(),
            "schema": spec.schema.to_dict(),
            "seed": spec.hyper.seed,
            "eval_fraction": eval_fraction,  # held out of training for federated evaluation
        }
        trainer = WarmTrainer(Path(path), init, bwrap=self.bwrap)
        await trainer.start()
        self._trainers[contract_id] = _Seat(trainer, owner, run_id, offer.price_per_update)

    async def check_escrow(self, contract_id: str, round_: int) -> None:
        """The round's escrow is locked at the hub for this provider (a free offer, or no hub: nothing to check)."""
        seat = self._trainers.get(contract_id)
        if seat is None or self.escrows is None or seat.price <= 0:
            return
        esc = round_escrow(contract_id, round_)
        state = await self.escrows.escrow(esc)
        problem = None
        if state is None:
            problem = "no escrow is locked for it"
        elif (state.payer, state.payee) != (seat.owner, self.keypair.did):
            problem = "its escrow is not from the contract's owner to this provider"
        elif state.state != "locked" or state.amount_locked - state.released - state.refunded < seat.price:
            problem = f"its escrow holds less than the price per update ({seat.price}) or is settled"
        if problem is not None:
            raise AgoraError(
                "training_escrow_missing",
                f"round {round_} of contract {contract_id}: {problem}",
                details={"escrow": esc},
            )

    async def fit(self, contract_id: str, round_: int, weights: bytes, timeout_s: float) -> Delivery:
        seat = self._trainers.get(contract_id)
        if seat is None:
            raise AgoraError("contract_not_found", f"no training contract {contract_id} on this provider")
        await self.check_escrow(contract_id, round_)
        trainer, owner, run_id = seat.trainer, seat.owner, seat.run_id
        started = time.time()
        update, n, metrics = await trainer.fit(round_, weights, timeout_s)
        ended = time.time()
        digest = update_hash(update)
        receipt = UpdateReceipt.issue(
            self.keypair,
            owner=owner,
            run_id=run_id,
            round=round_,
            contract_id=contract_id,
            update=digest,
            examples=n,
            metrics=metrics,
            train_ms=int((ended - started) * 1000),
        )
        usage = UsageReceipt.issue(
            self.keypair,
            alloc_id=round_escrow(contract_id, round_),
            requester=owner,
            job=run_id,
            task=contract_id,
            engine="process",
            exit_code=0,
            reason="completed",
            error_code=None,
            started_at=started,
            ended_at=ended,
            wall_s=ended - started,
            cpu_s=0.0,
            peak_memory_bytes=0,
            outputs=[OutputDigest("update", "update.npz", digest.removeprefix("sha256:"), len(update))],
            invocation=CID.of(receipt.raw),
            iat=int(ended),
        )
        return Delivery(update, receipt.raw, usage.raw)

    async def leave(self, contract_id: str) -> None:
        seat = self._trainers.pop(contract_id, None)
        if seat is not None:
            await seat.trainer.stop()

    async def close(self) -> None:
        for cid in list(self._trainers):
            await self.leave(cid)


class ContractHooks(Protocol):
    """What the run tells the owner's contracts (`fl.contracts.TrainingContracts`)."""

    async def open(self, participants: Sequence[Participant], rounds: int, *, locked: bool) -> None: ...

    async def started(self, participants: Sequence[Participant]) -> None: ...

    async def round_outcome(self, p: Participant, r: int, outcome: str, evidence: dict[str, Any]) -> None: ...

    async def close(self, participants: Sequence[Participant], rounds: int) -> None: ...


class ProviderLink(Protocol):
    async def fit(self, contract_id: str, round_: int, weights: bytes, timeout_s: float) -> Delivery: ...


class Payer(Protocol):
    async def lock(self, p: Participant, rounds: int) -> None: ...

    async def pay(self, p: Participant, round_: int, usage: bytes) -> None: ...

    async def refund_rest(self, p: Participant, rounds: int) -> None: ...


@dataclass
class Participant:
    provider: str
    contract_id: str
    offer_id: str
    price_per_update: int
    link: ProviderLink
    delivered: list[int] = field(default_factory=list)
    late: list[int] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    paid: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "contract_id": self.contract_id,
            "offer_id": self.offer_id,
            "delivered": list(self.delivered),
            "late": list(self.late),
            "rejected": list(self.rejected),
            "paid": self.paid,
        }


class EscrowPayer:
    """One escrow per (contract, round), locked at the start, released against the countersigned usage
    receipt of that round's verified update, refunded at the end when no such update came."""

    def __init__(self, settlement: Settlement, owner: Keypair, *, run_id: str) -> None:
        self.settlement = settlement
        self.owner = owner
        self.run_id = run_id

    async def lock(self, p: Participant, rounds: int) -> None:
        for r in range(1, rounds + 1):
            if p.price_per_update > 0:
                esc = round_escrow(p.contract_id, r)
                await self.settlement.lock(
                    esc, self.owner.did, p.provider, p.price_per_update, actor=self.owner.did, idem=f"lock:{esc}"
                )

    async def pay(self, p: Participant, round_: int, usage: bytes) -> None:
        if p.price_per_update <= 0:
            return
        esc = round_escrow(p.contract_id, round_)
        receipt = UsageReceipt.open(usage, expected_provider=p.provider)
        metering = countersign(
            self.owner, receipt, contract=esc, units=1, total=1, amount=p.price_per_update, iat=int(time.time())
        )
        await self.settlement.release(esc, metering, actor=self.owner.did, idem=f"release:{esc}")
        p.paid += p.price_per_update

    async def refund_rest(self, p: Participant, rounds: int) -> None:
        for r in range(1, rounds + 1):
            esc = round_escrow(p.contract_id, r)
            state = await self.settlement.escrow(esc)
            if state is not None and not state.settled:
                await self.settlement.refund(esc, actor=self.owner.did, idem=f"refund:{esc}", reason="not delivered")


@dataclass
class RoundRecord:
    round: int
    attempt: int
    accepted: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "attempt": self.attempt,
            "accepted": list(self.accepted),
            "late": list(self.late),
            "rejected": list(self.rejected),
            "metrics": dict(self.metrics),
            "wall_s": round(self.wall_s, 4),
        }


async def _no_events(kind: str, subject: str, data: dict[str, Any]) -> None:
    return None


class TrainingRun:
    """The owner's run: rounds over the participants (see the module doc)."""

    def __init__(
        self,
        run_id: str,
        owner: Keypair,
        spec: TrainingSpec,
        participants: Sequence[Participant],
        initial: Params,
        *,
        payer: Payer | None = None,
        events: EventSink = _no_events,
        on_rejected: Callable[[Participant, int, AgoraError], Awaitable[None]] | None = None,
        evaluate: Callable[[Params], Mapping[str, float]] | None = None,
        retries: int = 1,
        contracts: ContractHooks | None = None,
        on_late: Callable[[Participant, int, str], Awaitable[None]] | None = None,
    ) -> None:
        self.run_id = run_id
        self.owner = owner
        self.spec = spec
        self.participants = list(participants)
        self.params = [p.copy() for p in initial]
        self.payer = payer
        self.events = events
        self.on_rejected = on_rejected
        self.evaluate = evaluate
        self.retries = retries
        self.contracts = contracts
        self.on_late = on_late
        self.strategy = strategy(spec.strategy, trim_ratio=spec.trim_ratio)
        self.rounds: list[RoundRecord] = []
        self.state = "pending"
        self.reason: str | None = None
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> dict[str, Any]:
        self.state = "running"
        await self.events("training.started", self.run_id, {"providers": [p.provider for p in self.participants]})
        opened = False  # the contracts exist (a lock refused before them, e.g. insufficient_funds, leaves none)
        try:
            if self.payer is not None:
                for p in self.participants:
                    await self.payer.lock(p, self.spec.rounds)
            if self.contracts is not None:
                opened = True
                await self.contracts.open(self.participants, self.spec.rounds, locked=self.payer is not None)
                await self.contracts.started(self.participants)
            for r in range(1, self.spec.rounds + 1):
                if self._stop.is_set():
                    self.state, self.reason = "stopped", "stopped by the owner"
                    break
                for attempt in range(1, self.retries + 2):
                    record = await self._round(r, attempt)
                    self.rounds.append(record)
                    if len(record.accepted) >= self.spec.min_fit:
                        break
                    await self.events("training.round_retried", self.run_id, record.to_dict())
                else:
                    raise AgoraError(
                        "training_too_few_updates",
                        f"round {r}: {len(record.accepted)} updates by the deadline, min_fit is {self.spec.min_fit}",
                        details={"round": r, "accepted": len(record.accepted), "min_fit": self.spec.min_fit},
                    )
            else:
                self.state = "completed"
        except AgoraError as err:
            self.state, self.reason = "failed", err.message
            await self.events("training.failed", self.run_id, {"code": err.code, "message": err.message})
        finally:
            if self.payer is not None:
                for p in self.participants:
                    await self.payer.refund_rest(p, self.spec.rounds)
            if self.contracts is not None and opened:
                await self.contracts.close(self.participants, self.spec.rounds)
        await self.events("training.ended", self.run_id, {"state": self.state, "reason": self.reason})
        return self.status()

    async def _round(self, r: int, attempt: int) -> RoundRecord:
        started = time.perf_counter()
        record = RoundRecord(r, attempt)
        await self.events("training.round_started", self.run_id, {"round": r, "attempt": attempt})
        weights = encode(self.params)
        deadline = self.spec.round_deadline_s
        tasks = {asyncio.create_task(p.link.fit(p.contract_id, r, weights, deadline)): p for p in self.participants}
        done, pending = await asyncio.wait(tasks, timeout=deadline)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=CANCEL_GRACE_S)  # a cancelled link call ends at its next await
        accepted: list[tuple[Participant, Update, UsageReceipt | bytes, dict[str, float]]] = []
        for t in pending:
            p = tasks[t]
            await self._late(p, r, record, "deadline")
        for t in done:
            p = tasks[t]
            exc = t.exception()
            if exc is not None:
                await self._late(p, r, record, exc.code if isinstance(exc, AgoraError) else "internal")
                continue
            delivery = t.result()
            try:
                update, n, metrics = self._verify(p, r, delivery)
            except AgoraError as err:
                p.rejected.append({"round": r, "reason": err.details.get("reason", err.code)})
                record.rejected.append(p.provider)
                why = {"reason": err.details.get("reason", err.code), "message": err.message[:300]}
                await self.events("contract.update_rejected", p.contract_id, {"run": self.run_id, "round": r, **why})
                if self.contracts is not None:
                    await self.contracts.round_outcome(p, r, "rejected", why)
                if self.on_rejected is not None:
                    await self.on_rejected(p, r, err)
                continue
            accepted.append((p, Update(update, n), delivery.usage, metrics))
        if len(accepted) < self.spec.min_fit:
            record.wall_s = time.perf_counter() - started
            return record
        for p, _, usage, _ in accepted:
            if self.payer is not None:
                assert isinstance(usage, bytes)
                await self.payer.pay(p, r, usage)
            p.delivered.append(r)
            record.accepted.append(p.provider)
            await self.events("contract.update_paid", p.contract_id, {"run": self.run_id, "round": r})
            if self.contracts is not None:
                await self.contracts.round_outcome(p, r, "released", {"paid": p.price_per_update})
        updates = [u for _, u, _, _ in accepted]
        if self.spec.clip_norm is not None:
            updates = [Update(clip(u.params, self.params, self.spec.clip_norm), u.examples) for u in updates]
        new = self.strategy.aggregate(updates)
        if self.spec.clip_norm is not None and self.spec.noise_multiplier > 0:
            new = add_noise(
                new,
                clip_norm=self.spec.clip_norm,
                noise_multiplier=self.spec.noise_multiplier,
                n=len(updates),
                seed=self.spec.hyper.seed * 7919 + r,
            )
        self.params = new
        total = sum(u.examples for u in updates)
        for key in ("train_loss", "eval_loss", "eval_accuracy"):
            vals = [(m[key], u.examples) for (_, u, _, m) in accepted if key in m]
            if vals:
                record.metrics[key] = sum(v * w for v, w in vals) / max(total, 1)
        if self.evaluate is not None:
            record.metrics.update({f"central_{k}": float(v) for k, v in self.evaluate(new).items()})
        record.wall_s = time.perf_counter() - started
        await self.events("training.round_closed", self.run_id, record.to_dict())
        return record

    async def _late(self, p: Participant, r: int, record: RoundRecord, why: str) -> None:
        p.late.append(r)
        record.late.append(p.provider)
        await self.events("contract.update_late", p.contract_id, {"run": self.run_id, "round": r, "why": why})
        if self.contracts is not None:
            await self.contracts.round_outcome(p, r, "late", {"why": why})
        if self.on_late is not None:
            await self.on_late(p, r, why)

    def _verify(self, p: Participant, r: int, d: Delivery) -> tuple[Params, int, dict[str, float]]:
        def reject(reason: str, message: str) -> AgoraError:
            return AgoraError("training_update_rejected", message, details={"reason": reason})

        try:
            receipt = UpdateReceipt.open(d.receipt, expected_signer=p.provider)
            usage = UsageReceipt.open(d.usage, expected_provider=p.provider)
        except AgoraError as err:
            raise reject("receipt", err.message) from None
        if (receipt.run_id, receipt.round, receipt.contract_id, receipt.owner) != (
            self.run_id,
            r,
            p.contract_id,
            self.owner.did,
        ):
            raise reject("receipt", "the receipt names another run, round, contract or owner")
        if not receipt.names(d.update) or [o.sha256 for o in usage.outputs] != [receipt.update.removeprefix("sha256:")]:
            raise reject("hash", "the update's bytes do not hash to what the receipts name")
        params = decode(d.update)
        check_update(params, self.params, max_norm=self.spec.max_update_norm)
        return params, receipt.examples, dict(receipt.metrics)

    def status(self) -> dict[str, Any]:
        last = next((r for r in reversed(self.rounds) if r.accepted), None)
        return {
            "run_id": self.run_id,
            "state": self.state,
            "reason": self.reason,
            "strategy": self.spec.strategy,
            "rounds_planned": self.spec.rounds,
            "rounds": [r.to_dict() for r in self.rounds],
            "providers": [p.to_dict() for p in self.participants],
            "noise_multiplier": self.spec.noise_multiplier,
            "clip_norm": self.spec.clip_norm,
            "last_metrics": dict(last.metrics) if last else {},
        }


class LocalLink:
    """A provider in this process (tests, the benchmark, a single-machine devnet)."""

    def __init__(self, provider: FlProvider) -> None:
        self.provider = provider

    async def fit(self, contract_id: str, round_: int, weights: bytes, timeout_s: float) -> Delivery:
        return await self.provider.fit(contract_id, round_, weights, timeout_s)


__all__ = [
    "Delivery",
    "EscrowPayer",
    "EscrowView",
    "FlProvider",
    "LocalLink",
    "Participant",
    "Payer",
    "ProviderLink",
    "RoundRecord",
    "TrainingRun",
    "round_escrow",
]
