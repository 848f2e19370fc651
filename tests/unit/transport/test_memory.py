"""What only the memory transport has: simulated disconnects, flush, duplicate DIDs, no waiting."""

from __future__ import annotations

import asyncio

import pytest

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.transport import ConnectionState, MemoryNetwork, MemoryTransport


async def echo(data: bytes) -> bytes:
    return b"echo:" + data


async def _node(network: MemoryNetwork, **options: int) -> MemoryTransport:
    t = MemoryTransport(network, Keypair.generate().did, **options)
    await t.start()
    return t


async def test_disconnect_and_reconnect_are_observable() -> None:
    net = MemoryNetwork()
    a, b = await _node(net), await _node(net)
    await b.serve(echo)
    states: list[ConnectionState] = []
    b.on_state_change(states.append)

    net.disconnect(b.local_did)
    net.disconnect(b.local_did)  # no duplicate event
    assert not net.is_online(b.local_did)
    with pytest.raises(AgoraError) as info:
        await a.request(b.local_did, b"x", timeout=1.0)
    assert info.value.code == "peer_unreachable"
    with pytest.raises(AgoraError) as info:
        await b.send(a.local_did, b"x")
    assert info.value.code == "hub_unreachable" and info.value.retryable

    net.reconnect(b.local_did)
    assert await a.request(b.local_did, b"x", timeout=1.0) == b"echo:x"
    assert states == [ConnectionState.DISCONNECTED, ConnectionState.RECONNECTED]
    assert b.state is ConnectionState.RECONNECTED


async def test_no_reply_fails_at_once_without_waiting_the_timeout() -> None:
    net = MemoryNetwork()
    a, b = await _node(net), await _node(net)

    async def silent(data: bytes) -> None:
        return None

    await b.serve(silent)
    # A one-hour timeout: if the memory transport waited it out, pytest-timeout would fail the test.
    with pytest.raises(AgoraError) as info:
        await a.request(b.local_did, b"x", timeout=3600.0)
    assert info.value.code == "timeout"


async def test_flush_waits_for_deliveries_and_counts_drops() -> None:
    net = MemoryNetwork()
    a, b = await _node(net), await _node(net)
    got: list[bytes] = []

    async def inbox(data: bytes) -> None:
        await asyncio.sleep(0)
        got.append(data)

    async def on_topic(data: bytes) -> None:
        got.append(b"topic:" + data)

    await b.serve(inbox)
    await b.subscribe("agora.t", on_topic)
    for i in range(5):
        await a.send(b.local_did, bytes([i]))
    await a.publish("agora.t", b"p")
    await a.send(Keypair.generate().did, b"to nobody")
    await net.flush()
    assert sorted(got) == sorted([bytes([i]) for i in range(5)] + [b"topic:p"])
    assert net.dropped == 1


async def test_deliveries_start_in_call_order() -> None:
    net = MemoryNetwork()
    a, b = await _node(net), await _node(net)
    order: list[bytes] = []

    async def inbox(data: bytes) -> None:
        order.append(data)

    await b.serve(inbox)
    for i in range(20):
        await a.send(b.local_did, str(i).encode())
    await net.flush()
    assert order == [str(i).encode() for i in range(20)]


async def test_a_did_joins_a_network_once() -> None:
    net = MemoryNetwork()
    a = await _node(net)
    twin = MemoryTransport(net, a.local_did)
    with pytest.raises(AgoraError) as info:
        await twin.start()
    assert info.value.code == "already_exists"
    await a.close()
    await twin.start()  # the DID is free again once the first one left
    assert net.dids == [a.local_did]


def test_constructor_checks() -> None:
    net = MemoryNetwork()
    with pytest.raises(AgoraError) as info:
        MemoryTransport(net, "not a did")
    assert info.value.code == "did_invalid"
    with pytest.raises(AgoraError) as info:
        MemoryTransport(net, Keypair.generate().did, max_message_bytes=0)
    assert info.value.code == "config_invalid"


async def test_operations_before_start_are_transport_closed() -> None:
    t = MemoryTransport(MemoryNetwork(), Keypair.generate().did)
    with pytest.raises(AgoraError) as info:
        await t.serve(echo)
    assert info.value.code == "transport_closed"
    with pytest.raises(AgoraError) as info:
        await t.request(Keypair.generate().did, b"x", timeout=1.0)
    assert info.value.code == "transport_closed"
