"""The transport contract against every implementation: memory and NATS (a real nats-server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from agora.identity import Keypair
from agora.transport import HubProcess, MemoryNetwork, MemoryTransport, NatsTransport, Transport
from agora.transport.subjects import PUBLIC_TOPICS
from tests.integration.transport.conformance import TEST_TOPICS, MakeTransport, TransportConformance
from tests.integration.transport.conftest import HubFactory


class TestMemoryTransport(TransportConformance):
    @pytest.fixture
    async def make_transport(self) -> AsyncIterator[MakeTransport]:
        network = MemoryNetwork()
        made: list[Transport] = []

        async def make(**options: Any) -> Transport:
            t = MemoryTransport(network, Keypair.generate().did, **options)
            made.append(t)
            await t.start()
            return t

        yield make
        for t in made:
            await t.close()


class TestNatsTransport(TransportConformance):
    @pytest.fixture
    async def make_transport(self, hub: HubProcess) -> AsyncIterator[MakeTransport]:
        made: list[Transport] = []

        async def make(**options: Any) -> Transport:
            key = Keypair.generate()
            t = NatsTransport(key.did, [hub.url], keypair=key, **options)
            made.append(t)
            await t.start()
            return t

        yield make
        for t in made:
            await t.close()


class TestNatsTransportOnAllowlistedHub(TransportConformance):
    """The same contract where every node is confined to its own subjects (per-user permissions)."""

    @pytest.fixture
    async def make_transport(self, hub_factory: HubFactory) -> AsyncIterator[MakeTransport]:
        keys = [Keypair.generate() for _ in range(6)]
        hub = await hub_factory(
            allowed_dids=tuple(k.did for k in keys), topics=(*PUBLIC_TOPICS, *TEST_TOPICS), jetstream=False
        )
        made: list[Transport] = []

        async def make(**options: Any) -> Transport:
            key = keys[len(made)]  # an IndexError means a test needs more nodes than allowlisted here
            t = NatsTransport(key.did, [hub.url], keypair=key, **options)
            made.append(t)
            await t.start()
            return t

        yield make
        for t in made:
            await t.close()
