"""`SqliteJournalStore`: the journal in one SQLite file (WAL), for a single hub or a node's own books.

Same conventions as `agora.store.sqlite`: one connection used only by one worker thread (every call
runs there in order, the event loop never blocks), WAL so a reader (a backup, `sqlite3` by hand, a
second process) never stops the writer, synchronous=NORMAL. A compare-and-append is one
`BEGIN IMMEDIATE` transaction: it takes the file's write lock, reads the last seq and inserts only when
it is the one the writer expected, so two processes on the same file can never both append entry N.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from agora.errors import AgoraError
from agora.ledger.interfaces import Entry

T = TypeVar("T")

_SCHEMA = "CREATE TABLE IF NOT EXISTS journal ( seq INTEGER PRIMARY KEY, id TEXT NOT NULL, body BLOB NOT NULL)"


class SqliteJournalStore:
    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 5.0) -> None:
        self._path = Path(path)
        self._busy_ms = max(0, int(busy_timeout_s * 1000))
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # touched only inside the worker thread
        self._closed = False

    @property
    def path(self) -> Path:
        return self._path

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise AgoraError("store_closed", f"the journal store {self._path} was closed")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agora-ledger-sqlite")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._guarded, fn, args)

    def _guarded(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            if self._conn is None:
                self._conn = self._open_sync()
            return fn(self._conn, *args)
        except sqlite3.Error as exc:
            name = str(getattr(exc, "sqlite_errorname", "") or type(exc).__name__)
            if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
                raise AgoraError("store_corrupt", f"{self._path} is not a usable SQLite database: {exc}") from exc
            if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
                raise AgoraError("unavailable", f"{self._path} is locked by another writer: {exc}") from exc
            raise AgoraError("unavailable", f"cannot use the journal {self._path}: {exc}") from exc

    def _open_sync(self) -> sqlite3.Connection:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AgoraError("unavailable", f"cannot create the directory of {self._path}: {exc}") from exc
        conn = sqlite3.connect(str(self._path), isolation_level=None, timeout=self._busy_ms / 1000)
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms:d}")
            mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
            if mode != "wal":
                raise AgoraError("unavailable", f"{self._path} cannot use write-ahead logging (mode {mode!r})")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _append_sync(conn: sqlite3.Connection, seq: int, entry_id: str, body: bytes, expected: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            last = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()[0])
            if last != expected or seq != expected + 1:
                raise AgoraError(
                    "ledger_conflict",
                    f"the journal is at entry {last}, the writer expected {expected}",
                    details={"last_seq": last},
                )
            conn.execute("INSERT INTO journal (seq, id, body) VALUES (?, ?, ?)", (seq, entry_id, body))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    async def append(self, entry: Entry, expected_seq: int) -> None:
        await self._call(self._append_sync, entry.seq, entry.id, entry.encode(), expected_seq)

    async def read(self, since_seq: int = 0, limit: int = 1000) -> list[Entry]:
        def run(conn: sqlite3.Connection) -> list[bytes]:
            rows = conn.execute(
                "SELECT body FROM journal WHERE seq > ? ORDER BY seq LIMIT ?", (since_seq, max(0, limit))
            ).fetchall()
            return [bytes(r[0]) for r in rows]

        return [Entry.decode(b) for b in await self._call(run)]

    async def last(self) -> Entry | None:
        def run(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute("SELECT body FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
            return None if row is None else bytes(row[0])

        body = await self._call(run)
        return None if body is None else Entry.decode(body)

    async def close(self) -> None:
        if self._closed:
            return
        executor, self._executor = self._executor, None
        if executor is not None:

            def shut() -> None:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

            await asyncio.get_running_loop().run_in_executor(executor, shut)
            executor.shutdown(wait=False)
        self._closed = True


__all__ = ["SqliteJournalStore"]
