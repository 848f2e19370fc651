"""The provider's reservation book: capacity held for awards, from commit to start or expiry (pure).

The second phase of the market's two-phase commit. When a provider commits an award it reserves the
job's need here, all or nothing (`insufficient_capacity` when the capacity is already taken by another
award: a commit never double-books). The hold then waits for the requester to start the job by
`start_by`; `expire(now)` gives back every hold whose start never came, and `release` gives one back
at any time (idempotent: a second release changes nothing).

States: `committed` (capacity held, waiting for the start) -> `running` (the allocation started; only
`release` ends it). Time is passed in (`now`), never read, so the book is pure and the simulator and
the tests drive it with their own clock. The capacity arithmetic is `CapacityTracker`'s (exact integers,
free never negative); nothing here awaits, so one call is atomic on an event loop. A provider passes its
node's own tracker (`tracker=`), so holds and plain allocations take from one pool and never double-book.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from agora.errors import AgoraError
from agora.models.capability import Capability
from agora.resources.capacity import CapacityTracker

COMMITTED = "committed"
RUNNING = "running"


@dataclass(frozen=True)
class Hold:
    award_id: str
    job_id: str
    need: Capability
    start_by: float
    state: str = COMMITTED


class ReservationBook:
    def __init__(self, total: Capability | None = None, *, tracker: CapacityTracker | None = None) -> None:
        """A book over `total` (its own tracker), or over `tracker`, shared with the node's allocations."""
        if tracker is not None and total is None:
            self._tracker = tracker
        elif total is not None and tracker is None:
            self._tracker = CapacityTracker(total)
        else:
            raise AgoraError("invalid_argument", "a ReservationBook needs exactly one of total or tracker")
        self._holds: dict[str, Hold] = {}

    @property
    def total(self) -> Capability:
        return self._tracker.total

    @property
    def free(self) -> Capability:
        return self._tracker.free

    @property
    def holds(self) -> Mapping[str, Hold]:
        return MappingProxyType(self._holds)

    def commit(self, award_id: str, job_id: str, need: Capability, *, start_by: float, now: float) -> Hold:
        """Reserve `need` for `award_id` until `start_by`, all or nothing.

        A retried commit of the same award with the same need returns the existing hold (the requester
        may not have seen the first answer); anything else for a known award is `already_exists`.
        """
        if now > start_by:
            raise AgoraError("bid_expired", f"start_by {start_by} is already past (now {now})")
        held = self._holds.get(award_id)
        if held is not None:
            if held.need == need and held.job_id == job_id:
                return held
            raise AgoraError("already_exists", f"award {award_id} already holds a reservation")
        self._tracker.reserve(award_id, need)  # insufficient_capacity, changing nothing, when taken
        hold = Hold(award_id, job_id, need, start_by)
        self._holds[award_id] = hold
        return hold

    def start(self, award_id: str, *, now: float) -> Hold:
        """The allocation for `award_id` starts: its hold stops expiring. A start after `start_by` finds the
        hold expired (and released): `bid_expired`."""
        held = self._holds.get(award_id)
        if held is None:
            raise AgoraError("reservation_not_found", f"no reservation for award {award_id}")
        if held.state != COMMITTED:
            raise AgoraError("reservation_invalid_state", f"award {award_id} is already {held.state}")
        if now > held.start_by:
            self.release(award_id)
            raise AgoraError("bid_expired", f"award {award_id} had to start by {held.start_by} (now {now})")
        running = replace(held, state=RUNNING)
        self._holds[award_id] = running
        return running

    def release(self, award_id: str) -> Hold | None:
        """Give the capacity back; None when nothing was held (a second release changes nothing)."""
        held = self._holds.pop(award_id, None)
        if held is not None:
            self._tracker.release(award_id)
        return held

    def expire(self, now: float) -> list[Hold]:
        """Release every committed hold whose start never came by `start_by`; returns them, by award id."""
        late = sorted(a for a, h in self._holds.items() if h.state == COMMITTED and now > h.start_by)
        return [h for a in late if (h := self.release(a)) is not None]


__all__ = ["COMMITTED", "RUNNING", "Hold", "ReservationBook"]
