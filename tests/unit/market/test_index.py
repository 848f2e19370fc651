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


def test_both_indexes_read_through_the_one_reader() -> None:
    """Verification, dedupe, replay counting and watch fan-out live in IndexReader / IndexWatch only: neither
    index defines its own copy, so the conformance suite exercises the same code on both."""
    from agora.market.index import IndexReader, IndexWatch
    from agora.market.index_nats import NatsMarketIndex, _NatsWatch

    for cls in (MemoryMarketIndex, NatsMarketIndex):
        assert issubclass(cls, IndexReader)
        assert not {"publish", "ads", "get", "stats", "close", "_stored"} & set(vars(cls)), cls
    assert issubclass(_NatsWatch, IndexWatch)
    assert not {"__anext__", "aclose", "notify"} & set(vars(_NatsWatch))
