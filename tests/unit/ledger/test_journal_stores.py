"""The JournalStore conformance suite on the memory and SQLite stores (JetStream: tests/integration/ledger)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agora.ledger import JournalStore, MemoryJournalStore, SqliteJournalStore
from tests.unit.ledger.journal_conformance import JournalConformance, fill


class TestMemoryJournal(JournalConformance):
    @pytest.fixture
    def store(self) -> JournalStore:
        return MemoryJournalStore()


class TestSqliteJournal(JournalConformance):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[JournalStore]:
        s = SqliteJournalStore(tmp_path / "ledger.db")
        yield s
        await s.close()

    @pytest.fixture
    async def second(self, tmp_path: Path) -> AsyncIterator[JournalStore]:
        s = SqliteJournalStore(tmp_path / "ledger.db")
        yield s
        await s.close()


async def test_a_sqlite_journal_survives_reopening(tmp_path: Path) -> None:
    first = SqliteJournalStore(tmp_path / "j.db")
    written = await fill(first, 3)
    await first.close()
    again = SqliteJournalStore(tmp_path / "j.db")
    try:
        assert await again.read() == written
    finally:
        await again.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "j.db")) as raw:  # WAL is a property of the file
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
