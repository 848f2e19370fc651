"""Run the store conformance suite against every implementation: memory and a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agora.clock import ManualClock
from agora.store import MemoryStore, SqliteStore, Store
from tests.integration.store.conformance import StoreConformance


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> AsyncIterator[Store]:
    impl: Store = MemoryStore(clock) if request.param == "memory" else SqliteStore(tmp_path / "agora.db", clock)
    await impl.open()
    try:
        yield impl
    finally:
        await impl.close()


class TestStoreConformance(StoreConformance):
    pass
