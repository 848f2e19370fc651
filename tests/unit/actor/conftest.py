from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from agora.actor import Actor, CallContext, Runtime, behavior
from agora.clock import ManualClock
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.transport import MemoryNetwork, MemoryTransport


class Counter:
    """A MetricsSink that remembers what it was told."""

    def __init__(self) -> None:
        self.rejects: dict[str, int] = {}
        self.inbound: dict[str, int] = {}
        self.outbound: dict[str, int] = {}
        self.rpcs: list[str] = []

    def count_in(self, kind: str) -> None:
        self.inbound[kind] = self.inbound.get(kind, 0) + 1

    def count_out(self, kind: str) -> None:
        self.outbound[kind] = self.outbound.get(kind, 0) + 1

    def count_reject(self, code: str) -> None:
        self.rejects[code] = self.rejects.get(code, 0) + 1

    def observe_rpc(self, command: str, seconds: float) -> None:
        self.rpcs.append(command)


class Echo(Actor):
    def __init__(self) -> None:
        self.calls = 0

    @behavior("/agora/test/echo", public=True)
    async def echo(self, ctx: CallContext) -> Any:
        self.calls += 1
        return {"args": ctx.args, "from": ctx.invoker}

    @behavior("/agora/test/secret")
    async def secret(self, ctx: CallContext) -> Any:
        self.calls += 1
        return {"secret": 42, "amount": ctx.args.get("amount")}

    @behavior("/agora/test/boom", public=True)
    async def boom(self, ctx: CallContext) -> Any:
        raise RuntimeError("kaboom")

    @behavior("/agora/test/refuse", public=True)
    async def refuse(self, ctx: CallContext) -> Any:
        raise AgoraError("not_found", "nothing here")

    @behavior("/agora/test/unsendable", public=True)
    async def unsendable(self, ctx: CallContext) -> Any:
        return {"x": object()}


@dataclass
class Pair:
    server: Runtime
    client: Runtime
    server_key: Keypair
    client_key: Keypair
    metrics: Counter
    actor: Echo
    clock: ManualClock


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    net = MemoryNetwork()
    clock = ManualClock(start=1_800_000_000)
    sk, ck = Keypair.generate(), Keypair.generate()
    st, ct = MemoryTransport(net, sk.did), MemoryTransport(net, ck.did)
    await st.start()
    await ct.start()
    metrics = Counter()
    server = Runtime(sk, st, clock=clock, metrics=metrics)
    actor = Echo()
    server.register(actor)
    await server.start()
    client = Runtime(ck, ct, clock=clock)
    await client.start()
    yield Pair(server, client, sk, ck, metrics, actor, clock)
    await ct.close()
    await st.close()
