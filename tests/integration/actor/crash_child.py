"""A node process that is killed (SIGKILL) while or right after running a state-changing invocation.

Run by test_replay_crash.py: `python crash_child.py DB SEED_HEX REQUEST_FILE MODE`. It prints `running`
when the handler starts; in mode `hang` the handler never returns (the parent kills the process then), in
mode `finish` the process prints `done` after the receipt and kills itself without closing anything.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from agora.actor import Actor, CallContext, Runtime, StoreReplayJournal, behavior
from agora.clock import SYSTEM_CLOCK
from agora.identity import Keypair
from agora.store import SqliteStore
from agora.transport import MemoryNetwork, MemoryTransport


class Pay(Actor):
    def __init__(self, hang: bool) -> None:
        self.hang = hang

    @behavior("/agora/test/pay")
    async def pay(self, ctx: CallContext) -> Any:
        print("running", flush=True)
        if self.hang:
            await asyncio.Event().wait()  # the parent kills this process here
        return {"paid": True}


async def main(db: str, seed_hex: str, data: bytes, mode: str) -> None:
    store = SqliteStore(db, SYSTEM_CLOCK)
    await store.open()
    key = Keypair.from_seed(bytes.fromhex(seed_hex))
    runtime = Runtime(key, MemoryTransport(MemoryNetwork(), key.did), journal=StoreReplayJournal(store))
    runtime.register(Pay(hang=mode == "hang"))
    await runtime.handle(data)
    print("done", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # a crash: no close, no checkpoint


if __name__ == "__main__":
    db, seed_hex, request_file, mode = sys.argv[1:5]
    asyncio.run(main(db, seed_hex, Path(request_file).read_bytes(), mode))
