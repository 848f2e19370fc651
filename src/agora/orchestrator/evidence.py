"""`TrustRecorder`: what the runner saw providers do becomes trust evidence, and trust feeds matching.

From the runner's outcomes (each record cites the signed thing it comes from):

| outcome | evidence | cites |
| --- | --- | --- |
| a unit completed, its usage receipt verified | `success` | receipt CID, job, unit, allocation |
| no end reported within the task's timeout (+grace), no receipt | `timeout` | job, unit, allocation |
| lost, a broken or missing receipt, outputs not as signed | `failure` | receipt CID when any, job, unit, allocation |
| committed to an award, then the start failed | `award_not_started` | its signed commit's CID, award, job, unit |
| asked for a bid, no answer before the bid deadline it was given | `late` | bid (request id), job, unit |

The task's own failures, signed by the provider's receipt (`task_failed`, `module_trap`, `task_oom`,
`task_disk_limit`, `task_timeout` with a receipt), are no evidence about the provider: the provider ran the
job honestly and the requester's program failed. Cancellations and this node's own errors (`internal`) are
not evidence either, nor is a start refused for what was asked (no grant, a bad input: an attempt that
never ran, unless the provider could not be reached at all). Each bid or decline that arrived gives a
round-trip sample for the latency EWMA.

`match_policy()` is the `Placer`'s policy: the scores of known providers (`trust`), the prior for the others
(`default_trust`), the latency estimates and the providers cooling down. `explain(round)` adds each
considered candidate's trust breakdown to the round's `why`.

Recording never fails a job: a store error is logged and the job goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from agora.clock import SYSTEM_CLOCK, Clock
from agora.errors import AgoraError
from agora.ledger import Evidence, TrustBook
from agora.market import MatchPolicy
from agora.models.job import TASK_FAILED_CODES, failure_class
from agora.orchestrator.placement import MAX_CANDIDATES_KEPT, Placed, PlacementRound
from agora.orchestrator.record import RUNNING, UnitRecord

log = logging.getLogger("agora.orchestrator.evidence")

NOT_EVIDENCE = frozenset({"cancelled", "task_cancelled", "internal"})
SIGNED_TASK_ENDS = TASK_FAILED_CODES | {"task_timeout"}
MAX_PENDING_MARKS = 10_000
WAKE_MARGIN_S = 0.05  # past the end of a cooldown, so the next round sees it over


class TrustRecorder:
    def __init__(self, book: TrustBook, *, did: str, clock: Clock = SYSTEM_CLOCK) -> None:
        self.book = book
        self.did = did  # this node: it keeps no evidence about itself
        self.clock = clock
        self._not_started: set[tuple[str, str, int]] = set()  # (job, unit, attempt): already award_not_started

    # -- matching -------------------------------------------------------------------------------
    def match_policy(self) -> MatchPolicy:
        view = self.book.view(self.clock.now())
        return MatchPolicy(
            trust=view.trust,
            default_trust=view.prior,
            latency_ms=view.latency_ms,
            cooling_down=view.cooling_down,
        )

    def explain(self, rnd: PlacementRound) -> None:
        """Each considered candidate's trust breakdown, into `rnd.trust` (shown by `job why`)."""
        if rnd.decision is None:
            return
        now = self.clock.now()
        for v in rnd.decision.candidates[:MAX_CANDIDATES_KEPT]:
            r = self.book.report(v.provider, now).to_dict(now)
            rnd.trust[v.provider] = {
                k: r[k] for k in ("score", "known", "counts", "cooling_until", "offences", "latency_ms")
            }

    def wake_in(self, rnd: PlacementRound) -> float | None:
        """Seconds until the first cooldown that rejected a candidate of `rnd` ends (None: none did): a
        pending unit is placed again then, without waiting for the index to change."""
        if rnd.decision is None:
            return None
        now = self.clock.now()
        ends = [
            float(r.need)
            for v in rnd.decision.rejected
            for r in v.reasons
            if r.code == "provider_cooling_down" and isinstance(r.need, int | float)
        ]
        return max(0.0, min(ends) - now) + WAKE_MARGIN_S if ends else None

    # -- outcomes -------------------------------------------------------------------------------
    async def placement(self, job_id: str, unit: str, rnd: PlacementRound) -> None:
        """Latency samples of the answers that came, `late` for the asked providers that did not answer."""
        await _guard(self._placement(job_id, unit, rnd))

    async def not_started(self, job_id: str, unit: UnitRecord, placed: Placed, exc: BaseException) -> None:
        """The provider committed to `placed`, then the start failed (that attempt's `outcome` then adds
        nothing: one incident, one record)."""
        await _guard(self._not_started_(job_id, unit, placed, exc))

    async def outcome(self, job_id: str, unit: UnitRecord, err: AgoraError | None) -> None:
        """A unit's attempt ended: completed (`err` None) or failed with `err`."""
        await _guard(self._outcome(job_id, unit, err))

    async def _placement(self, job_id: str, unit: str, rnd: PlacementRound) -> None:
        for provider, ms in rnd.rtt_ms.items():
            await self._safe(self.book.observe_latency(provider, ms))
        for f in rnd.failures:
            if f["stage"] == "bid" and f["code"] == "timeout" and f["provider"] in rnd.asked:
                cites = {"bid": rnd.asked[f["provider"]], "job": job_id, "unit": unit}
                await self.record(f["provider"], "late", cites, f["message"])
        self.explain(rnd)

    async def _not_started_(self, job_id: str, unit: UnitRecord, placed: Placed, exc: BaseException) -> None:
        if not isinstance(exc, AgoraError | TimeoutError):
            return  # cancelled (the requester's doing) or a bug here: nothing about the provider
        code = exc.code if isinstance(exc, AgoraError) else "timeout"
        if code in NOT_EVIDENCE:
            return
        if len(self._not_started) >= MAX_PENDING_MARKS:  # (marks of attempts cancelled before their outcome)
            self._not_started.clear()
        self._not_started.add((job_id, unit.key, unit.attempts))
        cites = {"award": placed.request_id, "commit": str(placed.commit.cid), "job": job_id}
        cites["unit"] = f"{unit.key}#{unit.attempts}"
        await self.record(placed.provider, "award_not_started", cites, f"{code}: {exc}"[:500])

    async def _outcome(self, job_id: str, unit: UnitRecord, err: AgoraError | None) -> None:
        if (job_id, unit.key, unit.attempts) in self._not_started:
            self._not_started.discard((job_id, unit.key, unit.attempts))
            return
        receipt = (unit.receipt or {}).get("cid")
        cites = {"job": job_id, "unit": f"{unit.key}#{unit.attempts}"}
        if unit.alloc_id:
            cites["alloc"] = unit.alloc_id
        if receipt:
            cites["receipt"] = str(receipt)
        if err is None:
            if receipt:
                await self.record(unit.node, "success", cites, "completed, receipt verified")
            return
        if err.code in NOT_EVIDENCE or (receipt and err.code in SIGNED_TASK_ENDS):
            return
        if unit.state != RUNNING and failure_class(err.code, err.retryable) != "node_lost":
            return  # refused at the start (no grant, a bad input...): about the request, not the provider
        kind = "timeout" if err.code == "task_timeout" else "failure"
        await self.record(unit.node, kind, cites, f"{err.code}: {err.message}"[:500])

    async def record(self, provider: str, kind: str, cites: dict[str, str], detail: str = "") -> None:
        """Keep one piece of evidence (also for other parts: a redundancy `disagreement` citing its event, a
        contract's `dispute`, the ledger's `slash`); nothing about this node itself. A malformed record is the
        caller's bug (`invalid_argument`, `did_invalid`); a store that cannot keep it is logged."""
        if not provider or provider == self.did:
            return
        evidence = Evidence(provider, kind, self.clock.now(), cites, detail)
        await self._safe(self.book.record(evidence))

    async def _safe(self, step: Awaitable[Any]) -> None:
        try:
            await step
        except AgoraError as err:
            log.warning("trust evidence not recorded: %s", err)


async def _guard(step: Awaitable[None]) -> None:
    """The runner's hooks never fail a job: whatever goes wrong in recording is logged."""
    try:
        await step
    except Exception:
        log.exception("trust evidence not recorded")


__all__ = ["TrustRecorder"]
