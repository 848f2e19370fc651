"""Live accounting of a node's free capacity as allocations start and stop.

Why no asyncio.Lock: every method here is synchronous and never awaits, so on the event loop one call
runs to completion before any other coroutine can observe or change the tracker; check-then-reserve is
therefore atomic without a lock. The one rule that keeps it true: never put an `await` between
checking `free` and calling `reserve` in a caller; call `reserve` and handle `insufficient_capacity`
instead. (The tracker is not meant to be shared across threads; the node touches it from its loop.)

`free` is kept incrementally (`total - need` on reserve, `+ need` on release); the property tests check
it always equals `total` minus the sum of active reservations and is never negative.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from agora.errors import AgoraError
from agora.models.capability import Capability, FitResult, add, fits, subtract

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reservation:
    alloc_id: str
    need: Capability


class CapacityTracker:
    def __init__(self, total: Capability) -> None:
        if not isinstance(total, Capability):
            raise AgoraError("invalid_argument", "CapacityTracker needs a Capability as its total")
        self._total = total
        self._free = total
        self._active: dict[str, Reservation] = {}
        self._listeners: list[Callable[[], None]] = []

    @property
    def total(self) -> Capability:
        return self._total

    @property
    def free(self) -> Capability:
        return self._free

    @property
    def allocations(self) -> Mapping[str, Reservation]:
        """A read-only live view: alloc_id -> Reservation."""
        return MappingProxyType(self._active)

    def check(self, need: Capability) -> FitResult:
        """Would `need` fit now? (Answers a bid request without reserving anything.)"""
        return fits(need, self._free)

    def reserve(self, alloc_id: str, need: Capability) -> Reservation:
        """Take `need` out of free capacity for `alloc_id`, all or nothing.

        Raises `already_exists` if `alloc_id` already holds a reservation (it is never counted twice)
        and `insufficient_capacity` (details.reasons lists every short dimension) if it does not fit.
        """
        if not isinstance(alloc_id, str) or not alloc_id:
            raise AgoraError("invalid_argument", f"alloc_id must be a non-empty string, got {alloc_id!r}")
        if not isinstance(need, Capability):
            raise AgoraError("invalid_argument", "reserve needs a Capability")
        if alloc_id in self._active:
            raise AgoraError("already_exists", f"allocation {alloc_id} already holds a reservation")
        new_free = subtract(self._free, need)  # raises insufficient_capacity, changing nothing
        reservation = Reservation(alloc_id, need)
        self._free = new_free
        self._active[alloc_id] = reservation
        self._changed()
        return reservation

    def release(self, alloc_id: str) -> Reservation | None:
        """Give `alloc_id`'s capacity back; returns what was released, or None if it held nothing
        (a second release, or an unknown id, changes nothing)."""
        reservation = self._active.pop(alloc_id, None)
        if reservation is not None:
            self._free = add(self._free, reservation.need)
            self._changed()
        return reservation

    def on_change(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback()` after every change of free capacity (synchronously: it must only note the
        change, e.g. set an event); returns the function that removes it."""
        self._listeners.append(callback)

        def remove() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return remove

    def _changed(self) -> None:
        for callback in list(self._listeners):
            try:
                callback()
            except Exception:  # a listener's bug must not undo or fail the reservation
                log.exception("capacity listener failed")


__all__ = ["CapacityTracker", "Reservation"]
