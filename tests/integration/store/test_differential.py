"""Random documents and random queries give the same answers on SQLite as on the memory reference.

The memory store evaluates queries with `agora.store.validation` (the reference semantics); the SQLite
store with hand-written SQL. Hypothesis hunts for any document/query pair on which they disagree.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agora.clock import ManualClock
from agora.store import MemoryStore, SqliteStore

_collections = itertools.count()

FIELDS = ["a", "b", "n.x", "n.y", "tags"]
scalars = st.sampled_from(
    [None, True, False, 0, 1, -1, 1.0, 0.5, 2, "", "a", "A", "b", "ß", "SS", "straße", "x y", "É", "é"]
)
values = scalars | st.lists(scalars, max_size=3) | st.fixed_dictionaries({"x": scalars})  # mostly scalars
docs = st.fixed_dictionaries(
    {},
    optional={
        "a": values,
        "b": values,
        "n": st.fixed_dictionaries({}, optional={"x": values, "y": values}) | scalars,
        "tags": st.lists(scalars, max_size=4) | scalars,
    },
)
queries = st.fixed_dictionaries(
    {
        "where": st.dictionaries(st.sampled_from(FIELDS), scalars, max_size=2),
        "order_by": st.none() | st.sampled_from(FIELDS),
        "desc": st.booleans(),
        "limit": st.just(100) | st.integers(0, 12),
        "offset": st.just(0) | st.integers(0, 6),
        "contains": st.none() | st.sampled_from(["a", "SS", "ß", "é", "x y", "b"]),
    }
)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[MemoryStore, SqliteStore]]:
    clock = ManualClock()
    memory, sqlite = MemoryStore(clock), SqliteStore(tmp_path / "diff.db", clock)
    await sqlite.open()
    try:
        yield memory, sqlite
    finally:
        await memory.close()
        await sqlite.close()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(documents=st.lists(docs, min_size=1, max_size=12), probes=st.lists(queries, min_size=1, max_size=6))
async def test_sqlite_agrees_with_the_reference(
    pair: tuple[MemoryStore, SqliteStore], documents: list[dict[str, Any]], probes: list[dict[str, Any]]
) -> None:
    memory, sqlite = pair
    collection = f"c{next(_collections)}"
    for i, doc in enumerate(documents):
        for store in pair:
            await store.put(collection, f"d{i:02d}", doc)
    for probe in probes:
        expected = await memory.query_records(collection, **probe)
        got = await sqlite.query_records(collection, **probe)
        assert [(r.id, json.dumps(r.doc)) for r in got] == [(r.id, json.dumps(r.doc)) for r in expected], probe
        count_args = {"where": probe["where"], "contains": probe["contains"]}
        assert await sqlite.count(collection, **count_args) == await memory.count(collection, **count_args)
