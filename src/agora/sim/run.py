"""Running a scenario: `simulate` returns the report document (a plain, JSON-ready dict)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from agora.sim.scenario import Scenario
from agora.sim.world import FASTER_PATH, REAL_CODE, World


async def simulate_async(scenario: Scenario, *, progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    world = World(scenario, progress=progress)
    await world.run()
    real, faster = dict(REAL_CODE), dict(FASTER_PATH)
    if not scenario.compute:  # no compute market: only the ledger's part of it ran
        real = {k: v for k, v in real.items() if k in ("ledger", "escrow")}
        faster = {}
    extra: dict[str, Any] = {}
    if scenario.inference is not None:
        from agora.sim import inference

        real |= inference.REAL_CODE
        faster |= inference.FASTER_PATH
        extra["payments"] = {"inference": scenario.inference.payment}
    if scenario.fl is not None:
        from agora.sim import fl

        real |= fl.REAL_CODE
        faster |= fl.FASTER_PATH
    return extra | {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "payment": scenario.payment,
        "duration_s": scenario.duration_s,
        "config": _plain(scenario.raw),
        "real_code": real,
        "faster_path": faster,
        "metrics": world.metrics.summary(),
        "series": world.metrics.report_series(),
    }


def simulate(scenario: Scenario, *, progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Run `scenario` to its end (a fresh event loop) and return its report document."""
    return asyncio.run(simulate_async(scenario, progress=progress))


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return v


__all__ = ["simulate", "simulate_async"]
