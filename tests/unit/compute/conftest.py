from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agora.transport import MemoryNetwork
from tests.unit.compute.harness import Provider, Requester, make_provider, make_requester


@pytest.fixture
async def net() -> MemoryNetwork:
    return MemoryNetwork()


@pytest.fixture
async def provider(net: MemoryNetwork, tmp_path: Path) -> AsyncIterator[Provider]:
    p = await make_provider(net, tmp_path / "provider")
    yield p
    await p.manager.stop()
    await p.runtime.transport.close()
    await p.store.close()


@pytest.fixture
async def requester(net: MemoryNetwork, tmp_path: Path) -> AsyncIterator[Requester]:
    r = await make_requester(net, tmp_path / "requester")
    yield r
    await r.runner.stop()
    await r.runtime.transport.close()
    await r.store.close()
