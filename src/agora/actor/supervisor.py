"""Supervision: a parent keeps its children running and hears about their failures as messages.

A child is a long-running coroutine started from a factory. It fails when it raises, returns while it
was meant to run forever, or stops sending heartbeats for longer than its `heartbeat_timeout`.
The supervisor restarts failed children with exponential backoff according to its strategy:
- one_for_one: only the failed child;
- all_for_one: every child (for children that only make sense together);
- rest_for_one: the failed child and those started after it (later ones depend on earlier ones).
Too many restarts inside `window` seconds escalates: the supervisor gives up on the child, marks it
`failed`, and reports `child.gave_up`, so a crash loop is visible instead of silent.

Events and state are one step: the event sink may be a coroutine function, and the supervisor awaits it
before the state the event describes becomes visible (`status()`), so a reader that sees a restarted
child can read its `child.restarted` event. Restarts run as tasks the supervisor holds and `stop()` ends.

`HeartbeatMonitor` is the same "missed heartbeats -> lost" rule for things that are not tasks here,
such as remote peers.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

from agora.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger("agora.actor.supervisor")

Strategy = Literal["one_for_one", "all_for_one", "rest_for_one"]
EventSink = Callable[[str, str, dict[str, object]], Awaitable[None] | None]


@dataclass
class ChildSpec:
    name: str
    factory: Callable[[], Coroutine[Any, Any, None]]
    heartbeat_timeout: float | None = None  # None: the child is watched only for crashes


@dataclass
class _Child:
    spec: ChildSpec
    task: asyncio.Task[None] | None = None
    last_beat: float = 0.0
    restarts: list[float] = field(default_factory=list)
    status: str = "stopped"  # running | restarting | failed | stopped


class Supervisor:
    def __init__(
        self,
        *,
        strategy: Strategy = "one_for_one",
        max_restarts: int = 5,
        window: float = 60.0,
        backoff_initial: float = 0.05,
        backoff_max: float = 5.0,
        check_interval: float = 0.05,
        clock: Clock = SYSTEM_CLOCK,
        on_event: EventSink | None = None,
    ) -> None:
        self.strategy = strategy
        self.max_restarts = max_restarts
        self.window = window
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.check_interval = check_interval
        self.clock = clock
        self.on_event = on_event
        self._children: dict[str, _Child] = {}
        self._order: list[str] = []
        self._watch: asyncio.Task[None] | None = None
        self._restarting: set[str] = set()
        self._restart_tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- public -------------------------------------------------------------------------------
    async def start_child(self, spec: ChildSpec) -> None:
        if spec.name in self._children:
            raise ValueError(f"child {spec.name} already exists")
        child = _Child(spec)
        self._children[spec.name] = child
        self._order.append(spec.name)
        self._launch(child)
        await self._emit("child.started", spec.name)
        if self._watch is None:
            self._watch = asyncio.create_task(self._watch_loop(), name="supervisor-watch")

    def heartbeat(self, name: str) -> None:
        child = self._children.get(name)
        if child is not None:
            child.last_beat = self.clock.monotonic()

    def status(self) -> dict[str, dict[str, object]]:
        return {
            name: {"status": c.status, "restarts": len(c.restarts)}
            for name, c in ((n, self._children[n]) for n in self._order)
        }

    async def stop(self) -> None:
        self._closed = True
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        pending = list(self._restart_tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for name in reversed(self._order):
            await self._stop_child(self._children[name])
            self._children[name].status = "stopped"

    # -- internals ----------------------------------------------------------------------------
    async def _emit(self, kind: str, name: str, **data: object) -> None:
        if self.on_event is not None:
            try:
                result = self.on_event(kind, name, data)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("supervisor event sink failed")

    def _launch(self, child: _Child) -> None:
        child.last_beat = self.clock.monotonic()
        child.status = "running"
        task = asyncio.create_task(child.spec.factory(), name=f"child-{child.spec.name}")
        child.task = task
        task.add_done_callback(functools.partial(self._on_done, child))

    def _on_done(self, child: _Child, task: asyncio.Task[None]) -> None:
        if self._closed or child.task is not task or task.cancelled():
            return
        exc = task.exception()
        reason = f"{type(exc).__name__}: {exc}" if exc else "exited"
        self._fail(child, reason)

    def _fail(self, child: _Child, reason: str) -> None:
        name = child.spec.name
        if name in self._restarting or child.status == "failed":
            return
        self._restarting.add(name)
        task = asyncio.get_running_loop().create_task(self._restart(child, reason), name=f"restart-{name}")
        self._restart_tasks.add(task)
        task.add_done_callback(self._restart_done)

    def _restart_done(self, task: asyncio.Task[None]) -> None:
        self._restart_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("restart failed", exc_info=task.exception())

    async def _restart(self, failed: _Child, reason: str) -> None:
        try:
            await self._emit("child.failed", failed.spec.name, reason=reason)
            now = self.clock.monotonic()
            failed.restarts = [t for t in failed.restarts if now - t < self.window]
            if len(failed.restarts) >= self.max_restarts:
                await self._stop_child(failed)
                await self._emit("child.gave_up", failed.spec.name, reason=reason, restarts=len(failed.restarts))
                failed.status = "failed"
                return
            attempt = len(failed.restarts) + 1
            idx = self._order.index(failed.spec.name)
            if self.strategy == "one_for_one":
                group = [failed.spec.name]
            elif self.strategy == "all_for_one":
                group = [n for n in self._order if self._children[n].status != "failed"]
            else:
                group = [n for n in self._order[idx:] if self._children[n].status != "failed"]
            for name in reversed(group):
                self._children[name].status = "restarting"
                await self._stop_child(self._children[name])
            delay = min(self.backoff_max, self.backoff_initial * (2 ** (attempt - 1)))
            await asyncio.sleep(delay)
            if self._closed:
                return
            for name in group:
                child = self._children[name]
                count = len(child.restarts) + (1 if child is failed else 0)
                await self._emit("child.restarted", name, attempt=count, delay=delay)
                if self._closed:
                    return
                if child is failed:  # counted with the launch, after the event: status() never runs ahead of it
                    failed.restarts.append(now)
                self._launch(child)
        finally:
            self._restarting.discard(failed.spec.name)

    async def _stop_child(self, child: _Child) -> None:
        task, child.task = child.task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _watch_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.check_interval)
            now = self.clock.monotonic()
            for child in list(self._children.values()):
                timeout = child.spec.heartbeat_timeout
                if child.status == "running" and timeout is not None and now - child.last_beat > timeout:
                    self._fail(child, f"missed heartbeats for {now - child.last_beat:.2f}s")


class HeartbeatMonitor:
    """Tracks last-seen times and says who is lost (no heartbeat within `ttl`)."""

    def __init__(self, ttl: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self.ttl = ttl
        self.clock = clock
        self._seen: dict[str, float] = {}

    def beat(self, key: str) -> None:
        self._seen[key] = self.clock.now()

    def forget(self, key: str) -> None:
        self._seen.pop(key, None)

    def last_seen(self, key: str) -> float | None:
        return self._seen.get(key)

    def lost(self) -> list[str]:
        now = self.clock.now()
        return [k for k, t in self._seen.items() if now - t > self.ttl]


__all__ = ["ChildSpec", "HeartbeatMonitor", "Strategy", "Supervisor"]
