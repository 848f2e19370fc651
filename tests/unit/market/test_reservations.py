"""The reservation book: atomic commits, retries, start, expiry, release; a stateful test: never double-booked."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from agora.errors import AgoraError
from agora.market.reservations import COMMITTED, RUNNING, ReservationBook
from agora.models.capability import Capability, GiB
from agora.resources.capacity import CapacityTracker

TOTAL = Capability(cpu_millis=4000, memory_bytes=8 * GiB, gpu_count=1, executors=frozenset({"wasm"}))
QUANTITIES = ("cpu_millis", "memory_bytes", "disk_bytes", "gpu_count")


def need(cpu: int, gib: int = 1, gpu: int = 0) -> Capability:
    return Capability(cpu_millis=cpu, memory_bytes=gib * GiB, gpu_count=gpu)


def test_commit_is_atomic_against_capacity() -> None:
    book = ReservationBook(TOTAL)
    book.commit("a1", "j1", need(3000), start_by=10, now=0)
    with pytest.raises(AgoraError) as raised:
        book.commit("a2", "j2", need(2000), start_by=10, now=0)
    assert raised.value.code == "insufficient_capacity"
    assert "a2" not in book.holds and book.free.cpu_millis == 1000 and book.free.memory_bytes == 7 * GiB


def test_retried_commit_is_idempotent_and_conflicts_refused() -> None:
    book = ReservationBook(TOTAL)
    first = book.commit("a1", "j1", need(1000), start_by=10, now=0)
    assert book.commit("a1", "j1", need(1000), start_by=10, now=1) == first
    assert book.free.cpu_millis == 3000  # counted once
    with pytest.raises(AgoraError) as raised:
        book.commit("a1", "j1", need(2000), start_by=10, now=1)
    assert raised.value.code == "already_exists"
    with pytest.raises(AgoraError) as raised:
        book.commit("a9", "j9", need(1), start_by=5, now=6)
    assert raised.value.code == "bid_expired"


def test_start_expiry_and_release() -> None:
    book = ReservationBook(TOTAL)
    book.commit("a1", "j1", need(1000), start_by=10, now=0)
    book.commit("a2", "j2", need(1000), start_by=10, now=0)
    book.commit("a3", "j3", need(1000), start_by=20, now=0)
    assert book.start("a1", now=5).state == RUNNING
    with pytest.raises(AgoraError) as raised:
        book.start("a1", now=6)
    assert raised.value.code == "reservation_invalid_state"
    assert [h.award_id for h in book.expire(11)] == ["a2"]  # a1 runs, a3 still has time
    assert book.free.cpu_millis == 2000
    with pytest.raises(AgoraError) as raised:
        book.start("a3", now=21)  # too late: expired on the spot
    assert raised.value.code == "bid_expired" and "a3" not in book.holds
    with pytest.raises(AgoraError) as raised:
        book.start("a2", now=11)
    assert raised.value.code == "reservation_not_found"
    released = book.release("a1")
    assert released is not None and released.state == RUNNING
    assert book.release("a1") is None and book.free == TOTAL


class BookMachine(RuleBasedStateMachine):
    """Random commits, starts, releases and clock steps; the capacity is never double-booked."""

    def __init__(self) -> None:
        super().__init__()
        self.book = ReservationBook(TOTAL)
        self.now = 0
        self.n = 0

    @rule(cpu=st.integers(0, 3000), gib=st.integers(0, 6), gpu=st.integers(0, 1), ttl=st.integers(0, 5))
    def commit(self, cpu: int, gib: int, gpu: int, ttl: int) -> None:
        self.n += 1
        award = f"a{self.n}"
        n = need(cpu, gib, gpu)
        free_before = self.book.free
        fits = all(getattr(n, q) <= getattr(free_before, q) for q in QUANTITIES)
        try:
            self.book.commit(award, "j", n, start_by=self.now + ttl, now=self.now)
        except AgoraError as exc:
            assert exc.code == "insufficient_capacity" and not fits
            assert self.book.free == free_before and award not in self.book.holds
        else:
            assert fits

    @precondition(lambda self: bool(self.book.holds))
    @rule(data=st.data())
    def start(self, data: st.DataObject) -> None:
        award = data.draw(st.sampled_from(sorted(self.book.holds)))
        hold = self.book.holds[award]
        try:
            self.book.start(award, now=self.now)
        except AgoraError as exc:
            assert exc.code in ("reservation_invalid_state", "bid_expired")
            assert hold.state == RUNNING or self.now > hold.start_by

    @precondition(lambda self: bool(self.book.holds))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        award = data.draw(st.sampled_from(sorted(self.book.holds)))
        assert self.book.release(award) is not None
        assert self.book.release(award) is None

    @rule(step=st.integers(0, 4))
    def tick(self, step: int) -> None:
        self.now += step
        for hold in self.book.expire(self.now):
            assert hold.state == COMMITTED and self.now > hold.start_by

    @invariant()
    def never_double_booked(self) -> None:
        for q in QUANTITIES:
            held = sum(getattr(h.need, q) for h in self.book.holds.values())
            assert held <= getattr(TOTAL, q)
            assert getattr(self.book.free, q) == getattr(TOTAL, q) - held >= 0


TestBook = BookMachine.TestCase
TestBook.settings = settings(max_examples=80, stateful_step_count=30, deadline=None)


def test_a_book_over_a_shared_tracker_takes_from_the_same_pool() -> None:
    tracker = CapacityTracker(TOTAL)
    book = ReservationBook(tracker=tracker)
    tracker.reserve("alloc-1", need(3000))  # a plain allocation of the node
    with pytest.raises(AgoraError) as raised:
        book.commit("a1", "j1", need(2000), start_by=10, now=0)
    assert raised.value.code == "insufficient_capacity" and book.holds == {}
    book.commit("a2", "j2", need(1000), start_by=10, now=0)
    assert tracker.free.cpu_millis == 0 and set(tracker.allocations) == {"alloc-1", "a2"}
    assert book.expire(11)[0].award_id == "a2" and tracker.free.cpu_millis == 1000
    for bad in ({}, {"total": TOTAL, "tracker": tracker}):
        with pytest.raises(AgoraError) as raised:
            ReservationBook(**bad)  # type: ignore[arg-type]
        assert raised.value.code == "invalid_argument"
