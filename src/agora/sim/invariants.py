"""The invariants the simulator checks at every step, and the event trail it fails with.

After every event the world's touched providers and jobs, and every ledger entry appended, are checked:

- `capacity`: a provider's reservation holds never add up to more than its resources (no double-booked
  capacity), its free capacity is what the holds leave, and every run it has is backed by exactly one hold;
- `ledger_sum`: every entry's postings sum to 0, and the books' balances sum to 0 (all of them after every
  event while the books are small, at every sample and at the end otherwise);
- `escrow_once`: no escrow is paid out twice (the simulator's own record, besides the ledger's rules);
- `job_state`: every job is in a recorded state (`JOB_STATES`), a running job has a live replica on a
  provider that still holds it, a pending one is in the queue, and no replica is left on a provider that
  crashed or was cut off (jobs lost);
- `request_state`: every inference request ends served or failed (`inference.REQUEST_STATES`), and every
  escrow its attempts locked is released or refunded by then (`escrow_settled`);
- `round_state`: every training run ends completed or failed, each participant's every round played is
  delivered (paid), late or rejected (unpaid), and every round's escrow is released or refunded by the end
  of the run (`escrow_settled`).

The inference and training actors pay through `CheckedSettlement`, the real `InternalLedgerSettlement`
whose every entry is checked as it is appended (and whose escrows are tracked until they are settled).

The first violation ends the run with `sim_invariant_violated`, naming the invariant and carrying the last
events that led to it (`details["trail"]`).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from agora.errors import AgoraError
from agora.ledger import Entry, InternalLedgerSettlement, Ledger

if TYPE_CHECKING:
    from agora.sim.inference import Request
    from agora.sim.world import Job, Provider, World

TRAIL = 40
FULL_SUM_ACCOUNTS = 5000  # below this many live accounts the books' total is summed after every event


class Invariants:
    def __init__(self, world: World) -> None:
        self._w = world
        self.trail: deque[str] = deque(maxlen=TRAIL)
        self._providers: dict[str, Provider] = {}
        self._jobs: dict[str, Job] = {}
        self._released: set[str] = set()
        self._requests: dict[str, Request] = {}
        self.open_escrows: set[str] = set()  # locked by CheckedSettlement and not settled yet
        self.checks = 0

    def event(self, t: float, kind: str, data: Any) -> None:
        from agora.sim.world import trail_line

        self.trail.append(trail_line(t, kind, data))

    def touch_provider(self, p: Provider) -> None:
        self._providers[p.did] = p

    def touch_job(self, j: Job) -> None:
        self._jobs[j.id] = j

    def touch_request(self, r: Request) -> None:
        self._requests[r.id] = r

    def escrows_settled(self, prefix: str, what: str) -> None:
        """`escrow_settled`: no escrow whose contract starts with `prefix` is still open."""
        left = sorted(c for c in self.open_escrows if c.startswith(prefix))
        if left:
            self.fail("escrow_settled", f"{what} ended with {len(left)} escrow(s) still locked: {left[:3]}")

    def fail(self, invariant: str, message: str) -> None:
        raise AgoraError(
            "sim_invariant_violated",
            f"{invariant}: {message}",
            details={"invariant": invariant, "trail": list(self.trail)},
        )

    def released(self, contract: str) -> None:
        if contract in self._released:
            self.fail("escrow_once", f"escrow {contract} was released twice")
        self._released.add(contract)

    def entry_appended(self, entry: Entry) -> None:
        total = sum(p.amount for p in entry.postings)
        if total != 0:
            self.fail("ledger_sum", f"entry {entry.seq} ({entry.kind}) sums to {total}")
        if len(self._w.ledger.books.balances) <= FULL_SUM_ACCOUNTS:
            self.ledger_total()

    def ledger_total(self) -> None:
        total = self._w.ledger.books.total
        if total != 0:
            self.fail("ledger_sum", f"the balances sum to {total}, not 0")

    def step(self) -> None:
        self.checks += 1
        for p in self._providers.values():
            self._provider(p)
        for j in self._jobs.values():
            self._job(j)
        for r in self._requests.values():
            self._request(r)
        self._providers.clear()
        self._jobs.clear()
        self._requests.clear()

    def _request(self, r: Request) -> None:
        from agora.sim.inference import REQUEST_STATES

        if r.state not in REQUEST_STATES:
            self.fail("request_state", f"inference request {r.id} is in an unrecorded state {r.state!r}")
        self.escrows_settled("inference:", f"inference request {r.id}")

    def _provider(self, p: Provider) -> None:
        holds = p.book.holds
        total, free = p.book.total, p.book.free
        used_cpu = sum(h.need.cpu_millis for h in holds.values())
        used_mem = sum(h.need.memory_bytes for h in holds.values())
        if used_cpu > total.cpu_millis or used_mem > total.memory_bytes:
            self.fail(
                "capacity",
                f"{p.did} holds {used_cpu} mCPU / {used_mem} B of {total.cpu_millis} / "
                f"{total.memory_bytes}: double-booked",
            )
        if free.cpu_millis != total.cpu_millis - used_cpu or free.memory_bytes != total.memory_bytes - used_mem:
            self.fail("capacity", f"{p.did}: free capacity does not match its holds")
        if set(holds) != set(p.running):
            self.fail("capacity", f"{p.did}: runs {sorted(p.running)[:5]} but holds {sorted(holds)[:5]}")
        if p.state in ("offline", "partitioned") and p.running:
            self.fail("job_state", f"{p.did} is {p.state} with {len(p.running)} runs left on it (jobs lost)")

    def _job(self, j: Job) -> None:
        from agora.sim.world import JOB_STATES

        if j.state not in JOB_STATES:
            self.fail("job_state", f"job {j.id} is in an unrecorded state {j.state!r}")
        for slot, rep in j.placed.items():
            p = self._w.providers[rep.provider]
            if rep.state != "running" or p.running.get(rep.contract) is not rep:
                self.fail("job_state", f"job {j.id} slot {slot}: its replica {rep.contract} is not running")
        if j.state == "running" and not j.placed and j.done == 0:
            self.fail("job_state", f"job {j.id} is running with no replica")
        if j.state in ("pending", "running"):
            waiting = sum((j.id, s) in self._w.pending for s in range(j.redundancy))
            if j.done + len(j.placed) + waiting < j.redundancy and self._w.clock.now() <= j.deadline:
                self.fail("job_state", f"job {j.id}: a replica is neither done, running nor queued (lost)")

    def final(self) -> None:
        """Everything, once, at the end."""
        for p in self._w.providers.values():
            self._provider(p)
        for j in self._w.jobs.values():
            self._job(j)
        if self._w.inference is not None:
            for r in self._w.inference.requests.values():
                self._request(r)
        if self._w.fl is not None:
            self._w.fl.final()
        self.ledger_total()


class CheckedSettlement(InternalLedgerSettlement):
    """The real settlement; every entry it appends is checked at once (`ledger_sum`), every escrow it locks
    is tracked until it is released (once: `escrow_once`) or refunded."""

    def __init__(self, ledger: Ledger, operator: str, inv: Invariants) -> None:
        super().__init__(ledger, operator)
        self._inv = inv

    async def mint(self, to_did: str, amount: int, *, actor: str, idem: str, memo: str = "") -> Entry:
        entry = await super().mint(to_did, amount, actor=actor, idem=idem, memo=memo)
        self._inv.entry_appended(entry)
        return entry

    async def transfer(self, src: str, dst: str, amount: int, *, actor: str, idem: str, memo: str = "") -> Entry:
        entry = await super().transfer(src, dst, amount, actor=actor, idem=idem, memo=memo)
        self._inv.entry_appended(entry)
        return entry

    async def lock(self, contract: str, payer: str, payee: str, amount: int, *, actor: str, idem: str) -> Entry:
        entry = await super().lock(contract, payer, payee, amount, actor=actor, idem=idem)
        self._inv.entry_appended(entry)
        self._inv.open_escrows.add(contract)
        return entry

    async def release(self, contract: str, metering_receipt: bytes, *, actor: str, idem: str) -> Entry:
        entry = await super().release(contract, metering_receipt, actor=actor, idem=idem)
        self._inv.released(contract)
        self._inv.entry_appended(entry)
        self._inv.open_escrows.discard(contract)
        return entry

    async def refund(self, contract: str, *, actor: str, idem: str, reason: str = "") -> Entry:
        entry = await super().refund(contract, actor=actor, idem=idem, reason=reason)
        self._inv.entry_appended(entry)
        self._inv.open_escrows.discard(contract)
        return entry


__all__ = ["CheckedSettlement", "Invariants"]
