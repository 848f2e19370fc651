"""The model owner's training contracts: one per data provider, in the node's `ContractBook`.

A training contract is a `pay_after` contract whose unit is the data offer (`train:<offer_id>`) and whose
job is the run; its escrow is the price per update times the rounds (locked per round on the ledger,
`fl.rounds.round_escrow`). Its timeline:

    created -> bound_to_round (one line per round it will serve) -> escrow_locked -> allocated (the
    provider's warm trainer started) -> running -> update_released / update_rejected / update_late (one
    line per round) -> delivered -> escrow_released (every round paid) | partially_released (some)
    or, when no update was ever accepted, running -> refunded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agora.fl.rounds import Participant
from agora.market.contracts import ContractBook
from agora.models.contract import PAY_AFTER, Contract


class TrainingContracts:
    def __init__(self, book: ContractBook, owner: str, *, run_id: str, intent_id: str | None = None) -> None:
        self.book = book
        self.owner = owner
        self.run_id = run_id
        self.intent_id = intent_id

    async def open(self, participants: Sequence[Participant], rounds: int, *, locked: bool) -> None:
        for p in participants:
            contract = Contract(
                contract_id=p.contract_id,
                requester=self.owner,
                provider=p.provider,
                job_id=self.run_id,
                unit=f"train:{p.offer_id}",
                price=p.price_per_update * rounds,
                escrow_amount=p.price_per_update * rounds if locked else 0,
                payment_mode=PAY_AFTER,
                terms={"kind": "training", "offer_id": p.offer_id, "rounds": rounds, "per_update": p.price_per_update},
                intent_id=self.intent_id,
            )
            await self.book.create(contract, actor=self.owner)
            for r in range(1, rounds + 1):
                await self.book.record(p.contract_id, "bound_to_round", actor=self.owner, evidence={"round": r})
            if locked:
                await self.book.record(p.contract_id, "escrow_locked", actor=self.owner)

    async def started(self, participants: Sequence[Participant]) -> None:
        for p in participants:
            await self.book.record(p.contract_id, "allocated", actor=p.provider, alloc_id=f"{self.run_id}/{p.offer_id}")
            await self.book.record(p.contract_id, "running", actor=p.provider)

    async def round_outcome(self, p: Participant, r: int, outcome: str, evidence: dict[str, Any]) -> None:
        await self.book.record(p.contract_id, f"update_{outcome}", actor=self.owner, evidence={"round": r, **evidence})

    async def close(self, participants: Sequence[Participant], rounds: int) -> None:
        for p in participants:
            contract = await self.book.get(p.contract_id)
            total = contract.escrow_amount
            if not p.delivered:
                if total == 0:  # nothing was locked (no settlement): the contract ends without a delivery
                    await self.book.record(p.contract_id, "cancelled", actor=self.owner)
                else:
                    await self.book.record(p.contract_id, "refunded", actor=self.owner, refunded=total)
                continue
            await self.book.record(p.contract_id, "delivered", actor=p.provider, evidence={"rounds": list(p.delivered)})
            if total == 0:
                continue  # nothing was locked: delivered is the end (as for an unsettled market contract)
            final = "escrow_released" if len(p.delivered) == rounds else "partially_released"
            await self.book.record(
                p.contract_id, final, actor=self.owner, released=p.paid, refunded=max(0, total - p.paid)
            )


__all__ = ["TrainingContracts"]
