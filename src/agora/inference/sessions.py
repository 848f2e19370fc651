"""Streams as sessions that a caller follows with watch calls: what a provider's stream and a hub's routed
stream share.

A session belongs to the DID that opened it (only it may watch it) and owns one task, its pump, which
appends text (`Session.push`) and, at the end, sets `final` (the fields the last watch carries: a
provider's metering record; a router's provider, quote and record) or `error`. A watch returns the text
after the caller's cursor, waiting up to `wait` seconds for something new and then batching what comes
for `watch_batch_s` (a call per burst, not per token; not for the first text: time to first token
counts). The session ends when its last watch is read; one nobody reads is dropped `session_keep_s` after
its end. `close` cancels every pump (the node stops).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agora.clock import Clock
from agora.errors import AgoraError


class SessionSettings(Protocol):
    @property
    def max_sessions(self) -> int: ...  # streams open or finished-but-unread at once

    @property
    def session_keep_s(self) -> float: ...  # a finished stream nobody reads is dropped after this

    @property
    def watch_wait_max_s(self) -> float: ...  # longest a watch call waits for new text

    @property
    def watch_batch_s(self) -> float: ...  # after new text, wait this long for more


@dataclass
class Session:
    id: str
    owner: str
    deltas: list[str] = field(default_factory=list)
    done: bool = False
    final: dict[str, Any] = field(default_factory=dict)
    error: AgoraError | None = None
    ended_at: float | None = None
    watched_at: float = 0.0  # when its owner last watched it (monotonic)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def push(self, text: str) -> None:
        self.deltas.append(text)
        self.changed.set()


class Sessions:
    """The open streams of one actor; `final_keys` are the fields its last watch carries (None before)."""

    def __init__(
        self, settings: SessionSettings, clock: Clock, *, final_keys: Sequence[str], name: str, where: str
    ) -> None:
        self.settings = settings
        self.where = where
        self.clock = clock
        self.final_keys = tuple(final_keys)
        self.name = name
        self._open: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._open)

    def get(self, sid: str) -> Session | None:
        return self._open.get(sid)

    def check_room(self) -> None:
        """`inference_rate_limited` when this actor holds `max_sessions` streams already (checked before
        anything is admitted or paid)."""
        self._sweep()
        if len(self._open) >= self.settings.max_sessions:
            raise AgoraError("inference_rate_limited", f"too many open streams {self.where}")

    def open(self, owner: str, pump: Callable[[Session], Awaitable[None]]) -> str:
        """Start `pump` on a new session of `owner`'s; its id. The session is done when the pump returns."""
        s = Session(uuid.uuid4().hex, owner, watched_at=self.clock.monotonic())
        s.task = asyncio.create_task(self._run(s, pump), name=f"{self.name}-{s.id[:8]}")
        self._open[s.id] = s
        return s.id

    async def _run(self, s: Session, pump: Callable[[Session], Awaitable[None]]) -> None:
        try:
            await pump(s)
        finally:
            s.done = True
            s.ended_at = self.clock.monotonic()
            s.changed.set()

    def _sweep(self) -> None:
        now = self.clock.monotonic()
        for sid, s in list(self._open.items()):
            if s.ended_at is not None and now - s.ended_at > self.settings.session_keep_s:
                del self._open[sid]

    async def watch(self, owner: str, sid: str, cursor: int, wait_s: float) -> dict[str, Any]:
        """What the stream has after `cursor` (waiting up to `wait_s` for something new), and its end."""
        s = self._open.get(sid)
        if s is None or s.owner != owner:
            raise AgoraError("not_found", "no such inference stream")
        if type(cursor) is not int or not 0 <= cursor <= len(s.deltas):
            raise AgoraError("invalid_argument", "cursor must be within the stream")
        s.watched_at = self.clock.monotonic()
        wait_s = min(max(0.0, float(wait_s)), self.settings.watch_wait_max_s)
        if len(s.deltas) == cursor and not s.done:
            s.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await s.changed.wait()
            if not s.done and cursor > 0:  # let a burst of tokens make one reply (not the first: TTFT)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.watch_batch_s):
                        while not s.done:
                            s.changed.clear()
                            await s.changed.wait()
        new = s.deltas[cursor:]
        done = s.done
        if done:
            self._open.pop(sid, None)  # read to the end: the session is over
        return {
            "deltas": new,
            "cursor": cursor + len(new),
            "done": done,
            **{k: s.final.get(k) if done else None for k in self.final_keys},
            "error": s.error.to_dict() if done and s.error is not None else None,
        }

    async def close(self) -> None:
        sessions, self._open = list(self._open.values()), {}
        for s in sessions:
            if s.task is not None:
                s.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await s.task


def wait_arg(args: Any) -> float:
    """A watch call's `wait` (seconds, default 5)."""
    wait = args.get("wait", 5.0)
    if isinstance(wait, bool) or not isinstance(wait, int | float):
        raise AgoraError("invalid_argument", "wait must be a number of seconds")
    return float(wait)


__all__ = ["Session", "SessionSettings", "Sessions", "wait_arg"]
