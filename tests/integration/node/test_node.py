"""A hub and nodes over a real nats-server: discovery, signed pings, events, leave, self-test hints."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest

from agora.actor import AdmissionSettings
from agora.clock import SYSTEM_CLOCK
from agora.daemon.main import build_config, parse_args
from agora.discovery import Update
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.node import HubSettings, Node, NodeConfig
from agora.store import MemoryStore
from agora.store.interfaces import Event, JSONDict
from agora.transport import MemoryNetwork, MemoryTransport
from agora.ucan import delegate
from tests.integration.node.conftest import NodeFactory
from tests.support import free_port


async def until(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_a_long_ping_twice_in_a_row_is_paced_by_the_targets_rate_limit(make_node: NodeFactory) -> None:
    """`agora node ping -c 100` twice in a row used to hit the target's public-call bucket (burst 100, 20/s)
    and fail `rate_limited`: a refusal now says when a token is back, and ping waits that long. A small
    bucket here, so the second round is refused (and paced) within a few pings."""
    tight = AdmissionSettings(public_rate=50.0, public_burst=5.0)
    hub = await make_node("hub", hub=True)
    assert hub.hub is not None
    a = await make_node("a", hubs=[hub.hub.url])
    b = await make_node("b", hubs=[hub.hub.url], admission=tight)
    await until(lambda: b.did in {p["did"] for p in a.peer_table.snapshot()}, "a to see b")
    first = await a.ping(b.did, count=20)
    second = await a.ping(b.did, count=20)
    assert len(first) == len(second) == 20 and all(r > 0 for r in first + second)
    assert b.runtime is not None
    assert b.runtime.health()["limits"]["public_rate"]["refused"] > 0  # it was paced, not let through


async def test_nodes_find_each_other_and_ping(make_node: NodeFactory) -> None:
    hub = await make_node("hub", hub=True)
    assert hub.hub is not None
    a = await make_node("a", hubs=[hub.hub.url])
    b = await make_node("b", hubs=[hub.hub.url])
    for n in (hub, a, b):
        await until(lambda n=n: len(n.peer_table.alive()) == 2, f"{n.did} to see 2 peers")
    rtts = await a.ping(b.did, count=3)
    assert len(rtts) == 3 and all(r > 0 for r in rtts)
    assert a.runtime is not None
    info = await a.runtime.call(b.did, "/agora/node/info", {})
    assert info["did"] == b.did and any(c["command"] == "/agora/node/ping" for c in info["commands"])
    peers = await a.runtime.call(hub.did, "/agora/node/peers", {})
    assert {p["did"] for p in peers["peers"]} == {a.did, b.did}
    events = await a.store.events(kind="peer.joined")
    assert {e.subject for e in events} >= {b.did}
    body, _ = a.metrics.render()
    assert b"agora_rpc_latency_seconds" in body


async def test_leave_is_seen_and_silent_peers_are_lost(make_node: NodeFactory) -> None:
    hub = await make_node("hub", hub=True)
    assert hub.hub is not None
    a = await make_node("a", hubs=[hub.hub.url])
    b = await make_node("b", hubs=[hub.hub.url])
    await until(lambda: len(a.peer_table.alive()) == 2, "a to see 2 peers")
    await b.stop()
    b.started_at = None
    await until(lambda: a.peer_table.get(b.did) is not None and a.peer_table.get(b.did).status == "left", "leave")  # type: ignore[union-attr]
    # a node that dies without a word is marked lost after lost_after
    assert a.discovery is not None
    await a.supervisor.stop()  # heartbeats stop ...
    await a.discovery.stop(announce_leave=False)  # ... and no leave is said
    await until(lambda: hub.peer_table.get(a.did).status == "lost", "a to be marked lost", timeout=5)  # type: ignore[union-attr]
    assert any(e.subject == a.did for e in await hub.store.events(kind="peer.lost"))


async def test_a_crashed_discovery_loop_is_restarted_by_the_supervisor(make_node: NodeFactory) -> None:
    hub = await make_node("hub", hub=True)
    assert hub.discovery is not None
    due = hub.peer_table.due
    crashes = 0

    def crash_once() -> Update:
        nonlocal crashes
        if crashes == 0:
            crashes += 1
            raise RuntimeError("sweep blew up")
        return due()

    hub.peer_table.due = crash_once  # type: ignore[method-assign]
    await until(lambda: hub.supervisor.status()["discovery"]["restarts"] == 1, "a restart")
    await until(lambda: hub.supervisor.status()["discovery"]["status"] == "running", "running again")
    events = await hub.store.events(kind="child.restarted")
    assert [e.subject for e in events] == ["discovery"]
    failed = await hub.store.events(kind="child.failed")
    assert "sweep blew up" in failed[0].data["reason"]


async def test_protected_behavior_needs_the_nodes_delegation(make_node: NodeFactory) -> None:
    hub = await make_node("hub", hub=True)
    assert hub.hub is not None and hub.runtime is not None
    a = await make_node("a", hubs=[hub.hub.url])
    assert a.runtime is not None
    with pytest.raises(AgoraError) as err:
        await a.runtime.call(hub.did, "/agora/node/nothing", {})
    assert err.value.code == "unknown_command"
    # a delegation issued by someone who is not the hub gives no authority over the hub
    stranger = Keypair.generate()
    dlg = delegate(stranger, aud=a.did, sub=hub.did, cmd="/agora/node", exp=None)
    with pytest.raises(AgoraError) as err:
        await a.runtime.call(hub.did, "/agora/node/info", {}, proofs=[dlg])
    assert err.value.code == "ucan_invalid_claim"


async def test_self_test_names_the_problem_when_no_hub_answers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"nats://127.0.0.1:{free_port()}"
    node = Node(NodeConfig(home=tmp_path / "n", hubs=[url], api_port=0))
    with pytest.raises(AgoraError) as err:
        await asyncio.wait_for(node.start(), 10)
    assert err.value.code == "hub_unreachable"
    assert "agora hub up" in err.value.hint or "hub" in err.value.hint.lower()
    assert node.hub_check["ok"] is False
    await node.store.close()


async def test_allowlisted_hub_refuses_strangers(make_node: NodeFactory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    friend = Keypair.generate()
    from agora.identity import create_keystore

    create_keystore(tmp_path / "friend" / "identity.json", keypair=friend)
    hub_home = tmp_path / "hub"
    hub_key = Keypair.generate()
    create_keystore(hub_home / "identity.json", keypair=hub_key)
    hub = Node(
        NodeConfig(home=hub_home, hub=HubSettings(port=0, allow=[friend.did]), api_port=0, announce_interval=0.2)
    )
    await hub.start()
    try:
        assert hub.hub is not None
        ok = await make_node("friend", hubs=[hub.hub.url])
        assert ok.did == friend.did
        stranger = Node(NodeConfig(home=tmp_path / "stranger", hubs=[hub.hub.url], api_port=0))
        with pytest.raises(AgoraError) as err:
            await asyncio.wait_for(stranger.start(), 15)
        assert err.value.code == "hub_auth_failed"
        await stranger.store.close()
    finally:
        await hub.stop()


async def test_one_node_per_home(make_node: NodeFactory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    hub = await make_node("hub", hub=True)
    assert hub.hub is not None
    twin = Node(NodeConfig(home=tmp_path / "hub", hubs=[hub.hub.url], api_port=0))
    with pytest.raises(AgoraError) as err:
        await twin.start()
    assert err.value.code == "home_in_use" and str(os.getpid()) in err.value.message
    assert twin.transport is None  # refused before joining anything
    assert (await hub.runtime.call(hub.did, "/agora/node/ping", {}))["pong"] is True  # type: ignore[union-attr]


async def test_losing_and_regaining_the_hub_is_recorded(make_node: NodeFactory) -> None:
    hub_node = await make_node("hub", hub=True)
    assert hub_node.hub is not None
    a = await make_node("a", hubs=[hub_node.hub.url])
    await hub_node.hub.restart()
    await until(lambda: a.transport is not None and a.transport.state.value in ("connected", "reconnected"), "link")

    async def kinds(node: Node) -> set[str]:
        return {e.kind for e in await node.store.events(limit=1000)}

    for _ in range(500):
        if {"hub.disconnected", "hub.reconnected"} <= await kinds(a) and "hub.reconnected" in await kinds(hub_node):
            break
        await asyncio.sleep(0.02)
    assert {"hub.disconnected", "hub.reconnected"} <= await kinds(a)
    # both ends are back (the hub node dials its own hub too): the network works again
    assert (await a.runtime.call(hub_node.did, "/agora/node/ping", {}))["pong"] is True  # type: ignore[union-attr]


def test_config_validation() -> None:
    with pytest.raises(AgoraError) as err:
        NodeConfig(hubs=["http://x"]).validate()
    assert err.value.code == "config_invalid"
    with pytest.raises(AgoraError) as err:
        NodeConfig(hubs=["nats://127.0.0.1:4222"], api_host="0.0.0.0").validate()
    assert err.value.code == "config_invalid" and "loopback" in err.value.message
    with pytest.raises(AgoraError):
        NodeConfig().validate()  # no hub to dial and not a hub


class _SlowEventStore(MemoryStore):
    """Writes `hub.*` events slowly (many loop turns, no wall-clock wait) and remembers what it wrote."""

    def __init__(self) -> None:
        super().__init__(SYSTEM_CLOCK)
        self.written: list[str] = []

    async def append_event(self, kind: str, subject: str, data: JSONDict) -> Event:
        if kind.startswith("hub."):
            for _ in range(2000):
                await asyncio.sleep(0)
        event = await super().append_event(kind, subject, data)
        self.written.append(kind)
        return event


async def test_the_node_owns_its_background_event_writes(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Events written in the background (a link change) are in the log before the node says it stopped."""
    monkeypatch.setenv("AGORA_BENCHMARK", "off")
    net, kp, store = MemoryNetwork(), Keypair.generate(), _SlowEventStore()
    config = NodeConfig(home=tmp_path / "n", hubs=["nats://127.0.0.1:4222"], api_port=0, announce_interval=0.2)
    node = Node(config, keypair=kp, transport=MemoryTransport(net, kp.did), store=store)
    await node.start()
    net.disconnect(kp.did)  # the link drops and comes back: the node records both in the background
    net.reconnect(kp.did)
    await node.stop()
    assert store.written[-3:] == ["hub.disconnected", "hub.reconnected", "node.stopped"]


def test_pinned_peers_come_from_the_config_and_the_daemon_flag(tmp_path) -> None:  # type: ignore[no-untyped-def]
    a, b = Keypair.generate().did, Keypair.generate().did
    config = build_config(parse_args(["--hub-url", "nats://127.0.0.1:4222", "--pin-peer", a, "--pin-peer", b]))
    assert config.pinned_peers == [a, b]
    config.home = tmp_path / "n"
    assert Node(config).peer_table.pinned == {a, b}
