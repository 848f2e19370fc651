"""Crash-style: the node process dies (SIGKILL) during or right after a state-changing invocation; the
restarted node, over the same SQLite file, refuses the same bytes and never runs the handler again."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from agora.actor import Actor, CallContext, Runtime, StoreReplayJournal, behavior
from agora.clock import SYSTEM_CLOCK
from agora.identity import Keypair
from agora.store import SqliteStore
from agora.transport import MemoryNetwork, MemoryTransport
from agora.ucan import delegate
from agora.wire import Receipt

CHILD = Path(__file__).with_name("crash_child.py")


class Pay(Actor):
    def __init__(self) -> None:
        self.runs = 0

    @behavior("/agora/test/pay")
    async def pay(self, ctx: CallContext) -> Any:
        self.runs += 1
        return {"paid": True}


async def _line(stream: asyncio.StreamReader) -> str:
    return (await asyncio.wait_for(stream.readline(), 60)).decode().strip()


@pytest.mark.parametrize("mode", ["hang", "finish"])
async def test_a_crash_never_lets_an_invocation_run_twice(tmp_path: Path, mode: str) -> None:
    seed = os.urandom(32)
    node, caller = Keypair.from_seed(seed), Keypair.generate()
    net = MemoryNetwork()
    client = Runtime(caller, MemoryTransport(net, caller.did))
    grant = delegate(node, aud=caller.did, sub=node.did, cmd="/agora/test", exp=int(SYSTEM_CLOCK.now()) + 3600)
    data = client.build_request(node.did, "/agora/test/pay", {"amount": 5}, proofs=[grant]).encode()
    request_file = tmp_path / "request.bin"
    request_file.write_bytes(data)
    db = tmp_path / "agora.db"

    child = await asyncio.create_subprocess_exec(
        sys.executable, str(CHILD), str(db), seed.hex(), str(request_file), mode, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        assert await _line(child.stdout) == "running"
        if mode == "hang":
            child.kill()  # SIGKILL while the handler runs
        else:
            assert await _line(child.stdout) == "done"
        assert await asyncio.wait_for(child.wait(), 60) == -9
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()

    store = SqliteStore(db, SYSTEM_CLOCK)
    await store.open()
    try:
        transport = MemoryTransport(net, node.did)
        await transport.start()
        runtime = Runtime(node, transport, journal=StoreReplayJournal(store))
        pay = Pay()
        runtime.register(pay)
        await runtime.start()
        receipt = Receipt.decode(await runtime.handle(data), expected_issuer=node.did)
        assert receipt.error is not None and receipt.error.code == "ucan_replayed"
        assert pay.runs == 0
        fresh = client.build_request(node.did, "/agora/test/pay", {"amount": 5}, proofs=[grant]).encode()
        assert Receipt.decode(await runtime.handle(fresh)).is_ok and pay.runs == 1
        await transport.close()
    finally:
        await store.close()
