"""The Settlement conformance suite on InternalLedgerSettlement over the memory and SQLite journals
(over JetStream: tests/integration/ledger)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agora.ledger import JournalStore, MemoryJournalStore, SqliteJournalStore
from tests.unit.ledger.settlement_conformance import OpenStore, SettlementConformance


class TestOnMemoryJournal(SettlementConformance):
    @pytest.fixture
    def open_store(self) -> OpenStore:
        shared = MemoryJournalStore()

        class Handle(MemoryJournalStore):
            """Another handle on the same list (closing one does not close the others)."""

            def __init__(self) -> None:
                super().__init__()
                self._rows = shared._rows

        return Handle


class TestOnSqliteJournal(SettlementConformance):
    @pytest.fixture
    def open_store(self, tmp_path: Path) -> Iterator[OpenStore]:
        def make() -> JournalStore:
            return SqliteJournalStore(tmp_path / "ledger.db")

        yield make
