"""`Slasher`: a provider whose signed outputs redundancy contradicted loses stake, on proof, at the hub.

When a unit's replicas agree (`redundancy.py`) and a completed replica signed other outputs, the requester
sends the hub a slash claim carrying the signed usage receipts themselves: the accused's and the agreeing
ones (`Settlement.slash_proven`; the hub checks every signature and the contradiction, `ledger/proof.py`).
Only a job that put stake at risk slashes: the amount is its `placement.min_stake` (a job without one asked
for no stake, and slashes nothing). The slashed stake goes to `fees`: the requester gains nothing from it, so
it has no reason to frame a provider (its money for the disagreeing replica was already refunded).

Each claim is recorded in the job's event log (`ledger.slashed` with the entry, or `ledger.slash_refused` with
the hub's code) and, once the hub slashed, as trust evidence of kind `slash` citing the ledger entry. A
claim never fails the job: the hub's refusal is logged and recorded.

Not provable by the requester alone: an accepted award never started. The provider's signed commit proves it
accepted; nothing the requester holds proves the start did not happen (the requester's own word that it
got no answer is not evidence a third party can check: a network fault looks the same). That stays trust
evidence (`award_not_started`) and a cooldown, never a slash.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from agora.clock import SYSTEM_CLOCK, Clock
from agora.errors import AgoraError
from agora.ledger.interfaces import Entry, Settlement
from agora.orchestrator.evidence import TrustRecorder
from agora.store import Store
from agora.wire.usage import UsageReceipt

log = logging.getLogger("agora.orchestrator.slashing")


class Slasher:
    def __init__(
        self,
        settlement: Settlement,
        store: Store,
        *,
        did: str,
        trust: TrustRecorder | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settlement = settlement
        self.store = store
        self.did = did
        self.trust = trust
        self.clock = clock

    async def claim(
        self, job_id: str, unit: str, accused: UsageReceipt, agreeing: Sequence[UsageReceipt], amount: int | None
    ) -> Entry | None:
        """Ask the hub to slash `accused`'s provider by `amount` (None or 0: the job risked no stake); never
        raises (a claim does not fail the job): whatever goes wrong is logged."""
        if not amount or len(agreeing) < 2:
            return None
        try:
            return await self._claim(job_id, unit, accused, agreeing, amount)
        except Exception:
            log.exception("slash claim against %s for %s/%s not made", accused.provider, job_id, unit)
            return None

    async def _claim(
        self, job_id: str, unit: str, accused: UsageReceipt, agreeing: Sequence[UsageReceipt], amount: int
    ) -> Entry | None:
        data: dict[str, Any] = {
            "task": unit,
            "provider": accused.provider,
            "amount": amount,
            "receipts": [str(accused.cid), *(str(r.cid) for r in agreeing)],
        }
        try:
            entry = await self.settlement.slash_proven(accused.raw, [r.raw for r in agreeing], amount, actor=self.did)
        except AgoraError as err:
            log.warning("slash claim against %s for %s/%s refused: %s", accused.provider, job_id, unit, err)
            await self.store.append_event("ledger.slash_refused", job_id, data | {"error": err.to_dict()})
            return None
        taken = -sum(p.amount for p in entry.postings if p.amount < 0)
        await self.store.append_event(
            "ledger.slashed", job_id, data | {"entry": entry.id, "seq": entry.seq, "slashed": taken}
        )
        if self.trust is not None:
            cites = {"entry": entry.id, "job": job_id, "unit": unit, "receipt": str(accused.cid)}
            await self.trust.record(accused.provider, "slash", cites, f"slashed {taken:,} at ledger entry {entry.seq}")
        return entry


__all__ = ["Slasher"]
