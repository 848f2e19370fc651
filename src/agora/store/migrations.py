"""The SQLite schema as an ordered list of migrations, and the code that applies them.

Why a list and not `CREATE TABLE IF NOT EXISTS` on every start: a schema that changes over releases
needs each change applied exactly once, in order, and recorded, so a database always says which
version it is at. Append a new `Migration` to change the schema; never edit or reorder one that has
shipped. A database at a version this code does not know was written by a newer agora and is refused
rather than guessed at.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from agora.errors import AgoraError


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    steps: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "documents and append-only events",
        (
            """CREATE TABLE documents (
                collection TEXT NOT NULL,
                id TEXT NOT NULL,
                version INTEGER NOT NULL CHECK (version >= 1),
                doc TEXT NOT NULL CHECK (json_valid(doc) AND json_type(doc) = 'object'),
                PRIMARY KEY (collection, id)
            ) WITHOUT ROWID""",
            """CREATE TABLE events (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                ts REAL NOT NULL,
                kind TEXT NOT NULL,
                subject TEXT NOT NULL,
                data TEXT NOT NULL CHECK (json_valid(data) AND json_type(data) = 'object')
            )""",
            "CREATE INDEX events_by_kind ON events (kind, seq)",
            "CREATE INDEX events_by_subject ON events (subject, seq)",
            """CREATE TRIGGER events_are_append_only_update BEFORE UPDATE ON events
               BEGIN SELECT RAISE(ABORT, 'events are append-only'); END""",
            """CREATE TRIGGER events_are_append_only_delete BEFORE DELETE ON events
               BEGIN SELECT RAISE(ABORT, 'events are append-only'); END""",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version

_CREATE_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at REAL NOT NULL
)"""


def check_order(migrations: tuple[Migration, ...]) -> None:
    """Versions must be 1, 2, 3... so that "the highest applied" says everything below is applied."""
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise ValueError(f"migration {migration.name!r} has version {migration.version}, expected {expected}")


def current_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
    return int(row[0])


def apply_migrations(conn: sqlite3.Connection, now: float, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Bring the database to the last migration in one transaction; return the versions applied.

    The connection must be in autocommit mode (`isolation_level=None`): this function owns the
    transaction so a failure half-way leaves the database at its old version.
    """
    check_order(migrations)
    latest = migrations[-1].version if migrations else 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_CREATE_TABLE)
        have = current_version(conn)
        if have > latest:
            raise AgoraError(
                "store_schema_too_new",
                f"the database is at schema version {have}; this agora knows versions up to {latest}",
                details={"db_version": have, "known_version": latest},
            )
        applied: list[int] = []
        for migration in migrations[have:]:
            for step in migration.steps:
                conn.execute(step)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, now),
            )
            applied.append(migration.version)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return applied
