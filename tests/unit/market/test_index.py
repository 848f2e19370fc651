"""The MarketIndex conformance suite on the in-memory index (the NATS KV index will run the same suite)."""

from __future__ import annotations

import pytest

from agora.market.index import MemoryMarketIndex
from tests.unit.market.index_conformance import Hub, IndexConformance


class TestMemoryMarketIndex(IndexConformance):
    @pytest.fixture
    def hub(self) -> Hub:
        index = MemoryMarketIndex()

        async def hostile(key: str, raw: bytes) -> None:
            index._put(key, raw)

        return index, hostile
