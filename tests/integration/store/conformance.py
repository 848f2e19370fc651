"""The one conformance suite every `Store` implementation must pass.

Subclass `StoreConformance` in a test module and provide two fixtures: `clock` (the `ManualClock`
the store was built with) and `store` (an open store, closed after the test). Every semantic promise
of `agora.store.interfaces` is pinned here, with the unhappy paths as carefully as the happy ones.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agora.clock import ManualClock
from agora.errors import AgoraError
from agora.store import Store

_ids = itertools.count()


async def expect_code(code: str, call: Awaitable[Any]) -> AgoraError:
    with pytest.raises(AgoraError) as err:
        await call
    assert err.value.code == code, err.value
    return err.value


def exact(value: Any) -> str:
    """A form that tells True from 1 and 1 from 1.0, and keeps key order: 'identical', not just ==."""
    return json.dumps(value, ensure_ascii=False)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"))
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(
            st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8), inner, max_size=5
        )
    ),
    max_leaves=25,
)
json_docs = st.dictionaries(
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12), json_values, max_size=8
)

JOBS = [
    ("j1", {"status": "running", "spec": {"engine": "wasm", "cpu": 2}, "tags": ["gpu", "eu"], "prio": 3}),
    ("j2", {"status": "done", "spec": {"engine": "docker", "cpu": 1.0}, "tags": ["cpu"], "prio": 1}),
    ("j3", {"status": "running", "spec": {"engine": "docker", "cpu": 4}, "tags": [], "prio": 2, "note": None}),
    ("j4", {"status": "failed", "spec": "opaque", "tags": "gpu", "prio": True}),
    ("j5", {"status": "queued", "tags": ["gpu", 7, False, None], "prio": "high"}),
]


async def load_jobs(store: Store) -> None:
    for id, doc in JOBS:
        await store.put("jobs", id, doc)


async def ids(store: Store, *args: Any, **kwargs: Any) -> list[str]:
    return [r.id for r in await store.query_records("jobs", *args, **kwargs)]


class StoreConformance:
    # --- documents and versions ------------------------------------------------------------------------

    async def test_put_get_versions(self, store: Store) -> None:
        assert await store.get("jobs", "a") is None
        assert await store.get_with_version("jobs", "a") is None
        assert await store.put("jobs", "a", {"n": 1}) == 1
        assert await store.put("jobs", "a", {"n": 2}) == 2
        assert await store.get("jobs", "a") == {"n": 2}
        assert await store.get_with_version("jobs", "a") == ({"n": 2}, 2)

    async def test_collections_are_separate(self, store: Store) -> None:
        await store.put("jobs", "x", {"in": "jobs"})
        await store.put("offers", "x", {"in": "offers"})
        assert await store.get("jobs", "x") == {"in": "jobs"}
        assert await store.get("offers", "x") == {"in": "offers"}
        assert await store.count("jobs") == 1
        assert await store.delete("offers", "x") is True
        assert await store.get("jobs", "x") == {"in": "jobs"}

    async def test_returned_and_given_docs_are_copies(self, store: Store) -> None:
        doc: dict[str, Any] = {"list": [1, 2], "obj": {"k": "v"}}
        await store.put("jobs", "a", doc)
        doc["list"].append(3)
        doc["obj"]["k"] = "changed"
        got = await store.get("jobs", "a")
        assert got == {"list": [1, 2], "obj": {"k": "v"}}
        assert got is not None
        got["list"].clear()
        (queried,) = await store.query("jobs")
        queried["obj"].clear()
        assert await store.get("jobs", "a") == {"list": [1, 2], "obj": {"k": "v"}}

    async def test_delete(self, store: Store) -> None:
        await store.put("jobs", "a", {"n": 1})
        await store.put("jobs", "a", {"n": 2})
        assert await store.delete("jobs", "a") is True
        assert await store.get("jobs", "a") is None
        assert await store.delete("jobs", "a") is False
        assert await store.count("jobs") == 0
        assert await store.put("jobs", "a", {"n": 3}) == 1  # a re-created document starts again

    async def test_expected_version_is_compare_and_set(self, store: Store) -> None:
        assert await store.put("jobs", "a", {"n": 1}, expected_version=0) == 1
        err = await expect_code("store_conflict", store.put("jobs", "a", {"n": 9}, expected_version=0))
        assert err.details["version"] == 1 and err.retryable
        assert await store.put("jobs", "a", {"n": 2}, expected_version=1) == 2
        await expect_code("store_conflict", store.put("jobs", "a", {"n": 9}, expected_version=1))
        await expect_code("store_conflict", store.put("jobs", "b", {"n": 9}, expected_version=3))
        assert await store.get_with_version("jobs", "a") == ({"n": 2}, 2)
        assert await store.get("jobs", "b") is None
        await expect_code("store_conflict", store.delete("jobs", "a", expected_version=1))
        assert await store.get("jobs", "a") == {"n": 2}
        assert await store.delete("jobs", "a", expected_version=2) is True

    async def test_concurrent_read_modify_write_loses_nothing(self, store: Store) -> None:
        await store.put("counters", "c", {"n": 0})

        async def bump(times: int) -> int:
            conflicts = 0
            for _ in range(times):
                for _attempt in range(200):
                    found = await store.get_with_version("counters", "c")
                    assert found is not None
                    doc, version = found
                    await asyncio.sleep(0)  # let the others interleave between read and write
                    try:
                        await store.put("counters", "c", {"n": doc["n"] + 1}, expected_version=version)
                        break
                    except AgoraError as exc:
                        assert exc.code == "store_conflict"
                        conflicts += 1
                else:
                    raise AssertionError("no progress after 200 attempts")
            return conflicts

        conflicts = await asyncio.gather(*(bump(10) for _ in range(4)))
        assert await store.get("counters", "c") == {"n": 40}
        assert sum(conflicts) > 0  # the interleaving really happened, so the conflicts were needed

    # --- queries -----------------------------------------------------------------------------------------

    async def test_where_top_level_nested_and_combined(self, store: Store) -> None:
        await load_jobs(store)
        assert await ids(store, {"status": "running"}) == ["j1", "j3"]
        assert await ids(store, {"spec.engine": "docker"}) == ["j2", "j3"]
        assert await ids(store, {"status": "running", "spec.engine": "docker"}) == ["j3"]
        assert await ids(store, {"status": "nope"}) == []
        assert await ids(store, {"spec.engine.deeper": "x"}) == []  # through a string: no match, no error
        assert await ids(store, {}) == ["j1", "j2", "j3", "j4", "j5"]
        assert await ids(store, None) == ["j1", "j2", "j3", "j4", "j5"]
        assert await store.query("jobs", {"status": "done"}) == [JOBS[1][1]]

    async def test_where_lists_match_any_element(self, store: Store) -> None:
        await load_jobs(store)
        assert await ids(store, {"tags": "gpu"}) == ["j1", "j4", "j5"]  # j4's tags is the string itself
        assert await ids(store, {"tags": 7}) == ["j5"]
        assert await ids(store, {"tags": False}) == ["j5"]
        assert await ids(store, {"tags": "cpu"}) == ["j2"]

    async def test_where_types_are_strict(self, store: Store) -> None:
        await load_jobs(store)
        assert await ids(store, {"prio": True}) == ["j4"]  # bool never equals a number
        assert await ids(store, {"prio": 1}) == ["j2"]
        assert await ids(store, {"spec.cpu": 1}) == ["j2"]  # 1 == 1.0
        assert await ids(store, {"spec.cpu": 2.0}) == ["j1"]
        assert await ids(store, {"prio": "3"}) == []  # a string never equals a number
        assert await ids(store, {"tags": 0}) == []  # False in j5's list is not 0

    async def test_where_none_matches_null_and_missing(self, store: Store) -> None:
        await load_jobs(store)
        assert await ids(store, {"note": None}) == ["j1", "j2", "j3", "j4", "j5"]
        assert await ids(store, {"spec.engine": None}) == ["j4", "j5"]
        assert await ids(store, {"tags": None}) == ["j5"]
        assert await ids(store, {"status": None}) == []

    async def test_order_limit_offset(self, store: Store) -> None:
        await load_jobs(store)
        await store.put("jobs", "j0", {"prio": 2})
        # missing < bool < numbers < strings; ties by id
        assert await ids(store, order_by="prio") == ["j4", "j2", "j0", "j3", "j1", "j5"]
        assert await ids(store, order_by="prio", desc=True) == ["j5", "j1", "j0", "j3", "j2", "j4"]
        assert await ids(store, order_by="spec.cpu") == ["j0", "j4", "j5", "j2", "j1", "j3"]
        assert await ids(store, order_by="status") == ["j0", "j2", "j4", "j5", "j1", "j3"]
        assert await ids(store, order_by="tags") == ["j0", "j4", "j1", "j2", "j3", "j5"]
        assert await ids(store) == ["j0", "j1", "j2", "j3", "j4", "j5"]
        assert await ids(store, limit=2) == ["j0", "j1"]
        assert await ids(store, limit=2, offset=5) == ["j5"]
        assert await ids(store, offset=6) == []
        assert await ids(store, limit=0) == []
        pages = [await ids(store, order_by="prio", desc=True, limit=4, offset=o) for o in (0, 4)]
        assert pages[0] + pages[1] == ["j5", "j1", "j0", "j3", "j2", "j4"]
        assert await ids(store, {"status": "running"}, order_by="prio", desc=True, limit=1) == ["j1"]

    async def test_contains_is_case_insensitive_over_string_values(self, store: Store) -> None:
        await store.put("docs", "a", {"title": "Hello World", "meta": {"tags": ["Alpha", "béta"]}})
        await store.put("docs", "b", {"title": "STRASSE 7", "n": 12345, "hello": "x"})
        await store.put("docs", "c", {"title": "Straße", "list": [{"deep": "ÉCOLE"}]})

        async def found(text: str, where: dict[str, Any] | None = None) -> list[str]:
            return [r.id for r in await store.query_records("docs", where, contains=text)]

        assert await found("hello") == ["a"]  # the key "hello" of b is not searched
        assert await found("WORLD") == ["a"]
        assert await found("alp") == ["a"]
        assert await found("BÉTA") == ["a"]
        assert await found("école") == ["c"]
        assert await found("strasse") == ["b", "c"]  # casefold: ß == ss
        assert await found("2345") == []  # numbers are not text
        assert await found("o w") == ["a"]
        assert await found("world", {"title": "nope"}) == []
        assert await found("straße", {"title": "Straße"}) == ["c"]
        assert await store.count("docs", contains="STRASSE") == 2
        assert await store.count("docs", {"title": "Straße"}, contains="ss") == 1

    async def test_count(self, store: Store) -> None:
        assert await store.count("jobs") == 0
        await load_jobs(store)
        assert await store.count("jobs") == 5
        assert await store.count("jobs", {"status": "running"}) == 2
        assert await store.count("jobs", {"tags": "gpu"}) == 3
        for i in range(120):
            await store.put("many", f"m{i:03d}", {"i": i, "even": i % 2 == 0})
        assert await store.count("many") == 120  # no default limit on count
        assert await store.count("many", {"even": True}) == 60
        assert len(await store.query("many")) == 100  # the default limit
        assert len(await store.query("many", limit=1000)) == 120

    # --- events -----------------------------------------------------------------------------------------

    async def test_events_order_ts_and_filters(self, store: Store, clock: ManualClock) -> None:
        first = await store.append_event("peer.joined", "did:key:a", {"addr": "127.0.0.1"})
        clock.advance(2.5)
        second = await store.append_event("peer.lost", "did:key:a", {})
        third = await store.append_event("peer.joined", "did:key:b", {"n": [1, {"x": None}]})
        assert first.seq < second.seq < third.seq
        assert second.ts == first.ts + 2.5 == clock.now()
        assert (third.kind, third.subject, third.data) == ("peer.joined", "did:key:b", {"n": [1, {"x": None}]})
        assert await store.events() == [first, second, third]
        assert await store.events(kind="peer.joined") == [first, third]
        assert await store.events(subject="did:key:a") == [first, second]
        assert await store.events(kind="peer.joined", subject="did:key:a") == [first]
        assert await store.events(kind="peer") == []  # kinds match exactly
        assert await store.events(after_seq=first.seq) == [second, third]
        assert await store.events(after_seq=third.seq) == []
        assert await store.events(limit=0) == []
        assert first.to_dict() == {
            "seq": first.seq,
            "ts": first.ts,
            "kind": "peer.joined",
            "subject": "did:key:a",
            "data": {"addr": "127.0.0.1"},
        }

    async def test_events_paging_with_after_seq(self, store: Store) -> None:
        appended = [await store.append_event("alloc.state", f"alloc-{i % 3}", {"i": i}) for i in range(25)]
        seen: list[int] = []
        after = 0
        for _ in range(10):
            page = await store.events(after_seq=after, limit=7)
            if not page:
                break
            seen.extend(e.data["i"] for e in page)
            after = page[-1].seq
        assert seen == list(range(25))
        by_subject = await store.events(subject="alloc-1", limit=3)
        assert [e.data["i"] for e in by_subject] == [1, 4, 7]
        more = await store.events(subject="alloc-1", after_seq=by_subject[-1].seq, limit=100)
        assert [e.data["i"] for e in more] == [10, 13, 16, 19, 22]
        assert [e.seq for e in appended] == sorted({e.seq for e in appended})

    # --- transactions -------------------------------------------------------------------------------------

    async def test_transaction_commits_everything(self, store: Store) -> None:
        await store.put("jobs", "old", {"n": 0})
        async with store.transaction() as tx:
            assert tx is store
            await store.put("jobs", "a", {"n": 1})
            await store.put("jobs", "a", {"n": 2})
            assert await store.delete("jobs", "old") is True
            event = await store.append_event("job.state", "a", {"to": "running"})
            assert await store.get("jobs", "a") == {"n": 2}  # reads see the transaction's own writes
        assert await store.get_with_version("jobs", "a") == ({"n": 2}, 2)
        assert await store.get("jobs", "old") is None
        assert await store.events() == [event]

    async def test_transaction_failure_leaves_nothing(self, store: Store) -> None:
        await store.put("jobs", "keep", {"n": 1})
        before = await store.append_event("job.state", "keep", {})
        with pytest.raises(RuntimeError, match="boom"):
            async with store.transaction():
                await store.put("jobs", "keep", {"n": 2})
                await store.put("jobs", "new", {"n": 1})
                await store.delete("jobs", "keep")
                await store.put("jobs", "keep", {"n": 3})
                await store.append_event("job.state", "new", {})
                raise RuntimeError("boom")
        assert await store.get_with_version("jobs", "keep") == ({"n": 1}, 1)
        assert await store.get("jobs", "new") is None
        assert await store.count("jobs") == 1
        assert await store.events() == [before]
        after = await store.append_event("job.state", "keep", {})
        assert after.seq > before.seq
        assert await store.events() == [before, after]

    async def test_conflict_inside_transaction_rolls_back_all(self, store: Store) -> None:
        await store.put("jobs", "a", {"n": 1})
        with pytest.raises(AgoraError) as err:
            async with store.transaction():
                await store.put("jobs", "b", {"n": 1})
                await store.put("jobs", "a", {"n": 2}, expected_version=7)
        assert err.value.code == "store_conflict"
        assert await store.get("jobs", "b") is None
        assert await store.get_with_version("jobs", "a") == ({"n": 1}, 1)

    async def test_nested_transaction_is_a_savepoint(self, store: Store) -> None:
        async with store.transaction():
            await store.put("jobs", "outer", {"n": 1})
            with pytest.raises(RuntimeError):
                async with store.transaction():
                    await store.put("jobs", "inner", {"n": 1})
                    await store.put("jobs", "outer", {"n": 2})
                    await store.append_event("job.inner", "x", {})
                    raise RuntimeError("inner fails")
            async with store.transaction():
                await store.put("jobs", "kept", {"n": 1})
        assert await store.get_with_version("jobs", "outer") == ({"n": 1}, 1)
        assert await store.get("jobs", "inner") is None
        assert await store.get("jobs", "kept") == {"n": 1}
        assert await store.events() == []

    async def test_helpers_and_child_tasks_join_the_transaction(self, store: Store) -> None:
        async def save(i: int) -> None:
            await store.put("jobs", f"t{i}", {"i": i})
            await store.append_event("job.saved", f"t{i}", {})

        with pytest.raises(RuntimeError):
            async with store.transaction():
                await asyncio.gather(*(save(i) for i in range(5)))
                assert await store.count("jobs") == 5
                raise RuntimeError("undo all five")
        assert await store.count("jobs") == 0
        assert await store.events() == []

    async def test_overlapping_nested_blocks_fail_loudly(self, store: Store) -> None:
        a_inside, b_inside = asyncio.Event(), asyncio.Event()

        async def a() -> None:
            async with store.transaction():
                await store.put("jobs", "a", {})
                a_inside.set()
                await b_inside.wait()  # leaves its block while b's (opened later) is still open

        async def b() -> None:
            await a_inside.wait()
            async with store.transaction():
                await store.put("jobs", "b", {})
                b_inside.set()
                await asyncio.Event().wait()

        with pytest.raises(ExceptionGroup) as group:
            async with store.transaction():
                await store.put("jobs", "outer", {})
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(a())
                    tg.create_task(b())
        errors = [e for e in group.value.exceptions if isinstance(e, AgoraError)]
        assert [e.code for e in errors] == ["internal"]
        assert await store.count("jobs") == 0

    async def test_other_tasks_never_see_uncommitted_writes(self, store: Store) -> None:
        written, go = asyncio.Event(), asyncio.Event()

        async def writer() -> None:
            async with store.transaction():
                await store.put("jobs", "dirty", {"n": 1})
                written.set()
                await go.wait()
                raise RuntimeError("roll back")

        task = asyncio.create_task(writer())
        await asyncio.wait_for(written.wait(), 10)
        reader = asyncio.create_task(store.get("jobs", "dirty"))
        # Give the reader every chance to run while the transaction is open (a wait with a deadline,
        # not an assertion on time): a store without isolation would answer the dirty document now.
        await asyncio.wait({reader}, timeout=0.2)
        go.set()
        with pytest.raises(RuntimeError):
            await task
        assert await asyncio.wait_for(reader, 10) is None

    async def test_cancelled_transaction_leaves_nothing(self, store: Store) -> None:
        inside = asyncio.Event()

        async def body() -> None:
            async with store.transaction():
                await store.put("jobs", "c", {"n": 1})
                inside.set()
                await asyncio.Event().wait()

        task = asyncio.create_task(body())
        await asyncio.wait_for(inside.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await store.get("jobs", "c") is None
        assert await store.put("jobs", "c", {"n": 2}) == 1  # the store is usable afterwards

    # --- bad input ----------------------------------------------------------------------------------------

    @pytest.mark.parametrize("collection", ["", "1jobs", "a b", "jobs;drop table documents", "x" * 200, None, 3])
    async def test_bad_collection(self, store: Store, collection: Any) -> None:
        await expect_code("invalid_argument", store.put(collection, "a", {}))
        await expect_code("invalid_argument", store.get(collection, "a"))
        await expect_code("invalid_argument", store.query(collection))
        await expect_code("invalid_argument", store.count(collection))

    @pytest.mark.parametrize("id", ["", "x" * 513, None, 5, b"id", "\ud800", "a\x00b"])
    async def test_bad_id(self, store: Store, id: Any) -> None:
        await expect_code("invalid_argument", store.put("jobs", id, {}))
        await expect_code("invalid_argument", store.get("jobs", id))
        await expect_code("invalid_argument", store.delete("jobs", id))
        assert await store.count("jobs") == 0

    @pytest.mark.parametrize(
        "doc",
        [
            [],
            "text",
            None,
            {"t": (1, 2)},
            {"b": b"bytes"},
            {"s": {1, 2}},
            {"f": float("nan")},
            {"f": float("inf")},
            {1: "int key"},
            {"nested": {"deeper": [{"x": object()}]}},
            {"big": 2**63},
            {"small": -(2**63) - 1},
            {"surrogate": "\udcff"},
            {"\ud800": "surrogate key"},
            {"nul": "a\x00b"},
            {"nul\x00key": 1},
            {"list": ["ok", ["a\x00"]]},
        ],
    )
    async def test_bad_document_writes_nothing(self, store: Store, doc: Any) -> None:
        await store.put("jobs", "a", {"n": 1})
        await expect_code("invalid_argument", store.put("jobs", "a", doc))
        await expect_code("invalid_argument", store.put("jobs", "b", doc))
        assert await store.get_with_version("jobs", "a") == ({"n": 1}, 1)
        assert await store.count("jobs") == 1
        await expect_code("invalid_argument", store.append_event("job.state", "a", doc))
        assert await store.events() == []

    async def test_too_deep_document(self, store: Store) -> None:
        doc: dict[str, Any] = {}
        inner = doc
        for _ in range(100):
            inner["x"] = {}
            inner = inner["x"]
        await expect_code("invalid_argument", store.put("jobs", "deep", doc))
        assert await store.get("jobs", "deep") is None

    async def test_bad_expected_version(self, store: Store) -> None:
        for bad in (-1, True, "1", 1.0):
            await expect_code("invalid_argument", store.put("jobs", "a", {}, expected_version=bad))
        assert await store.get("jobs", "a") is None

    @pytest.mark.parametrize(
        "field",
        ["", "a b", "1a", "a..b", "a.", ".a", "$.a", "a[0]", "a'); DROP TABLE documents; --", "a-b", "é", 5, None],
    )
    async def test_bad_field_names(self, store: Store, field: Any) -> None:
        await load_jobs(store)
        await expect_code("store_query_invalid", store.query("jobs", {field: "x"}))
        await expect_code("store_query_invalid", store.count("jobs", {field: "x"}))
        if field is not None:  # order_by=None means "by id"
            await expect_code("store_query_invalid", store.query("jobs", order_by=field))
        assert await store.count("jobs") == len(JOBS)

    @pytest.mark.parametrize("value", [[1], {"a": 1}, (1,), b"x", float("nan"), 2**64, object(), "\ud800", "a\x00"])
    async def test_bad_where_values(self, store: Store, value: Any) -> None:
        await expect_code("store_query_invalid", store.query("jobs", {"status": value}))
        await expect_code("store_query_invalid", store.count("jobs", {"status": value}))

    async def test_bad_query_arguments(self, store: Store) -> None:
        bad_calls = [
            store.query("jobs", "status=running"),  # type: ignore[arg-type]
            store.query("jobs", [("status", "x")]),  # type: ignore[arg-type]
            store.query("jobs", limit=-1),
            store.query("jobs", limit=10_001),
            store.query("jobs", limit=True),
            store.query("jobs", limit="5"),  # type: ignore[arg-type]
            store.query("jobs", offset=-1),
            store.query("jobs", desc="yes"),  # type: ignore[arg-type]
            store.query("jobs", contains=""),
            store.query("jobs", contains=5),  # type: ignore[arg-type]
            store.query("jobs", contains="x" * 2000),
            store.query("jobs", contains="\x00"),
            store.events(after_seq=-1),
            store.events(limit=-5),
            store.events(kind=5),  # type: ignore[arg-type]
            store.events(subject=b"x"),  # type: ignore[arg-type]
        ]
        for call in bad_calls:
            await expect_code("store_query_invalid", call)

    @pytest.mark.parametrize(
        ("kind", "subject"),
        [("", "s"), ("Peer.Joined", "s"), ("peer joined", "s"), ("peer..x", "s"), (None, "s"), ("a.b", ""), ("a.b", 1)],
    )
    async def test_bad_events(self, store: Store, kind: Any, subject: Any) -> None:
        await expect_code("invalid_argument", store.append_event(kind, subject, {}))
        assert await store.events() == []

    async def test_closed_store_refuses_calls(self, store: Store) -> None:
        await store.put("jobs", "a", {})
        await store.close()
        await store.close()  # harmless
        await expect_code("store_closed", store.get("jobs", "a"))
        await expect_code("store_closed", store.put("jobs", "a", {}))
        await expect_code("store_closed", store.events())
        with pytest.raises(AgoraError) as err:
            async with store.transaction():
                pass
        assert err.value.code == "store_closed"

    # --- unicode and size ---------------------------------------------------------------------------------

    async def test_unicode_everywhere(self, store: Store) -> None:
        doc = {
            "名前": "データ",
            "emoji": "🚀 launch",
            "rtl": "שלום",
            "ctl": "tab\tnl\n\x01\x7f",
            "nested": {"ключ": ["значение"]},
        }
        await store.put("jobs", "id-🚀-名前", doc)
        got = await store.get("jobs", "id-🚀-名前")
        assert exact(got) == exact(doc)
        assert await ids(store, {"emoji": "🚀 launch"}) == ["id-🚀-名前"]
        assert await ids(store, {"ctl": "tab\tnl\n\x01\x7f"}) == ["id-🚀-名前"]
        assert await ids(store, {"ctl": "tab"}) == []
        assert await ids(store, contains="ЗНАЧ") == ["id-🚀-名前"]
        assert await ids(store, contains="データ") == ["id-🚀-名前"]
        event = await store.append_event("job.state", "did:key:ünï", {"msg": "✓ done"})
        assert await store.events(subject="did:key:ünï") == [event]

    async def test_large_documents(self, store: Store) -> None:
        big = {"blob": "x" * 2_000_000 + "needle", "status": "big"}
        wide = {f"k{i}": i for i in range(10_000)}
        long_list = {"items": list(range(20_000)), "status": "long"}
        await store.put("jobs", "big", big)
        await store.put("jobs", "wide", wide)
        await store.put("jobs", "long", long_list)
        assert await store.get("jobs", "big") == big
        assert exact(await store.get("jobs", "wide")) == exact(wide)
        assert await store.get("jobs", "long") == long_list
        assert await ids(store, {"k9999": 9999}) == ["wide"]
        assert await ids(store, {"items": 19_999}) == ["long"]
        assert await ids(store, contains="NEEDLE") == ["big"]
        await expect_code("invalid_argument", store.put("jobs", "huge", {"blob": "x" * (17 * 1024 * 1024)}))
        assert await store.get("jobs", "huge") is None

    # --- properties ---------------------------------------------------------------------------------------

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(doc=json_docs)
    async def test_random_documents_round_trip_identically(self, store: Store, doc: dict[str, Any]) -> None:
        id = f"h{next(_ids)}"
        await store.put("random", id, doc)
        assert exact(await store.get("random", id)) == exact(doc)
        event = await store.append_event("test.random", id, doc)
        assert exact(event.data) == exact(doc)
        (stored,) = await store.events(after_seq=event.seq - 1, limit=1)
        assert exact(stored.data) == exact(doc)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(value=json_scalars, other=json_scalars)
    async def test_random_scalars_are_found_by_equality(self, store: Store, value: Any, other: Any) -> None:
        id = f"s{next(_ids)}"
        collection = f"scalars{next(_ids)}"
        await store.put(collection, id, {"v": value, "nested": {"list": [other, value]}})
        assert await store.count(collection, {"v": value}) == 1
        assert await store.count(collection, {"nested.list": value}) == 1
        assert await store.count(collection, {"nested.list": other}) == 1
