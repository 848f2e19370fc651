"""`SqliteStore`: the node's durable store, one SQLite file in WAL mode.

Why one worker thread with one connection: sqlite3 calls block, and a connection must not be shared
across threads. A single-thread executor runs every call in order, which also gives transactions a
natural home (BEGIN in one job, COMMIT in a later job, nothing else interleaved because `BaseStore`
holds its lock in between). WAL lets another process (a backup, `sqlite3` by hand) read while the
node writes; synchronous=NORMAL is durable across process crashes and only risks the last commits on
power loss, the usual trade for WAL.

Query SQL never contains caller text: field names are checked against a strict pattern and passed,
like every value, as bound parameters (JSON paths for `json_extract`/`json_type`/`json_each`).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from agora.clock import Clock
from agora.errors import AgoraError
from agora.store import validation as v
from agora.store.base import BaseStore
from agora.store.interfaces import Event, JSONDict, Record, Scalar
from agora.store.migrations import apply_migrations, current_version

T = TypeVar("T")

_NUMBER_TYPES = "('integer', 'real')"
_RANK = (
    "CASE json_type(d.doc, ?) WHEN 'true' THEN 1 WHEN 'false' THEN 1 WHEN 'integer' THEN 2 WHEN 'real' THEN 2"
    " WHEN 'text' THEN 3 WHEN 'array' THEN 4 WHEN 'object' THEN 4 ELSE 0 END"
)
_SORT_VALUE = (
    "CASE WHEN json_type(d.doc, ?) IN ('true', 'false', 'integer', 'real', 'text') THEN json_extract(d.doc, ?) END"
)
_CONTAINS = (
    "EXISTS (SELECT 1 FROM json_tree(d.doc) AS t WHERE t.type = 'text' AND instr(agora_casefold(t.value), ?) > 0)"
)


def _casefold(value: object) -> str | None:
    return value.casefold() if isinstance(value, str) else None


def _field_clause(path: str, value: Scalar) -> tuple[str, list[Any]]:
    """SQL that is true exactly when `validation.field_matches(doc, path, value)` is."""
    jp = "$." + path
    in_array = "(json_type(d.doc, ?) = 'array' AND EXISTS (SELECT 1 FROM json_each(d.doc, ?) AS e WHERE {}))"
    if value is None:
        return (
            "(json_type(d.doc, ?) IS NULL OR json_type(d.doc, ?) = 'null' OR "
            + in_array.format("e.type = 'null'")
            + ")",
            [jp, jp, jp, jp],
        )
    if isinstance(value, bool):
        literal = "'true'" if value else "'false'"
        return (
            f"(json_type(d.doc, ?) = {literal} OR " + in_array.format(f"e.type = {literal}") + ")",
            [jp, jp, jp],
        )
    if isinstance(value, (int, float)):
        return (
            f"((json_type(d.doc, ?) IN {_NUMBER_TYPES} AND json_extract(d.doc, ?) = ?) OR "
            + in_array.format(f"e.type IN {_NUMBER_TYPES} AND e.value = ?")
            + ")",
            [jp, jp, value, jp, jp, value],
        )
    return (
        "((json_type(d.doc, ?) = 'text' AND json_extract(d.doc, ?) = ?) OR "
        + in_array.format("e.type = 'text' AND e.value = ?")
        + ")",
        [jp, jp, value, jp, jp, value],
    )


def build_where(collection: str, spec: v.QuerySpec) -> tuple[str, list[Any]]:
    clauses = ["d.collection = ?"]
    params: list[Any] = [collection]
    for path, value in spec.where:
        sql, more = _field_clause(path, value)
        clauses.append(sql)
        params.extend(more)
    if spec.needle is not None:
        clauses.append(_CONTAINS)
        params.append(spec.needle)
    return " AND ".join(clauses), params


def build_select(collection: str, spec: v.QuerySpec) -> tuple[str, list[Any]]:
    where, params = build_where(collection, spec)
    order = "d.id ASC"
    if spec.order_by is not None:
        direction = "DESC" if spec.desc else "ASC"  # one of two literals, never caller text
        jp = "$." + spec.order_by
        order = f"{_RANK} {direction}, {_SORT_VALUE} {direction}, d.id ASC"
        params.extend([jp, jp, jp])
    params.extend([spec.limit, spec.offset])
    return f"SELECT d.id, d.version, d.doc FROM documents AS d WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?", params


def _map_error(exc: sqlite3.Error, path: Path) -> AgoraError:
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    details = {"path": str(path), "sqlite_error": name or type(exc).__name__}
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return AgoraError("store_corrupt", f"{path} is not a usable SQLite database: {exc}", details=details)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return AgoraError("unavailable", f"{path} is locked by another writer: {exc}", retryable=True, details=details)
    if name.startswith(("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM")):
        return AgoraError(
            "unavailable",
            f"cannot use {path}: {exc}",
            hint="Check free disk space and the permissions of the data directory.",
            details=details,
        )
    return AgoraError("internal", f"SQLite failed on {path}: {exc}", details=details)


class SqliteStore(BaseStore):
    def __init__(self, path: str | os.PathLike[str], clock: Clock, *, busy_timeout_s: float = 5.0) -> None:
        super().__init__(clock)
        self._path = Path(path)
        self._busy_ms = max(0, int(busy_timeout_s * 1000))
        self._executor: ThreadPoolExecutor | None = None
        self._ready = False
        self._conn: sqlite3.Connection | None = None  # used only inside the worker thread

    @property
    def path(self) -> Path:
        return self._path

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agora-sqlite")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._guarded, fn, args)

    def _guarded(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            return fn(*args)
        except sqlite3.Error as exc:
            raise _map_error(exc, self._path) from exc

    def _c(self) -> sqlite3.Connection:
        assert self._conn is not None, "the connection is opened before any other call"
        return self._conn

    # --- lifecycle -------------------------------------------------------------------------------------

    async def _open(self) -> None:
        if not self._ready:
            await self._call(self._open_sync, float(self._clock.now()))
            self._ready = True

    def _open_sync(self, now: float) -> None:
        if self._conn is not None:  # an earlier open finished after its caller was cancelled
            return
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AgoraError("unavailable", f"cannot create the directory of {self._path}: {exc}") from exc
        conn = sqlite3.connect(str(self._path), isolation_level=None, timeout=self._busy_ms / 1000)
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms:d}")
            mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
            if mode != "wal":
                raise AgoraError(
                    "unavailable",
                    f"{self._path} cannot use write-ahead logging (journal mode stays {mode!r})",
                    hint="Put the data directory on a local filesystem.",
                )
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.create_function("agora_casefold", 1, _casefold, deterministic=True)
            apply_migrations(conn, now)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def _close(self) -> None:
        if self._executor is None:
            return
        try:
            await self._call(self._close_sync)
        finally:
            self._executor.shutdown(wait=False)
            self._executor = None

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def schema_version(self) -> int:
        """The highest migration applied to the file (for diagnostics and tests)."""
        async with self._access():
            return await self._call(lambda: current_version(self._c()))

    async def pragmas(self) -> dict[str, Any]:
        """The connection's settings as SQLite reports them (journal mode, sync level...), for doctors."""

        def run() -> dict[str, Any]:
            conn = self._c()
            return {
                name: conn.execute(f"PRAGMA {name}").fetchone()[0]  # fixed names, never caller text
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }

        async with self._access():
            return await self._call(run)

    async def check_integrity(self) -> None:
        """Read every page (`PRAGMA quick_check`); raise `store_corrupt` when the file is damaged."""
        async with self._access():
            rows = await self._call(lambda: self._c().execute("PRAGMA quick_check").fetchall())
        problems = [str(r[0]) for r in rows if str(r[0]) != "ok"]
        if problems:
            raise AgoraError(
                "store_corrupt", f"{self._path} failed its integrity check", details={"problems": problems[:20]}
            )

    # --- transactions ----------------------------------------------------------------------------------

    def _atomic(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` inside the open transaction, or inside its own when there is none."""
        conn = self._c()
        if conn.in_transaction:
            return fn(conn)
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    def _exec(self, *statements: str) -> None:
        for statement in statements:
            self._c().execute(statement)

    def _rollback_sync(self) -> None:
        if self._c().in_transaction:
            self._c().execute("ROLLBACK")

    async def _begin(self) -> None:
        await self._call(self._exec, "BEGIN IMMEDIATE")

    async def _commit(self) -> None:
        await self._call(self._exec, "COMMIT")

    async def _rollback(self) -> None:
        await self._call(self._rollback_sync)

    async def _savepoint(self, name: str) -> None:
        await self._call(self._exec, f"SAVEPOINT {name}")  # names come from BaseStore, never callers

    async def _release(self, name: str) -> None:
        await self._call(self._exec, f"RELEASE {name}")

    async def _rollback_to(self, name: str) -> None:
        await self._call(self._exec, f"ROLLBACK TO {name}", f"RELEASE {name}")

    # --- documents ---------------------------------------------------------------------------------------

    async def _put(self, collection: str, id: str, text: str, expected: int | None) -> int:
        def run(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT version FROM documents WHERE collection = ? AND id = ?", (collection, id)
            ).fetchone()
            current = int(row[0]) if row else 0
            if expected is not None and expected != current:
                raise v.conflict_error(collection, id, expected, current)
            if row:
                conn.execute(
                    "UPDATE documents SET version = ?, doc = ? WHERE collection = ? AND id = ?",
                    (current + 1, text, collection, id),
                )
            else:
                conn.execute(
                    "INSERT INTO documents (collection, id, version, doc) VALUES (?, ?, 1, ?)", (collection, id, text)
                )
            return current + 1

        return await self._call(self._atomic, run)

    async def _get(self, collection: str, id: str) -> tuple[JSONDict, int] | None:
        def run() -> tuple[str, int] | None:
            row = (
                self._c()
                .execute("SELECT doc, version FROM documents WHERE collection = ? AND id = ?", (collection, id))
                .fetchone()
            )
            return None if row is None else (str(row[0]), int(row[1]))

        found = await self._call(run)
        return None if found is None else (v.decode_doc(found[0]), found[1])

    async def _delete(self, collection: str, id: str, expected: int | None) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT version FROM documents WHERE collection = ? AND id = ?", (collection, id)
            ).fetchone()
            current = int(row[0]) if row else 0
            if expected is not None and expected != current:
                raise v.conflict_error(collection, id, expected, current)
            if row is None:
                return False
            conn.execute("DELETE FROM documents WHERE collection = ? AND id = ?", (collection, id))
            return True

        return await self._call(self._atomic, run)

    async def _query(self, collection: str, spec: v.QuerySpec) -> list[Record]:
        sql, params = build_select(collection, spec)
        rows = await self._call(lambda: self._c().execute(sql, params).fetchall())
        return [Record(id=str(r[0]), version=int(r[1]), doc=v.decode_doc(str(r[2]))) for r in rows]

    async def _count(self, collection: str, spec: v.QuerySpec) -> int:
        where, params = build_where(collection, spec)
        sql = f"SELECT COUNT(*) FROM documents AS d WHERE {where}"
        row = await self._call(lambda: self._c().execute(sql, params).fetchone())
        return int(row[0])

    # --- events --------------------------------------------------------------------------------------------

    async def _append_event(self, ts: float, kind: str, subject: str, text: str) -> int:
        def run(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO events (ts, kind, subject, data) VALUES (?, ?, ?, ?)", (ts, kind, subject, text)
            )
            assert cur.lastrowid is not None
            return int(cur.lastrowid)

        return await self._call(self._atomic, run)

    async def _events(self, after_seq: int, kind: str | None, subject: str | None, limit: int) -> list[Event]:
        clauses = ["seq > ?"]
        params: list[Any] = [after_seq]
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind)
        if subject is not None:
            clauses.append("subject = ?")
            params.append(subject)
        params.append(limit)
        sql = f"SELECT seq, ts, kind, subject, data FROM events WHERE {' AND '.join(clauses)} ORDER BY seq LIMIT ?"
        rows = await self._call(lambda: self._c().execute(sql, params).fetchall())
        return [
            Event(seq=int(r[0]), ts=float(r[1]), kind=str(r[2]), subject=str(r[3]), data=json.loads(r[4])) for r in rows
        ]


__all__ = ["SqliteStore"]
