"""How every CLI command that waits shows it (`job run`, `job logs --follow`, `train start --wait`, `match`,
`devnet up`, `sim run`): one `Waiting` per wait, three ways.

- On a terminal (stderr is one) and without `--json`: a live Rich status line on stderr (a spinner, what it
  waits for, the state, `round k/n` or a percentage, the elapsed time, what Ctrl-C does), redrawn a few
  times a second and gone when the wait ends. Output printed meanwhile appears above it.
- With `--json` on a command that streams: one JSON object per line on stdout for each state change,
  `{"event": NAME, "t": EPOCH_SECONDS, ...}`, flushed at once (`... --json | jq` reads them as they come);
  the command's last line carries the result.
- Otherwise (a pipe, a file, a test): nothing on stderr at all; the command prints its result as before.

Rich is imported only when a status line is drawn: a command that does not wait, or waits off a terminal,
does not pay for it (`tests/unit/cli/test_commands.py`).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live
    from rich.spinner import Spinner

DETACH = 130  # the exit status of a command whose wait Ctrl-C ended (the work it waited for goes on)


def elapsed(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def emit_line(
    event: str,
    fields: Mapping[str, Any] | None = None,
    *,
    out: TextIO | None = None,
    clock: Callable[[], float] = time.time,
) -> None:
    """One compact JSON object on one line, flushed: `{"event": ..., "t": ..., **fields}` (keys sorted).
    `fields` is a mapping, not keywords: a log line's own `stream` key must not meet a parameter."""
    stream = out if out is not None else sys.stdout
    doc = {"event": event, "t": round(clock(), 3), **(fields or {})}
    stream.write(json.dumps(doc, sort_keys=True, default=str) + "\n")
    stream.flush()


class Waiting:
    """A context manager around one wait. `status(...)` changes what the live line says (a no-op off a
    terminal); `event(name, ...)` writes a JSON line when the command streams JSON lines (a no-op otherwise).

    `quiet` draws nothing (a command's `--json` that prints one object at the end, `--no-progress`);
    `console` (a Rich Console) replaces stderr's, e.g. one forced into terminal mode in a test; `live`
    forces the status line on or off."""

    def __init__(
        self,
        what: str,
        *,
        json_lines: bool = False,
        hint: str = "Ctrl-C detaches",
        quiet: bool = False,
        console: Console | None = None,
        live: bool | None = None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.hint = hint
        self.json_lines = json_lines
        self.state = ""
        self.step: int | None = None
        self.total: int | None = None
        self.fraction: float | None = None
        self.detail = ""
        self._console = console
        self._stream = stream
        self._clock = clock
        self._monotonic = monotonic
        self._t0 = monotonic()
        if live is None:
            live = not (json_lines or quiet) and (console.is_terminal if console is not None else sys.stderr.isatty())
        self.live = live
        self._live: Live | None = None
        self._spinner: Spinner | None = None

    def __enter__(self) -> Waiting:
        self._t0 = self._monotonic()
        if self.live:
            from rich.console import Console
            from rich.live import Live

            console = self._console if self._console is not None else Console(stderr=True)
            # stdout goes above the status line only when it shares the terminal; redirected, it is left alone
            self._live = Live(
                self,
                console=console,
                transient=True,
                refresh_per_second=8,
                redirect_stdout=sys.stdout.isatty(),
                redirect_stderr=True,
            )
            self._live.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def status(
        self,
        state: str | None = None,
        *,
        step: int | None = None,
        total: int | None = None,
        fraction: float | None = None,
        detail: str | None = None,
    ) -> None:
        if state is not None:
            self.state = state
        if step is not None:
            self.step = step
        if total is not None:
            self.total = total
        if fraction is not None:
            self.fraction = fraction
        if detail is not None:
            self.detail = detail
        if self._live is not None:
            self._live.refresh()

    def event(self, name: str, /, **data: Any) -> None:
        if self.json_lines:
            emit_line(name, data, out=self._stream, clock=self._clock)

    def line(self) -> str:
        """The status line's text (without the spinner)."""
        parts = [self.what]
        if self.state:
            parts.append(self.state)
        if self.step is not None:
            parts.append(f"round {self.step}/{self.total}" if self.total else f"round {self.step}")
        if self.fraction is not None:
            parts.append(f"{self.fraction:.0%}")
        if self.detail:
            parts.append(self.detail)
        parts.append(elapsed(self._monotonic() - self._t0))
        return " · ".join(parts) + (f" ({self.hint})" if self.hint else "")

    def __rich__(self) -> RenderableType:
        from rich.spinner import Spinner

        if self._spinner is None:
            self._spinner = Spinner("dots")  # one object: its frame follows the time since its first frame
        self._spinner.update(text=self.line())
        return self._spinner


__all__ = ["DETACH", "Waiting", "elapsed", "emit_line"]
