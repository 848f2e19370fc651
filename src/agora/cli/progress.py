"""A one-line progress display for a job that runs: spinner, state, elapsed time. Only on a terminal:
redirected output (a file, a pipe, a test) gets no spinner and no carriage returns."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def elapsed(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """`show(state)` redraws the line; `clear()` removes it before other output is printed."""

    def __init__(
        self, job_id: str, *, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.job_id = job_id
        self._stream = stream if stream is not None else sys.stderr
        self._clock = clock
        self._t0 = clock()
        self._frame = 0
        self._drawn = False
        self.enabled = self._stream.isatty()

    def show(self, state: str) -> None:
        if not self.enabled:
            return
        spin = FRAMES[self._frame % len(FRAMES)]
        self._frame += 1
        line = f"{spin} job {self.job_id} {state} · {elapsed(self._clock() - self._t0)} (Ctrl-C detaches)"
        self._stream.write("\r\033[K" + line)
        self._stream.flush()
        self._drawn = True

    def clear(self) -> None:
        if self._drawn:
            self._stream.write("\r\033[K")
            self._stream.flush()
            self._drawn = False


__all__ = ["FRAMES", "Progress", "elapsed"]
