"""What only the NATS transport has: hubs that restart, allowlists, clusters, JetStream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.transport import (
    ClusterConfig,
    ConnectionState,
    HubProcess,
    NatsTransport,
    ReconnectPolicy,
    reachability_check,
    routes_for,
)
from agora.transport.reachability import HINT_AUTH, HINT_AUTH_NO_KEY, HINT_NOT_STARTED
from tests.integration.transport.conformance import DEADLINE, Collector, echo
from tests.integration.transport.conftest import HubFactory
from tests.support import free_port

FAST = ReconnectPolicy(min_wait=0.02, max_wait=0.2)
MakeNats = Callable[..., Awaitable[NatsTransport]]


@pytest.fixture
async def nats_node() -> AsyncIterator[MakeNats]:
    made: list[NatsTransport] = []

    async def make(urls: list[str], key: Keypair | None = None, **options: Any) -> NatsTransport:
        key = key or Keypair.generate()
        options.setdefault("keypair", key)
        t = NatsTransport(key.did, urls, reconnect=FAST, **options)
        made.append(t)
        await t.start()
        return t

    yield make
    for t in made:
        await t.close()


async def request_until_ok(t: NatsTransport, did: str, data: bytes) -> bytes:
    """Retry while the network heals (bounded by DEADLINE); the last error is raised."""
    async with asyncio.timeout(DEADLINE):
        while True:
            try:
                return await t.request(did, data, timeout=0.5)
            except AgoraError as exc:
                if exc.code not in ("timeout", "peer_unreachable", "hub_unreachable"):
                    raise
                await asyncio.sleep(0.02)


async def test_survives_a_hub_restart(hub: HubProcess, nats_node: MakeNats) -> None:
    server, client = await nats_node([hub.url]), await nats_node([hub.url])
    states: list[ConnectionState] = []
    reconnected = asyncio.Event()

    def watch(state: ConnectionState) -> None:
        states.append(state)
        if state is ConnectionState.RECONNECTED:
            reconnected.set()

    client.on_state_change(watch)
    await server.serve(echo)
    news = Collector()
    await server.subscribe("agora.news", news)
    assert await client.request(server.local_did, b"before", timeout=DEADLINE) == b"echo:before"
    port = hub.port

    await hub.restart()
    assert hub.port == port, "a restarted hub must come back on the same port"
    assert await request_until_ok(client, server.local_did, b"after") == b"echo:after"
    await asyncio.wait_for(reconnected.wait(), DEADLINE)
    assert states[:2] == [ConnectionState.DISCONNECTED, ConnectionState.RECONNECTED]
    # the topic subscription came back too, without anyone re-subscribing
    async with asyncio.timeout(DEADLINE):
        while not news.items:
            await client.publish("agora.news", b"still there")
            await asyncio.sleep(0.05)
    assert news.items[0] == b"still there"


async def test_start_without_a_hub_fails_with_a_hint() -> None:
    key = Keypair.generate()
    t = NatsTransport(key.did, [f"nats://127.0.0.1:{free_port()}"], connect_deadline=1.0)
    with pytest.raises(AgoraError) as info:
        await t.start()
    assert info.value.code == "hub_unreachable"
    assert info.value.hint == HINT_NOT_STARTED
    with pytest.raises(AgoraError) as closed:
        await t.send(key.did, b"x")
    assert closed.value.code == "transport_closed"


async def test_allowlist_lets_listed_dids_in_and_refuses_others(hub_factory: HubFactory, nats_node: MakeNats) -> None:
    allowed, other = Keypair.generate(), Keypair.generate()
    hub = await hub_factory(allowed_dids=(allowed.did,))

    node = await nats_node([hub.url], allowed)
    await node.serve(echo)
    assert await node.request(allowed.did, b"me", timeout=DEADLINE) == b"echo:me"

    # connect_deadline is long: a refused key must fail at once, not retry until the deadline
    intruder = NatsTransport(other.did, [hub.url], keypair=other, connect_deadline=60.0)
    async with asyncio.timeout(DEADLINE):
        with pytest.raises(AgoraError) as info:
            await intruder.start()
    assert info.value.code == "hub_auth_failed"
    assert other.did in info.value.message

    anonymous = NatsTransport(other.did, [hub.url], connect_deadline=60.0)
    async with asyncio.timeout(DEADLINE):
        with pytest.raises(AgoraError) as info:
            await anonymous.start()
    assert info.value.code == "hub_auth_failed"

    ok, _detail, hint = await reachability_check(hub.url, keypair=other)
    assert (ok, hint) == (False, HINT_AUTH)
    ok, _detail, hint = await reachability_check(hub.url)
    assert (ok, hint) == (False, HINT_AUTH_NO_KEY)
    ok, detail, hint = await reachability_check(hub.url, keypair=allowed)
    assert ok and hint == "" and "connected" in detail


async def test_nodes_on_two_clustered_hubs_reach_each_other(hub_factory: HubFactory, nats_node: MakeNats) -> None:
    ports = [free_port(), free_port()]
    routes = routes_for([f"nats://127.0.0.1:{p}" for p in ports])
    hub_a = await hub_factory(cluster=ClusterConfig(name="c1", port=ports[0], routes=routes))
    hub_b = await hub_factory(cluster=ClusterConfig(name="c1", port=ports[1], routes=routes))
    on_a, on_b = await nats_node([hub_a.url]), await nats_node([hub_b.url])
    await on_b.serve(echo)
    assert await request_until_ok(on_a, on_b.local_did, b"across") == b"echo:across"

    got = Collector()
    await on_a.subscribe("agora.cluster", got)
    async with asyncio.timeout(DEADLINE):
        while not got.items:
            await on_b.publish("agora.cluster", b"hi from b")
            await asyncio.sleep(0.05)
    assert got.items[0] == b"hi from b"


async def test_jetstream_is_enabled_with_its_store_under_home(hub: HubProcess, nats_node: MakeNats) -> None:
    node = await nats_node([hub.url])
    js = node.nats_client.jetstream()
    info = await js.account_info()
    assert info.limits is not None
    await js.add_stream(name="AGORA_TEST", subjects=["agora.jstest"])
    ack = await js.publish("agora.jstest", b"kept")
    assert ack.stream == "AGORA_TEST"
    assert (hub.home / "jetstream").is_dir()


async def test_hub_max_payload_below_node_limit_is_message_too_large(
    hub_factory: HubFactory, nats_node: MakeNats
) -> None:
    hub = await hub_factory(max_payload=2000)
    a, b = await nats_node([hub.url]), await nats_node([hub.url])
    await b.serve(echo)
    with pytest.raises(AgoraError) as info:
        await a.request(b.local_did, b"x" * 3000, timeout=DEADLINE)
    assert info.value.code == "message_too_large"
    assert await a.request(b.local_did, b"x" * 100, timeout=DEADLINE) == b"echo:" + b"x" * 100


async def test_a_second_server_in_the_list_takes_over(hub_factory: HubFactory, nats_node: MakeNats) -> None:
    ports = [free_port(), free_port()]
    routes = routes_for([f"nats://127.0.0.1:{p}" for p in ports])
    hub_a = await hub_factory(cluster=ClusterConfig(name="c2", port=ports[0], routes=routes))
    hub_b = await hub_factory(cluster=ClusterConfig(name="c2", port=ports[1], routes=routes))
    server = await nats_node([hub_a.url, hub_b.url])
    client = await nats_node([hub_a.url, hub_b.url])
    await server.serve(echo)
    assert await request_until_ok(client, server.local_did, b"1") == b"echo:1"
    connected = client.nats_client.connected_url
    assert connected is not None
    doomed = hub_a if connected.port == hub_a.port else hub_b
    await doomed.stop()
    assert await request_until_ok(client, server.local_did, b"2") == b"echo:2"
    assert client.nats_client.connected_url.port != doomed.port


def test_constructor_rejects_bad_settings() -> None:
    key = Keypair.generate()
    cases: list[tuple[str, dict[str, Any]]] = [
        ("config_invalid", {"servers": []}),
        ("config_invalid", {"servers": "nats://127.0.0.1:4222"}),
        ("config_invalid", {"servers": ["http://127.0.0.1:4222"]}),
        ("config_invalid", {"servers": ["nats://h:1"], "keypair": Keypair.generate()}),
        ("config_invalid", {"servers": ["nats://h:1"], "max_message_bytes": 0}),
    ]
    for code, kwargs in cases:
        servers = kwargs.pop("servers")
        with pytest.raises(AgoraError) as info:
            NatsTransport(key.did, servers, **kwargs)
        assert info.value.code == code, kwargs
    with pytest.raises(AgoraError) as info:
        NatsTransport("did:key:bad.did", ["nats://127.0.0.1:4222"])
    assert info.value.code == "did_invalid"
