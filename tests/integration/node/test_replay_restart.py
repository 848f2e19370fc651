"""A node restarted over its home refuses a state-changing invocation it ran before, and says on /health
when a flood hits a shared admission limit (memory transport, the node's real SQLite store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agora.actor import Actor, AdmissionSettings, CallContext, Runtime, behavior
from agora.identity import Keypair
from agora.node import Node, NodeConfig
from agora.transport import MemoryNetwork, MemoryTransport
from agora.ucan import delegate, invoke
from agora.wire import Receipt, Request


class Pay(Actor):
    def __init__(self) -> None:
        self.runs = 0

    @behavior("/agora/test/pay")
    async def pay(self, ctx: CallContext) -> Any:
        self.runs += 1
        return {"paid": self.runs}


def _config(home: Path) -> NodeConfig:
    return NodeConfig(home=home, hubs=["nats://127.0.0.1:4222"])  # never dialled: the memory transport is used


async def _node(home: Path, key: Keypair, net: MemoryNetwork, **kw: Any) -> Node:
    node = Node(_config(home), keypair=key, transport=MemoryTransport(net, key.did), **kw)
    await node.start()
    return node


@pytest.fixture(autouse=True)
def _no_benchmark(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGORA_BENCHMARK", "off")


async def test_the_same_bytes_run_once_across_a_node_restart(tmp_path: Path) -> None:
    net, key, caller = MemoryNetwork(), Keypair.generate(), Keypair.generate()
    client_transport = MemoryTransport(net, caller.did)
    await client_transport.start()
    client = Runtime(caller, client_transport)
    node = await _node(tmp_path / "home", key, net)
    try:
        first = Pay()
        node.add_actor(first)
        grant = delegate(key, aud=caller.did, sub=key.did, cmd="/agora/test", exp=int(node.clock.now()) + 3600)
        request = client.build_request(key.did, "/agora/test/pay", {"amount": 5}, proofs=[grant])
        assert (await client.send_request(key.did, request)).is_ok and first.runs == 1
    finally:
        await node.stop()

    node = await _node(tmp_path / "home", key, net)  # same home, same database: a restart
    try:
        again = Pay()
        node.add_actor(again)
        receipt = await client.send_request(key.did, request)
        assert receipt.error is not None and receipt.error.code == "ucan_replayed"
        assert again.runs == 0
        fresh = client.build_request(key.did, "/agora/test/pay", {"amount": 5}, proofs=[grant])
        assert (await client.send_request(key.did, fresh)).is_ok and again.runs == 1
    finally:
        await node.stop()
        await client_transport.close()


async def test_health_is_degraded_with_the_reason_while_the_public_share_is_full(tmp_path: Path) -> None:
    net, key = MemoryNetwork(), Keypair.generate()
    small = AdmissionSettings(public_entries=5, public_per_issuer=2)
    node = await _node(tmp_path / "home", key, net, admission=small)
    try:
        assert node.health()["status"] == "ok" and node.health()["reasons"] == []
        assert node.runtime is not None
        codes = []
        for _ in range(8):
            stranger = Keypair.generate()
            now = int(node.clock.now())
            inv = invoke(
                stranger, sub=stranger.did, aud=key.did, cmd="/agora/node/ping", args={}, exp=now + 60, iat=now
            )
            receipt = Receipt.decode(await node.runtime.handle(Request(inv, ()).encode()))
            codes.append(receipt.error.code if receipt.error is not None else None)
        assert codes == [None] * 5 + ["ucan_replay_cache_full"] * 3
        health = node.health()
        assert health["status"] == "degraded"
        assert any("replay_share_full" in r and "public" in r for r in health["reasons"])
        assert health["limits"]["replay_share_full"]["refused"] == 3 and health["replay"]["public"] == 5
    finally:
        await node.stop()
