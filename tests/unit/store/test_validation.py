"""The pure parts of the store: argument checks, the reference query semantics, the generated SQL."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from agora.errors import AgoraError
from agora.store import validation as v
from agora.store.sqlite import build_select, build_where


@pytest.mark.parametrize("name", ["a", "status", "spec.engine", "_x.y_2.z", "A1.b", ".".join(["k"] * 16)])
def test_good_field_names(name: str) -> None:
    assert v.check_field(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "1a", "a.", ".a", "a..b", "a b", "a-b", "$.a", "a[0]", "a'b", 'a"b', "a;b", "é", ".".join(["k"] * 17), "a\n"],
)
def test_bad_field_names(name: str) -> None:
    with pytest.raises(AgoraError) as err:
        v.check_field(name)
    assert err.value.code == "store_query_invalid"


def test_encode_doc_names_the_bad_path() -> None:
    with pytest.raises(AgoraError) as err:
        v.encode_doc({"spec": {"tasks": [{"ok": 1}, {"env": b"x"}]}})
    assert err.value.code == "invalid_argument"
    assert err.value.details["path"] == "doc.spec.tasks[1].env"
    assert "bytes" in err.value.message


def test_encode_doc_is_compact_and_keeps_order() -> None:
    assert v.encode_doc({"b": 1, "a": [True, None, 1.5, "é"]}) == '{"b":1,"a":[true,null,1.5,"é"]}'
    assert v.decode_doc(v.encode_doc({"z": {"y": -0.0}})) == {"z": {"y": -0.0}}


@pytest.mark.parametrize(
    ("stored", "wanted", "equal"),
    [
        (True, True, True),
        (True, 1, False),
        (1, True, False),
        (0, False, False),
        (1, 1.0, True),
        (2.5, 2.5, True),
        ("1", 1, False),
        (None, None, True),
        (None, 0, False),
        ("a", "A", False),
        ([1], 1, False),
    ],
)
def test_scalar_equal_is_strict_about_types(stored: Any, wanted: Any, equal: bool) -> None:
    assert v.scalar_equal(stored, wanted) is equal


def test_field_matches() -> None:
    doc = {"a": {"b": [1, "x", None]}, "s": "str", "n": None}
    assert v.field_matches(doc, "a.b", "x")
    assert v.field_matches(doc, "a.b", 1.0)
    assert v.field_matches(doc, "a.b", None)
    assert not v.field_matches(doc, "a.b", True)
    assert v.field_matches(doc, "missing", None)
    assert v.field_matches(doc, "n", None)
    assert not v.field_matches(doc, "s", None)
    assert not v.field_matches(doc, "s.deeper", "str")
    assert v.field_matches(doc, "s.deeper", None)  # a path through a string is missing


def test_sort_key_ranks_types() -> None:
    docs = [{"v": "b"}, {"v": [1]}, {"v": 2}, {}, {"v": False}, {"v": -1.5}, {"v": None}, {"v": True}, {"v": "a"}]
    ordered = sorted(docs, key=lambda d: v.sort_key(d, "v"))
    assert ordered == [
        {},
        {"v": None},
        {"v": False},
        {"v": True},
        {"v": -1.5},
        {"v": 2},
        {"v": "a"},
        {"v": "b"},
        {"v": [1]},
    ]


def test_contains_casefolds_both_sides() -> None:
    spec = v.build_query(contains="STRASSE")
    assert spec.needle == "strasse"
    assert v.matches({"x": ["Straße"]}, spec)
    assert not v.matches({"STRASSE": 1}, spec)


def test_build_query_checks_everything() -> None:
    spec = v.build_query({"a.b": 1, "c": None}, order_by="a", desc=True, limit=5, offset=2)
    assert spec == v.QuerySpec((("a.b", 1), ("c", None)), "a", True, 5, 2, None)
    for kwargs in ({"limit": 10_001}, {"offset": -1}, {"desc": 1}, {"order_by": "a b"}, {"contains": ""}):
        with pytest.raises(AgoraError) as err:
            v.build_query(**kwargs)
        assert err.value.code == "store_query_invalid", kwargs


HOSTILE = "a') OR 1=1; DROP TABLE documents; --"


def test_sql_never_contains_caller_text() -> None:
    """Names are validated, and even a validated name reaches SQL only as a bound parameter."""
    spec = v.QuerySpec(
        where=(("status", "x"), ("spec.engine", None), ("n", 1), ("f", True)),
        order_by="spec.prio",
        desc=True,
        limit=7,
        offset=3,
        needle="needle",
    )
    sql, params = build_select("jobs", spec)
    for text in ("status", "spec.engine", "spec.prio", "needle", "jobs"):
        assert text not in sql
    assert "$.status" in params and "$.spec.prio" in params and "needle" in params
    assert sql.count("?") == len(params)
    where, where_params = build_where("jobs", spec)
    assert where.count("?") == len(where_params)


def test_hostile_value_is_just_data() -> None:
    """A value that would break out of a quoted string is compared, not executed."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE documents (collection TEXT, id TEXT, version INTEGER, doc TEXT)")
    conn.create_function("agora_casefold", 1, lambda s: s.casefold() if isinstance(s, str) else None)
    conn.execute("INSERT INTO documents VALUES ('jobs', 'a', 1, ?)", (v.encode_doc({"status": HOSTILE}),))
    conn.execute("INSERT INTO documents VALUES ('jobs', 'b', 1, ?)", (v.encode_doc({"status": "other"}),))
    for where, expected in (({"status": HOSTILE}, ["a"]), ({"status": "x"}, [])):
        sql, params = build_select("jobs", v.build_query(where))
        assert [r[0] for r in conn.execute(sql, params)] == expected
    sql, params = build_select("jobs", v.build_query(contains="drop table"))
    assert [r[0] for r in conn.execute(sql, params)] == ["a"]
    assert conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0] == 2
