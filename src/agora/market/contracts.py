"""The requester's contract book: every contract this node made on the market, with its timeline, in the store.

A contract (`agora.models.contract`) is created when a placement commits (`create`: the `created` event
with the bid's and the award's CIDs as evidence) and each later event is appended through `record`, which
applies the state machine of `agora.models.contract` (a move it does not allow is a bug of the caller and
raises `contract_invalid_state`). Each change is one store transaction: the contract's document and its
event in the node's event log (`contract.<event>`), so a reader that sees the state can read the event.

Changes to one book are serialized (one asyncio lock): the runner's hooks and a person's release, refund
or dispute through the API never interleave on the same contract. Listeners (`on_change`) hear every
recorded event; `agora.orchestrator.match` waits on them for a match's contracts.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from agora.clock import SYSTEM_CLOCK, Clock
from agora.errors import AgoraError
from agora.models.contract import RELEASED, STATES, Contract, counts_by_state
from agora.store import Scalar, Store

COLLECTION = "contracts"
MAX_LISTED = 10_000

Listener = Callable[[Contract, str], None]  # (the contract after the change, the event recorded)


def new_contract_id() -> str:
    return "contract-" + secrets.token_hex(8)


class ContractBook:
    def __init__(self, store: Store, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.store = store
        self.clock = clock
        self._lock = asyncio.Lock()
        self._listeners: list[Listener] = []

    def on_change(self, listener: Listener) -> Callable[[], None]:
        """Hear every recorded event; returns the function that stops listening."""
        self._listeners.append(listener)

        def stop() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return stop

    def _notify(self, contract: Contract, event: str) -> None:
        for listener in list(self._listeners):
            listener(contract, event)

    async def create(
        self, contract: Contract, *, actor: str, evidence: Mapping[str, Any] | None = None, note: str = ""
    ) -> Contract:
        """Keep a new contract, its timeline starting with `created`."""
        if contract.timeline:
            raise AgoraError("internal", f"contract {contract.contract_id} is new: its timeline starts here")
        contract.record("created", self.clock.now(), actor, evidence, note)
        async with self._lock:
            if await self.store.get(COLLECTION, contract.contract_id) is not None:
                raise AgoraError("already_exists", f"contract {contract.contract_id} already exists")
            await self._save(contract, "created", actor)
        return contract

    async def get(self, contract_id: str) -> Contract:
        doc = await self.store.get(COLLECTION, contract_id)
        if doc is None:
            raise AgoraError("contract_not_found", f"no contract {contract_id!r} on this node")
        return Contract.from_dict(doc)

    async def record(
        self,
        contract_id: str,
        event: str,
        *,
        actor: str,
        evidence: Mapping[str, Any] | None = None,
        note: str = "",
        check: Callable[[Contract], None] | None = None,
        **fields: Any,
    ) -> Contract:
        """Append `event` to the contract's timeline (and set `fields`: alloc_id, released, refunded) in one
        step. `check` runs on the current contract under the book's lock first (it raises to refuse)."""
        async with self._lock:
            contract = await self.get(contract_id)
            if check is not None:
                check(contract)
            for name, value in fields.items():
                if not hasattr(contract, name) or name in ("timeline", "state", "contract_id"):
                    raise AgoraError("internal", f"a contract has no settable field {name!r}")
                setattr(contract, name, value)
            contract.record(event, self.clock.now(), actor, evidence, note)
            await self._save(contract, event, actor)
        return contract

    async def _save(self, contract: Contract, event: str, actor: str) -> None:
        async with self.store.transaction():
            await self.store.put(COLLECTION, contract.contract_id, contract.to_dict())
            await self.store.append_event(
                f"contract.{event}",
                contract.contract_id,
                {
                    "state": contract.state,
                    "actor": actor,
                    "job_id": contract.job_id,
                    "unit": contract.unit,
                    # what the step cites: the ledger entries that moved its money, the signed receipts
                    "evidence": dict(contract.timeline[-1].evidence) if contract.timeline else {},
                },
            )
        self._notify(contract, event)

    async def list(
        self,
        *,
        state: str | None = None,
        job_id: str | None = None,
        intent_id: str | None = None,
        limit: int = 100,
    ) -> list[Contract]:
        if state is not None and state not in STATES:
            raise AgoraError("invalid_argument", f"state is one of {', '.join(STATES)}, got {state!r}")
        where: dict[str, Scalar] = {}
        for key, value in (("state", state), ("job_id", job_id), ("intent_id", intent_id)):
            if value is not None:
                where[key] = value
        docs = await self.store.query(
            COLLECTION, where or None, order_by="created_at", desc=True, limit=min(limit, MAX_LISTED)
        )
        return [Contract.from_dict(d) for d in docs]

    async def summary(self) -> dict[str, Any]:
        """Contracts by state, and the money: escrow still locked, released to providers, refunded, prepaid."""
        contracts = await self.list(limit=MAX_LISTED)
        locked = sum(
            c.escrow_amount - c.released - c.refunded
            for c in contracts
            if c.payment_mode == "pay_after" and not c.ended and "escrow_locked" in c.events()
        )
        return {
            "total": len(contracts),
            "by_state": counts_by_state([c.state for c in contracts]),
            "escrow_locked": locked,
            "released": sum(c.released for c in contracts if c.payment_mode == "pay_after"),
            "refunded": sum(c.refunded for c in contracts),
            "prepaid": sum(
                c.escrow_amount for c in contracts if c.payment_mode == "pay_before" and "paid" in c.events()
            ),
            "fully_released": sum(1 for c in contracts if c.state in RELEASED),
        }


__all__ = ["COLLECTION", "ContractBook", "new_contract_id"]
