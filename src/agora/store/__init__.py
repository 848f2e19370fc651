"""Durable local state: JSON documents in named collections and an append-only event log.

- `interfaces.py`: the `Store` ABC (the contract and its exact semantics), `Event`, `Record`.
- `base.py`: `BaseStore`, argument checks, caller serialization and transactions for every backend.
- `validation.py`: pure input checks and the reference query semantics (`matches`, `sort_key`).
- `sqlite.py`: `SqliteStore`, one SQLite file (WAL) driven from one worker thread.
- `migrations.py`: the ordered schema migrations of `SqliteStore` and their runner.
- `memory.py`: `MemoryStore`, the same semantics in dicts, for tests and the simulator.
"""

from agora.store.interfaces import Event, JSONDict, Record, Scalar, Store
from agora.store.memory import MemoryStore
from agora.store.migrations import LATEST_VERSION, MIGRATIONS, Migration
from agora.store.sqlite import SqliteStore

__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "Event",
    "JSONDict",
    "MemoryStore",
    "Migration",
    "Record",
    "Scalar",
    "SqliteStore",
    "Store",
]
