"""A provider killed with SIGKILL between its commit and the requester's start (issue 8, bad input), with real
processes on real NATS: two selling providers are `agora.daemon` processes on a real hub (nats-server), the
requester is a node in this process (so the test can hold it right after the commit: an event it waits
for, no sleep). The requester places the unit again on the other provider and completes, with the killed
one excluded and no retry attempt spent; the killed provider, started again on its home, publishes an ad
with its full free capacity (its reservations were in memory: none is left behind); nothing is
double-booked on the provider that ran the job. Two variants: the start reaches the dead provider
(`peer_unreachable`: no one serves its inbox) or the restarted one (`reservation_not_found`). The memory
transport version: tests/unit/orchestrator/test_lost_commit.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agora.market import MarketIndex
from agora.node import Node
from agora.node.compute import compute_of
from agora.orchestrator.placement import PlacementRound
from agora.wire.market import CapacityAd
from tests.integration.compute.test_remote_jobs import wasm_job
from tests.integration.node.conftest import NodeFactory, fund, make_node  # noqa: F401 (fixture)

READY_S = 60.0


@dataclass
class Daemon:
    home: Path
    hub_url: str
    popen: subprocess.Popen[bytes] | None = None
    did: str = ""

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "daemon.out").write_text("")
        env = {k: v for k, v in os.environ.items() if k not in ("AGORA_API", "AGORA_HOME")}
        env["AGORA_BENCHMARK"] = "off"
        args = ["--home", str(self.home), "--api-port", "0", "--hub-url", self.hub_url, "--sell"]
        with open(self.home / "daemon.out", "ab") as stdout, open(self.home / "daemon.log", "ab") as stderr:
            return subprocess.Popen(
                [sys.executable, "-m", "agora.daemon", *args],
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=env,
                start_new_session=True,
            )

    async def start(self) -> None:
        """`python -m agora.daemon --sell` on this home, as the devnet starts a node; returns once ready."""
        self.popen = await asyncio.to_thread(self._spawn)
        out = self.home / "daemon.out"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_S
        while loop.time() < deadline:
            for line in out.read_text().splitlines():
                if line.startswith("{") and json.loads(line).get("event") == "ready":
                    self.did = str(json.loads(line)["did"])
                    return
            if self.popen.poll() is not None:
                raise AssertionError(f"{self.home.name} exited: {(self.home / 'daemon.log').read_text()[-2000:]}")
            await asyncio.sleep(0.05)
        raise AssertionError(f"{self.home.name} was not ready in {READY_S} s")

    async def kill9(self) -> None:
        assert self.popen is not None
        os.kill(self.popen.pid, signal.SIGKILL)
        await asyncio.to_thread(self.popen.wait, 20)

    async def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            await asyncio.to_thread(self.popen.wait, 20)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            await asyncio.to_thread(self.popen.wait, 10)


@pytest.fixture
async def market(make_node: NodeFactory, tmp_path: Path) -> AsyncIterator[tuple[Node, list[Daemon]]]:  # noqa: F811
    hub = await make_node("hub", hub=True)
    assert hub.hub is not None
    daemons = [Daemon(tmp_path / f"provider-{i}", hub.hub.url) for i in (1, 2)]
    try:
        await asyncio.gather(*(d.start() for d in daemons))
        requester = await make_node("requester", hubs=[hub.hub.url])
        await fund(hub, requester.did)
        yield requester, daemons
    finally:
        await asyncio.gather(*(d.stop() for d in daemons))


async def ad_of(index: MarketIndex, did: str, *, after_seq: int = 0, timeout: float = 30.0) -> CapacityAd:
    """The provider's ad in the index, once one newer than `after_seq` is there (bounded wait)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        ad = await index.get(did)
        if ad is not None and ad.seq > after_seq:
            return ad
        await asyncio.sleep(0.05)
    raise AssertionError(f"no ad of {did} after seq {after_seq} in {timeout} s")


def held(ad: CapacityAd) -> tuple[int, int, int]:
    """The quantities a reservation takes from an ad's free capacity (free disk is the filesystem's own, which
    other programs on this machine change)."""
    return ad.free.cpu_millis, ad.free.memory_bytes, ad.free.gpu_count


async def full_again(index: MarketIndex, did: str, first: CapacityAd) -> CapacityAd:
    """The provider's first ad after `first` that shows as much free as `first` did (or the last one read, after
    a bounded number of newer ads: then the caller's assertion says what is held)."""
    ad = await ad_of(index, did, after_seq=first.seq)
    for _ in range(20):
        if held(ad) == held(first):
            break
        ad = await ad_of(index, did, after_seq=ad.seq)
    return ad


@pytest.mark.parametrize("start_reaches", ["the_dead_provider", "the_restarted_provider"])
async def test_a_provider_killed_between_commit_and_start_is_replaced(
    market: tuple[Node, list[Daemon]], hello_wasm: Path, monkeypatch: pytest.MonkeyPatch, start_reaches: str
) -> None:
    requester, daemons = market
    c = compute_of(requester)
    index, placer = c.market_index, c.runner.placer
    assert index is not None and placer is not None
    before = {d.did: await ad_of(index, d.did) for d in daemons}  # each sells its machine, nothing reserved

    committed, go = asyncio.Event(), asyncio.Event()
    winner: list[str] = []
    real = placer.place

    async def place(*args: Any, **kw: Any) -> PlacementRound:  # hold the requester right after the 1st commit
        rnd = await real(*args, **kw)
        if rnd.placed is not None and not committed.is_set():
            winner.append(rnd.placed.provider)
            committed.set()
            await asyncio.wait_for(go.wait(), 60)
        return rnd

    monkeypatch.setattr(placer, "place", place)
    sub = await c.runner.submit(wasm_job(hello_wasm))  # no --node, the default retry policy (no retries)
    await asyncio.wait_for(committed.wait(), 60)
    [victim] = [d for d in daemons if d.did == winner[0]]
    [other] = [d for d in daemons if d is not victim]
    await victim.kill9()  # right after its commit: the reservation it held dies with it
    if start_reaches == "the_dead_provider":
        go.set()
    await victim.start()  # started again on its home: same keys, same store, no reservation
    assert victim.did == winner[0]
    # its full free capacity in its ads: no phantom reservation (the loop skips an ad the killed process may
    # have published between its commit and its death)
    assert held(await full_again(index, victim.did, before[victim.did])) == held(before[victim.did])
    go.set()

    doc = await c.runner.wait(sub["id"], 120)
    assert doc["state"] == "completed", json.dumps(doc, indent=1)[:3000]
    [unit] = doc["units"]
    assert unit["node"] == other.did and unit["excluded"] == [victim.did]
    assert unit["attempts"] == 1  # the task never ran on the killed provider: no retry was spent
    [lost] = [h for h in unit["history"] if h["state"] == "waiting_retry"]
    code = "peer_unreachable" if start_reaches == "the_dead_provider" else "reservation_not_found"
    assert lost["cause"].startswith(f"{code}:") and f"the commit on {victim.did} is lost" in lost["cause"]
    assert unit["placements"][-1]["provider"] == other.did and unit["placements"][-1]["excluded"] == [victim.did]
    # nothing double-booked: once the job ended, the provider that ran it advertises its full capacity again
    assert held(await full_again(index, other.did, before[other.did])) == held(before[other.did])
