"""The transport contract against every implementation: memory and NATS (a real nats-server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from agora.identity import Keypair
from agora.transport import HubProcess, MemoryNetwork, MemoryTransport, NatsTransport, Transport
from tests.integration.transport.conformance import MakeTransport, TransportConformance


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
