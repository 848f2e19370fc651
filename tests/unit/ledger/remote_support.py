"""The Settlement conformance suite over RPC: every party is its own node with its own `RemoteSettlement`.

`Routed` is the suite's one settlement object: a call naming `actor=X` goes through X's node, signed by X's
key, to the hub's ledger service, which acts as the signer (so the suite's "X may not do that" checks are
the service's checks on a real signature). Reads go through the payer's node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agora.ledger import Entry, EscrowState, Ledger, VerifyReport
from agora.ledger.remote import RemoteSettlement


class Routed:
    """`Settlement` for several nodes at once: each write goes through the node of its `actor`."""

    def __init__(self, clients: Mapping[str, RemoteSettlement], reader: str, ledger: Ledger) -> None:
        self.clients = dict(clients)
        self.reader = self.clients[reader]
        self.ledger = ledger  # the hub's ledger (the suite closes it at the end)

    def _as(self, actor: str) -> RemoteSettlement:
        return self.clients[actor]

    async def balance(self, account: str) -> int:
        return await self.reader.balance(account)

    async def escrow(self, contract: str) -> EscrowState | None:
        return await self.reader.escrow(contract)

    async def entries(self, account: str | None = None, since: int = 0, limit: int = 1000) -> list[Entry]:
        return await self.reader.entries(account, since, limit)

    async def verify(self) -> VerifyReport:
        return await self.reader.verify()

    async def mint(self, to_did: str, amount: int, *, actor: str, idem: str, memo: str = "") -> Entry:
        return await self._as(actor).mint(to_did, amount, actor=actor, idem=idem, memo=memo)

    async def transfer(self, src: str, dst: str, amount: int, *, actor: str, idem: str, memo: str = "") -> Entry:
        return await self._as(actor).transfer(src, dst, amount, actor=actor, idem=idem, memo=memo)

    async def lock(self, contract: str, payer: str, payee: str, amount: int, *, actor: str, idem: str) -> Entry:
        return await self._as(actor).lock(contract, payer, payee, amount, actor=actor, idem=idem)

    async def deliver(self, contract: str, usage_receipt: bytes, *, actor: str, idem: str) -> Entry:
        return await self._as(actor).deliver(contract, usage_receipt, actor=actor, idem=idem)

    async def release(self, contract: str, metering_receipt: bytes, *, actor: str, idem: str) -> Entry:
        return await self._as(actor).release(contract, metering_receipt, actor=actor, idem=idem)

    async def refund(self, contract: str, *, actor: str, idem: str, reason: str = "") -> Entry:
        return await self._as(actor).refund(contract, actor=actor, idem=idem, reason=reason)

    async def dispute(self, contract: str, *, actor: str, idem: str, reason: str) -> Entry:
        return await self._as(actor).dispute(contract, actor=actor, idem=idem, reason=reason)

    async def resolve(self, contract: str, payee_amount: int, *, actor: str, idem: str, decision: str) -> Entry:
        return await self._as(actor).resolve(contract, payee_amount, actor=actor, idem=idem, decision=decision)

    async def stake(self, did: str, amount: int, *, actor: str, idem: str) -> Entry:
        return await self._as(actor).stake(did, amount, actor=actor, idem=idem)

    async def unstake(self, did: str, amount: int, *, actor: str, idem: str) -> Entry:
        return await self._as(actor).unstake(did, amount, actor=actor, idem=idem)

    async def slash(
        self, did: str, amount: int, *, evidence: Sequence[str], to: str, actor: str, idem: str, memo: str = ""
    ) -> Entry:
        return await self._as(actor).slash(did, amount, evidence=evidence, to=to, actor=actor, idem=idem, memo=memo)

    async def slash_proven(self, accused: bytes, agreeing: Sequence[bytes], amount: int, *, actor: str) -> Entry:
        return await self._as(actor).slash_proven(accused, agreeing, amount, actor=actor)

    async def stakes(self, dids: Sequence[str]) -> dict[str, int]:
        return await self.reader.stakes(dids)
