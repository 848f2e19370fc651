"""What only the SQLite store has: a file that outlives the process, WAL, migrations, real concurrency."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
from pathlib import Path

import pytest

from agora.clock import ManualClock
from agora.errors import AgoraError
from agora.store import LATEST_VERSION, MIGRATIONS, Migration, SqliteStore
from agora.store.migrations import apply_migrations, current_version


def raw(path: Path) -> sqlite3.Connection:
    """A second, independent connection: checks what is really in the file, not what the store says."""
    return sqlite3.connect(str(path), isolation_level=None)


async def test_data_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "node" / "agora.db"  # the directory is created on open
    clock = ManualClock()
    async with SqliteStore(path, clock) as store:
        await store.put("jobs", "a", {"status": "running", "spec": {"engine": "wasm"}})
        await store.put("jobs", "a", {"status": "done", "spec": {"engine": "wasm"}})
        first = await store.append_event("job.state", "a", {"to": "done"})
    clock.advance(60)
    async with SqliteStore(path, clock) as store:
        assert await store.get_with_version("jobs", "a") == ({"status": "done", "spec": {"engine": "wasm"}}, 2)
        assert await store.query("jobs", {"spec.engine": "wasm"}) == [{"status": "done", "spec": {"engine": "wasm"}}]
        assert await store.events() == [first]
        second = await store.append_event("job.state", "a", {"to": "archived"})
        assert second.seq > first.seq and second.ts == first.ts + 60


async def test_wal_and_connection_settings(tmp_path: Path) -> None:
    path = tmp_path / "agora.db"
    async with SqliteStore(path, ManualClock(), busy_timeout_s=2.5) as store:
        settings = await store.pragmas()
        assert settings == {"journal_mode": "wal", "synchronous": 1, "foreign_keys": 1, "busy_timeout": 2500}
        await store.put("jobs", "a", {})
        assert await asyncio.to_thread(os.path.exists, f"{path}-wal")
        with raw(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent in the file


async def test_migrations_recorded_once(tmp_path: Path) -> None:
    path = tmp_path / "agora.db"
    clock = ManualClock(start=1_234.0)
    async with SqliteStore(path, clock) as store:
        assert await store.schema_version() == LATEST_VERSION
    clock.advance(10)
    async with SqliteStore(path, clock) as store:  # reopening applies nothing again
        assert await store.schema_version() == LATEST_VERSION
    with raw(path) as conn:
        rows = conn.execute("SELECT version, name, applied_at FROM schema_migrations ORDER BY version").fetchall()
    assert rows == [(m.version, m.name, 1_234.0) for m in MIGRATIONS]


def test_apply_migrations_is_idempotent_and_ordered(tmp_path: Path) -> None:
    conn = raw(tmp_path / "m.db")
    try:
        first = Migration(1, "one", ("CREATE TABLE a (x INTEGER)",))
        second = Migration(2, "two", ("CREATE TABLE b (y INTEGER)", "INSERT INTO b VALUES (7)"))
        assert apply_migrations(conn, 1.0, (first,)) == [1]
        assert apply_migrations(conn, 2.0, (first,)) == []
        assert apply_migrations(conn, 3.0, (first, second)) == [2]
        assert apply_migrations(conn, 4.0, (first, second)) == []
        assert current_version(conn) == 2
        assert conn.execute("SELECT y FROM b").fetchall() == [(7,)]
        with pytest.raises(ValueError, match="expected 2"):
            apply_migrations(conn, 5.0, (first, Migration(3, "gap", ())))
    finally:
        conn.close()


def test_failing_migration_changes_nothing(tmp_path: Path) -> None:
    conn = raw(tmp_path / "m.db")
    try:
        good = Migration(1, "good", ("CREATE TABLE a (x INTEGER)",))
        apply_migrations(conn, 1.0, (good,))
        broken = Migration(2, "broken", ("CREATE TABLE c (z INTEGER)", "THIS IS NOT SQL"))
        with pytest.raises(sqlite3.OperationalError):
            apply_migrations(conn, 2.0, (good, broken))
        assert current_version(conn) == 1
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "c" not in tables and "a" in tables
        assert not conn.in_transaction
    finally:
        conn.close()


async def test_database_from_a_newer_agora_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agora.db"
    async with SqliteStore(path, ManualClock()) as store:
        await store.put("jobs", "a", {"n": 1})
    with raw(path) as conn:
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from the future', 0)",
            (LATEST_VERSION + 1,),
        )
    store = SqliteStore(path, ManualClock())
    try:
        with pytest.raises(AgoraError) as err:
            await store.open()
        assert err.value.code == "store_schema_too_new"
        assert err.value.details == {"db_version": LATEST_VERSION + 1, "known_version": LATEST_VERSION}
        with pytest.raises(AgoraError) as err:
            await store.get("jobs", "a")  # every call keeps refusing; nothing is guessed
        assert err.value.code == "store_schema_too_new"
    finally:
        await store.close()
    with raw(path) as conn:  # and the file was left as it was
        assert conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] == LATEST_VERSION + 1
        assert conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0] == 1


async def test_events_are_append_only_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "agora.db"
    async with SqliteStore(path, ManualClock()) as store:
        await store.append_event("node.started", "did:key:x", {"v": 1})
    with raw(path) as conn:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE events SET kind = 'forged'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM events")
        assert conn.execute("SELECT kind FROM events").fetchall() == [("node.started",)]


async def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "agora.db", ManualClock()) as store:

        async def writer(w: int) -> None:
            for i in range(50):
                await store.put("jobs", f"w{w}-{i}", {"writer": w, "i": i})
                if i % 2 == 0:
                    await store.append_event("job.saved", f"w{w}", {"i": i})

        await asyncio.gather(*(writer(w) for w in range(4)))
        assert await store.count("jobs") == 200
        for w in range(4):
            assert await store.count("jobs", {"writer": w}) == 50
            assert sorted(d["i"] for d in await store.query("jobs", {"writer": w})) == list(range(50))
        events = await store.events(limit=1000)
        assert len(events) == 100
        assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + 100))


async def test_two_processes_worth_of_connections_share_the_file(tmp_path: Path) -> None:
    """Two stores on one file are two connections, as a node and a CLI backup would be."""
    path = tmp_path / "agora.db"
    async with SqliteStore(path, ManualClock()) as one, SqliteStore(path, ManualClock()) as two:

        async def writer(store: SqliteStore, name: str) -> None:
            for i in range(50):
                async with store.transaction():
                    await store.put("jobs", f"{name}-{i}", {"by": name})
                    await store.append_event("job.saved", name, {"i": i})

        await asyncio.gather(writer(one, "one"), writer(two, "two"))
        assert await one.count("jobs") == 100
        assert await two.count("jobs", {"by": "one"}) == 50
        assert len(await two.events(limit=1000)) == 100


async def test_garbage_file_is_reported_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "agora.db"
    path.write_bytes(b"this is not a database, just some bytes " * 100)
    store = SqliteStore(path, ManualClock())
    try:
        with pytest.raises(AgoraError) as err:
            await store.open()
        assert err.value.code == "store_corrupt"
        assert str(path) in err.value.message
        assert err.value.hint and "backup" in err.value.hint
    finally:
        await store.close()


async def test_damaged_pages_fail_the_integrity_check(tmp_path: Path) -> None:
    path = tmp_path / "agora.db"
    async with SqliteStore(path, ManualClock()) as store:
        for i in range(300):
            await store.put("jobs", f"j{i}", {"i": i, "pad": "x" * 200})
        await store.check_integrity()  # a healthy file passes
    with path.open("r+b") as f:
        f.seek(4096 * 3)
        f.write(random.Random(7).randbytes(4096 * 4))  # deterministic garbage over b-tree pages
    store = SqliteStore(path, ManualClock())
    try:
        with pytest.raises(AgoraError) as err:
            await store.check_integrity()
        assert err.value.code == "store_corrupt"
    finally:
        await store.close()


async def test_unusable_location_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    store = SqliteStore(blocker / "agora.db", ManualClock())
    try:
        with pytest.raises(AgoraError) as err:
            await store.open()
        assert err.value.code == "unavailable"
    finally:
        await store.close()
