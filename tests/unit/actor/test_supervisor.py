from __future__ import annotations

import asyncio
from collections.abc import Callable

from agora.actor import ChildSpec, HeartbeatMonitor, Supervisor
from agora.clock import ManualClock


async def _until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


class Child:
    def __init__(self, name: str, fail_times: int = 0) -> None:
        self.name = name
        self.starts = 0
        self.fail_times = fail_times

    async def run(self) -> None:
        self.starts += 1
        if self.starts <= self.fail_times:
            raise RuntimeError(f"{self.name} crashed")
        await asyncio.Event().wait()


async def test_one_for_one_restarts_only_the_failed_child() -> None:
    events: list[tuple[str, str]] = []
    sup = Supervisor(backoff_initial=0.01, on_event=lambda k, n, d: events.append((k, n)))
    a, b = Child("a", fail_times=2), Child("b")
    await sup.start_child(ChildSpec("a", a.run))
    await sup.start_child(ChildSpec("b", b.run))
    await _until(lambda: a.starts == 3)
    assert b.starts == 1
    assert ("child.failed", "a") in events and ("child.restarted", "a") in events
    assert sup.status()["a"] == {"status": "running", "restarts": 2}
    await sup.stop()


async def test_all_for_one_restarts_everyone() -> None:
    sup = Supervisor(strategy="all_for_one", backoff_initial=0.01)
    a, b = Child("a"), Child("b", fail_times=1)
    await sup.start_child(ChildSpec("a", a.run))
    await sup.start_child(ChildSpec("b", b.run))
    await _until(lambda: b.starts == 2 and a.starts == 2)
    await sup.stop()


async def test_rest_for_one_restarts_the_failed_and_later_children() -> None:
    sup = Supervisor(strategy="rest_for_one", backoff_initial=0.01)
    a, b, c = Child("a"), Child("b", fail_times=1), Child("c")
    for ch in (a, b, c):
        await sup.start_child(ChildSpec(ch.name, ch.run))
    await _until(lambda: b.starts == 2 and c.starts == 2)
    assert a.starts == 1
    await sup.stop()


async def test_gives_up_after_too_many_restarts() -> None:
    events: list[str] = []
    sup = Supervisor(max_restarts=3, backoff_initial=0.001, on_event=lambda k, n, d: events.append(k))
    bad = Child("bad", fail_times=1000)
    await sup.start_child(ChildSpec("bad", bad.run))
    await _until(lambda: sup.status()["bad"]["status"] == "failed")
    assert bad.starts == 4 and "child.gave_up" in events
    await sup.stop()


async def test_missed_heartbeats_restart_a_hung_child() -> None:
    sup = Supervisor(backoff_initial=0.01, check_interval=0.01)
    starts = 0

    async def hung() -> None:
        nonlocal starts
        starts += 1
        if starts == 1:
            await asyncio.Event().wait()  # never beats
        while True:
            sup.heartbeat("worker")
            await asyncio.sleep(0.01)

    await sup.start_child(ChildSpec("worker", hung, heartbeat_timeout=0.1))
    await _until(lambda: starts == 2)
    await asyncio.sleep(0.3)
    assert starts == 2  # once it beats, it is left alone
    await sup.stop()


async def test_stop_cancels_children() -> None:
    sup = Supervisor()
    a = Child("a")
    await sup.start_child(ChildSpec("a", a.run))
    await sup.stop()
    assert sup.status()["a"]["status"] == "stopped"
    assert all(t.get_name() != "child-a" for t in asyncio.all_tasks())


def test_heartbeat_monitor_marks_lost() -> None:
    clock = ManualClock()
    mon = HeartbeatMonitor(ttl=10, clock=clock)
    mon.beat("n1")
    mon.beat("n2")
    clock.advance(6)
    mon.beat("n2")
    clock.advance(5)
    assert mon.lost() == ["n1"]
    mon.forget("n1")
    assert mon.lost() == []


async def test_an_awaited_event_is_recorded_before_the_state_it_describes_shows() -> None:
    """A reader that sees a restarted child can read its `child.restarted` event, even from a slow sink."""
    recorded: list[tuple[str, dict[str, object]]] = []
    sup: Supervisor | None = None

    async def slow_sink(kind: str, name: str, data: dict[str, object]) -> None:
        for _ in range(20):
            await asyncio.sleep(0)  # a store write in a worker thread yields like this
        assert sup is not None
        recorded.append((kind, dict(sup.status()[name])))

    sup = Supervisor(backoff_initial=0.001, on_event=slow_sink)
    a = Child("a", fail_times=1)
    await sup.start_child(ChildSpec("a", a.run))
    try:
        await _until(lambda: sup.status()["a"] == {"status": "running", "restarts": 1})
        kinds = [k for k, _ in recorded]
        assert kinds == ["child.started", "child.failed", "child.restarted"]
        # what the status said while each event was being recorded: never ahead of the event
        assert recorded[2][1] == {"status": "restarting", "restarts": 0}
    finally:
        await sup.stop()


async def test_stop_ends_a_pending_restart() -> None:
    """A restart waiting out its backoff is a task the supervisor holds: stop() ends it, nothing is left."""
    before = asyncio.all_tasks()
    failed = asyncio.Event()
    sup = Supervisor(backoff_initial=60.0, on_event=lambda k, n, d: failed.set() if k == "child.failed" else None)
    await sup.start_child(ChildSpec("a", Child("a", fail_times=1).run))
    async with asyncio.timeout(5):
        await failed.wait()
    await sup.stop()
    assert asyncio.all_tasks() - before - {asyncio.current_task()} == set()
