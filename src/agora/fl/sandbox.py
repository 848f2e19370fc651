"""A warm, sandboxed trainer for one contract: one process for every round instead of one per message.

The trainer runs `python -m agora.fl.worker` under bubblewrap with the process executor's rules that
matter here: every namespace new (`--unshare-all`: no network at all), all capabilities dropped, the
environment cleared, a fresh /tmp, private /proc and /dev, and a root holding only what the interpreter
needs, read-only (the system dirs, the Python installation, agora's code) plus the data set, read-only at
the same path. Nothing leaves but the frames on stdout (the update and its metrics): a trainer that opens
a socket finds no network, one that writes outside /tmp gets a read-only file system.

Every wait is bounded: the start (`start_timeout_s`) and each `fit` (the round's deadline). A trainer that
misses its deadline is killed (its next round starts a fresh one) so a late answer can never be taken for
the next round's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import agora
from agora.errors import AgoraError

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0
MAX_FRAME = 256 * 1024 * 1024


def sandbox_argv(data: Path, *, bwrap: str | None = None) -> list[str]:
    """bwrap's argv for the worker reading `data` (read-only), with no network."""
    exe = bwrap or shutil.which("bwrap")
    if exe is None:
        raise AgoraError("unavailable", "bwrap not found on PATH: the FL trainer sandbox needs bubblewrap")
    binds: list[str] = []
    for path in sorted({Path(sys.prefix), Path(sys.base_prefix), Path(agora.__file__).resolve().parent.parent}):
        binds += ["--ro-bind", str(path), str(path)]
    argv = [exe, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    argv += ["--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev"]  # first: the binds below may lie under /tmp
    for d in ("/usr", "/etc"):
        argv += ["--ro-bind", d, d]
    for link in ("lib", "lib64", "bin", "sbin"):
        target = Path("/") / link
        if target.is_symlink():
            argv += ["--symlink", str(target.readlink()), str(target)]
        elif target.exists():
            argv += ["--ro-bind", str(target), str(target)]
    argv += binds
    argv += ["--ro-bind", str(data), str(data)]
    argv += ["--clearenv", "--setenv", "PYTHONDONTWRITEBYTECODE", "1", "--setenv", "OMP_NUM_THREADS", "1"]
    argv += ["--setenv", "OPENBLAS_NUM_THREADS", "1", "--chdir", "/tmp"]
    return [*argv, sys.executable, "-m", "agora.fl.worker"]


class WarmTrainer:
    """One sandboxed trainer process; `fit` one round at a time (a lock keeps the frames in order)."""

    def __init__(self, data: Path, init: Mapping[str, Any], *, bwrap: str | None = None) -> None:
        self.data = data
        self.init = {**init, "data": str(data)}
        self.bwrap = bwrap
        self.proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self.starts = 0

    async def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *sandbox_argv(self.data, bwrap=self.bwrap),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        self.starts += 1
        await self._send(json.dumps(self.init).encode())
        answer = await self._answer(timeout_s)
        if not answer.get("ok"):
            await self.stop()
            raise AgoraError(
                "training_update_rejected",
                f"the trainer did not start: {answer.get('error')}",
                details={"reason": "trainer_failed"},
            )

    async def _send(self, data: bytes) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(len(data).to_bytes(4, "big") + data)
        await self.proc.stdin.drain()

    async def _frame(self) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            head = await self.proc.stdout.readexactly(4)
            size = int.from_bytes(head, "big")
            if size > MAX_FRAME:
                raise AgoraError(
                    "training_update_rejected", "the trainer's frame is too large", details={"reason": "shape"}
                )
            return await self.proc.stdout.readexactly(size)
        except asyncio.IncompleteReadError:
            raise AgoraError("unavailable", "the trainer process ended", details={"reason": "trainer_died"}) from None

    async def _answer(self, timeout_s: float) -> dict[str, Any]:
        try:
            raw = await asyncio.wait_for(self._frame(), timeout_s)
        except TimeoutError:
            await self.stop()
            raise AgoraError("timeout", f"the trainer did not answer within {timeout_s:.1f}s") from None
        answer: dict[str, Any] = json.loads(raw)
        return answer

    async def fit(self, round_: int, weights: bytes, timeout_s: float) -> tuple[bytes, int, dict[str, float]]:
        """The new weights, the example count and the metrics of one round, within `timeout_s`."""
        async with self._lock:
            if self.proc is not None and self.proc.returncode is not None:
                self.proc = None  # died since the last round: this round is missed, the next one starts afresh
                raise AgoraError("unavailable", "the trainer process ended", details={"reason": "trainer_died"})
            if self.proc is None:
                await self.start()
            try:
                async with asyncio.timeout(timeout_s):
                    await self._send(json.dumps({"op": "fit", "round": round_}).encode())
                    await self._send(weights)
                    answer = json.loads(await self._frame())
                    if not answer.get("ok"):
                        raise AgoraError(
                            "training_update_rejected",
                            f"the trainer failed: {answer.get('error')}",
                            details={"reason": "trainer_failed"},
                        )
                    update = await self._frame()
            except TimeoutError:
                await self.stop()
                raise AgoraError("timeout", f"round {round_}: no update within {timeout_s:.1f}s") from None
            except asyncio.CancelledError:
                self.kill()  # the owner gave up on this round: its late answer must never pass for the next one
                raise
            except (ConnectionError, BrokenPipeError):
                await self.stop()
                raise AgoraError(
                    "unavailable", "the trainer process ended", details={"reason": "trainer_died"}
                ) from None
            return update, int(answer["n"]), {str(k): float(v) for k, v in answer["metrics"].items()}

    def kill(self) -> None:
        """Kill at once (from a cancelled round, where nothing may be awaited); the next fit starts afresh."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(Exception):
                proc.stdin.close()
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)


__all__ = ["WarmTrainer", "sandbox_argv"]
