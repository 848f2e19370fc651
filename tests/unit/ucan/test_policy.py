"""The policy language, from the spec's own examples to the corners Python gets wrong by default."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.codec import CID
from agora.errors import AgoraError
from agora.ucan import Policy


def holds(rules: list[Any], args: Any) -> bool:
    return Policy.from_json(rules).matches(args)


MAIL = {
    "from": "alice@example.com",
    "to": ["bob@example.com", "carol@not.example.com", "dan@example.com"],
    "cc": ["fraud@example.com"],
    "title": "Meeting Confirmation",
    "body": "I'll see you on Tuesday",
}


@pytest.mark.parametrize(
    ("selector", "value"),
    [
        (".", MAIL),
        (".title", "Meeting Confirmation"),
        (".cc", ["fraud@example.com"]),
        (".to[1]", "carol@not.example.com"),
        (".to[-1]", "dan@example.com"),
        (".to[99]?", None),
        ('.["title"]', "Meeting Confirmation"),
        ('.["from"]', "alice@example.com"),
        (".to[0:2]", ["bob@example.com", "carol@not.example.com"]),
        (".to[1:]", ["carol@not.example.com", "dan@example.com"]),
        (".to[:-2]", ["bob@example.com"]),
        (".cc[]", ["fraud@example.com"]),
        (".nope?", None),
        (".nope???", None),
        (".title[0:7]", "Meeting"),
    ],
)
def test_spec_selector_table(selector: str, value: Any) -> None:
    assert holds([["==", selector, value]], MAIL)


def test_unresolvable_selector_is_false_and_never_flips_under_not() -> None:
    assert not holds([["==", ".to[99]", "x"]], MAIL)
    assert not holds([["not", ["==", ".to[99]", "x"]]], MAIL)
    assert not holds([["!=", ".missing", 1]], {})
    assert not holds([["not", ["==", ".missing", None]]], {})
    assert holds([["==", ".missing?", None]], {})
    # resolution stops at the first failure even if a later segment is optional
    assert not holds([["==", ".a.b?", None]], {})
    assert holds([["==", ".a?.b?", None]], {})
    # but a definite answer elsewhere still decides `or` / `and`
    assert holds([["or", [["==", ".missing", 1], ["==", ".title", "Meeting Confirmation"]]]], MAIL)
    assert holds([["not", ["and", [["==", ".missing", 1], ["==", ".title", "x"]]]]], MAIL)


def test_quantifiers_spec_examples() -> None:
    args = {"a": [{"b": 1}, {"b": 2}, {"z": [7, 8, 9]}]}
    assert not holds([["all", ".a", [">", ".b", 0]]], args)
    assert holds([["any", ".a", ["==", ".b", 2]]], args)
    assert holds([["all", ".a[0:2]", [">", ".b", 0]]], args)
    nested = {"newsletters": [{"recipients": [{"email": "fraud@example.com"}, {"email": "x@y"}]}]}
    assert holds([["all", ".newsletters", ["any", ".recipients", ["==", ".email", "fraud@example.com"]]]], nested)


def test_quantifiers_over_maps_non_collections_and_empty() -> None:
    assert holds([["all", ".m", [">", ".", 0]]], {"m": {"x": 1, "y": 2}})
    assert not holds([["all", ".m", [">", ".", 1]]], {"m": {"x": 1, "y": 2}})
    assert not holds([["all", ".s", ["==", ".", "a"]]], {"s": "aaa"})
    assert not holds([["any", ".n", ["==", ".", 1]]], {"n": 1})
    assert holds([["all", ".e", ["==", ".", 1]]], {"e": []})
    assert not holds([["any", ".e", ["==", ".", 1]]], {"e": []})
    assert holds([["all", ".a", [["==", ".k", 1], [">", ".v", 0]]]], {"a": [{"k": 1, "v": 2}]})


def test_spec_validation_walkthrough() -> None:
    pol = [["==", ".from", "alice@example.com"], ["any", ".to", ["like", ".", "*@example.com"]]]
    assert holds(pol, {"from": "alice@example.com", "to": ["bob@example.com", "carol@elsewhere.example.com"]})
    assert not holds(pol, {"from": "alice@example.com", "to": ["carol@elsewhere.example.com"]})


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("Alice*, Bob, Carol.", True),
        ("Alice*, Bob, Dan, Erin, Carol.", True),
        ("Alice*, Bob  , Carol.", True),
        ("Alice*, Bob*, Carol.", True),
        ("Alice*, Bob, Carol", False),
        ("Alice*, Bob*, Carol!", False),
        ("Alice, Bob, Carol.", False),
        ("Alice Cooper, Bob, Carol.", False),
        (" Alice*, Bob, Carol. ", False),
    ],
)
def test_like_spec_examples(text: str, ok: bool) -> None:
    assert holds([["like", ".", "Alice\\*, Bob*, Carol."]], text) is ok


@pytest.mark.parametrize(
    ("pattern", "text", "ok"),
    [
        ("*", "", True),
        ("*", "anything", True),
        ("a*", "a", True),
        ("*a", "ba", True),
        ("a*a", "a", False),
        ("a*a", "aa", True),
        ("*ab*ab*", "xabyab", True),
        ("*ab*ab*", "xab", False),
        ("a\\\\*", "a\\anything", True),
        ("plain", "plain", True),
        ("plain", "plainer", False),
    ],
)
def test_like_edges(pattern: str, text: str, ok: bool) -> None:
    assert holds([["like", ".", pattern]], text) is ok


def test_like_on_non_string_is_false() -> None:
    assert not holds([["like", ".", "*"]], 5)
    assert not holds([["like", ".", "*"]], b"bytes")


def test_like_is_not_quadratic_backtracking() -> None:
    text = "a" * 20_000
    assert not holds([["like", ".", "*a*a*a*a*a*a*a*a*a*a*b"]], text)


def test_kinds_bool_is_not_a_number() -> None:
    assert not holds([["==", ".a", 1]], {"a": True})
    assert not holds([["==", ".a", True]], {"a": 1})
    assert not holds([["==", ".a", 0]], {"a": False})
    assert not holds([[">", ".a", 0]], {"a": True})
    assert not holds([["==", ".a", [1]]], {"a": [True]})
    assert holds([["==", ".a", True]], {"a": True})


def test_kinds_int_and_float() -> None:
    # numbers compare by value across int and float, for == as for the ordering operators: the spec's
    # "1 == 1.0 == 1.00", and ucan-wg/spec fixtures/1.0.0/policy.json holds ["==", ".b", 1.0] for {"b": 1}
    assert holds([["==", ".a", 1]], {"a": 1.0})
    assert holds([["==", ".a", 1.0]], {"a": 1})
    assert holds([["==", ".a", 1.0]], {"a": 1.0})
    assert holds([["==", ".a", 0]], {"a": -0.0})
    assert not holds([["==", ".a", 1]], {"a": 1.5})
    # != is the negation of ==
    assert not holds([["!=", ".a", 1]], {"a": 1.0})
    assert not holds([["!=", ".a", 1.0]], {"a": 1})
    assert holds([["!=", ".a", 2.0]], {"a": 1})
    # equality stays deep: numbers inside lists and maps compare the same way
    assert holds([["==", ".a", [1, {"b": 2}]]], {"a": [1.0, {"b": 2.0}]})
    assert not holds([["!=", ".a", {"b": [3]}]], {"a": {"b": [3.0]}})
    # the comparison is exact: no rounding of a large int to the nearest float
    assert not holds([["==", ".a", 2**53 + 1]], {"a": float(2**53)})
    assert holds([["==", ".a", 2**53]], {"a": float(2**53)})
    # ordering is numeric-type agnostic (spec)
    assert holds([["<=", ".a", 1]], {"a": 1.0})
    assert holds([[">", ".a", 1.5]], {"a": 2})
    assert holds([[">=", ".a", 2]], {"a": 2.0})
    assert holds([["<", ".a", 2.0]], {"a": 1}) and holds([[">", ".a", 0.0]], {"a": 1})
    assert not holds([["<", ".a", 1.0]], {"a": 1}) and not holds([[">", ".a", 1]], {"a": 1.0})
    assert not holds([["<", ".a", 2**53]], {"a": float(2**53)})
    assert holds([["<", ".a", 2**53 + 1]], {"a": float(2**53)})


def test_numbers_equal_by_value_are_still_not_bools() -> None:
    assert not holds([["==", ".a", 1.0]], {"a": True})
    assert not holds([["==", ".a", True]], {"a": 1.0})
    assert not holds([["==", ".a", 0.0]], {"a": False})
    assert holds([["!=", ".a", True]], {"a": 1.0})
    assert not holds([["==", ".a", [1.0]]], {"a": [True]})


def test_ordering_on_non_numbers_is_false() -> None:
    for v in ("5", None, [1], {"a": 1}, b"\x01"):
        assert not holds([[">", ".a", 0]], {"a": v})
        assert not holds([["<", ".a", 10]], {"a": v})


def test_deep_equality() -> None:
    v = {"a": [1, 2, {"b": 3}], "c": b"\x00", "d": CID.of(b"x"), "e": None}
    assert holds([["==", ".", v]], v)
    assert not holds([["==", ".", {**v, "e": 0}]], v)
    assert not holds([["==", ".a", [1, 2]]], v)
    assert not holds([["==", ".a", [1, 2, {"b": 3, "x": 1}]]], v)
    assert holds([["==", ".d", CID.of(b"x")]], v)
    assert not holds([["==", ".c", "\x00"]], v)


def test_bytes_selection() -> None:
    assert holds([["==", ".b[3]", 0x8C]], {"b": bytes.fromhex("d6a9c18cf8c4")})
    assert holds([["==", ".b[-1]", 0xC4]], {"b": bytes.fromhex("d6a9c18cf8c4")})
    assert holds([["==", ".b[0:2]", bytes.fromhex("d6a9")]], {"b": bytes.fromhex("d6a9c18cf8c4")})


def test_iterator_applies_the_rest_of_the_path_to_every_child() -> None:
    args = {"items": [{"p": 1}, {"p": 2}], "m": {"x": {"p": 3}}}
    assert holds([["==", ".items[].p", [1, 2]]], args)
    assert holds([["==", ".m[].p", [3]]], args)
    assert not holds([["==", ".items[].q", []]], args)  # a child that cannot resolve fails the whole selection
    assert holds([["==", ".items[].q?", [None, None]]], args)
    assert holds([["==", ".none[]?", []]], {"none": None})


def test_connectives() -> None:
    assert holds([["and", []]], {})
    assert holds([["or", []]], {})  # the spec: "An empty array MUST be treated as true"
    assert holds([], {"anything": 1})
    assert not holds([["or", [["==", ".a", 2], ["==", ".a", 3]]]], {"a": 1})
    assert holds([["not", ["or", [["==", ".a", 2], ["==", ".a", 3]]]]], {"a": 1})


def _deep(n: int) -> list[Any]:
    stmt: list[Any] = ["==", ".a", 1]
    for _ in range(n):
        stmt = ["not", stmt]
    return stmt


INVALID = {
    "not a list": ({"==": 1}, "pol"),
    "statement not a list": (["==", ".a", 1], "pol[0]"),
    "empty statement": ([[]], "pol[0]"),
    "unknown op": ([["~", ".a", 1]], "pol[0]"),
    "op not a string": ([[1, ".a", 1]], "pol[0]"),
    "arity": ([["==", ".a"]], "pol[0]"),
    "selector without dot": ([["==", "a", 1]], "pol[0][1]"),
    "double dot": ([["==", "..a", 1]], "pol[0][1]"),
    "trailing dot": ([["==", ".a.", 1]], "pol[0][1]"),
    "bad bracket": ([["==", ".a[x]", 1]], "pol[0][1]"),
    "unterminated": ([["==", '.["a', 1]], "pol[0][1]"),
    "selector not a string": ([["==", 5, 1]], "pol[0][1]"),
    "ordering with string": ([[">", ".a", "1"]], "pol[0][2]"),
    "ordering with bool": ([[">", ".a", True]], "pol[0][2]"),
    "like with int": ([["like", ".a", 1]], "pol[0][2]"),
    "and not a list": ([["and", ["==", ".a", 1], ["==", ".b", 1]]], "pol[0]"),
    "nested bad": ([["or", [["==", ".a", 1], ["nope"]]]], "pol[0][1][1]"),
    "not with list": ([["not", ["==", ".a", 1], 2]], "pol[0]"),
    "quantifier arity": ([["all", ".a"]], "pol[0]"),
    "value not ipld": ([["==", ".a", {1: 2}]], "pol[0][2]"),
    "value nan": ([["==", ".a", float("nan")]], "pol[0][2]"),
    "too deep": ([_deep(40)], "pol[0]"),
}


@pytest.mark.parametrize(("rules", "where"), INVALID.values(), ids=INVALID.keys())
def test_malformed_policies_name_the_problem(rules: Any, where: str) -> None:
    with pytest.raises(AgoraError) as err:
        Policy.from_json(rules)
    assert err.value.code == "ucan_policy_invalid"
    assert err.value.message.startswith(where), err.value.message


# -- properties ---------------------------------------------------------------------------------

ipld_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.binary(max_size=8),
)
ipld_values = st.recursive(
    ipld_scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=4), kids, max_size=4),
    max_leaves=12,
)
args_maps = st.dictionaries(st.sampled_from(["a", "b", "c"]), ipld_values, min_size=3, max_size=3)


def _leaf() -> st.SearchStrategy[list[Any]]:
    sel = st.sampled_from([".a", ".b", ".c", "."])
    return st.one_of(
        st.tuples(st.sampled_from(["==", "!="]), sel, ipld_values).map(list),
        st.tuples(st.sampled_from(["<", "<=", ">", ">="]), sel, st.integers(-5, 5) | st.floats(-5, 5)).map(list),
        st.tuples(st.just("like"), sel, st.text(alphabet="ab*", max_size=4)).map(list),
    )


statements = st.recursive(
    _leaf(),
    lambda kids: st.one_of(
        st.tuples(st.just("not"), kids).map(list),
        st.tuples(st.sampled_from(["and", "or"]), st.lists(kids, max_size=3)).map(list),
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(statements, args_maps)
def test_not_inverts_when_every_selector_resolves(stmt: list[Any], args: dict[str, Any]) -> None:
    assert holds([["not", stmt]], args) is (not holds([stmt], args))


@settings(max_examples=200, deadline=None)
@given(st.lists(statements, max_size=4), args_maps)
def test_and_or_agree_with_all_any_of_python(stmts: list[list[Any]], args: dict[str, Any]) -> None:
    each = [holds([s], args) for s in stmts]
    assert holds([["and", stmts]], args) is all(each)
    assert holds(stmts, args) is all(each)  # the top level is an implicit and
    assert holds([["or", stmts]], args) is (any(each) or not stmts)


@settings(max_examples=200, deadline=None)
@given(ipld_values)
def test_equality_is_reflexive_and_inequality_its_negation(value: Any) -> None:
    assert holds([["==", ".v", value]], {"v": value})
    assert not holds([["!=", ".v", value]], {"v": value})


@settings(max_examples=200, deadline=None)
@given(st.integers(-(2**60), 2**60), st.integers(-(2**60), 2**60))
def test_ordering_matches_integer_order(x: int, bound: int) -> None:
    assert holds([["<", ".x", bound]], {"x": x}) is (x < bound)
    assert holds([[">=", ".x", bound]], {"x": x}) is (x >= bound)
    assert holds([["<=", ".x", float(bound)]], {"x": x}) is (x <= float(bound))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab*\\", max_size=6), st.text(alphabet="ab*\\", max_size=10))
def test_like_agrees_with_a_reference_matcher(pattern: str, text: str) -> None:
    import re

    regex, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "*\\":
            regex += re.escape(pattern[i + 1])
            i += 2
            continue
        regex += ".*" if c == "*" else re.escape(c)
        i += 1
    assert holds([["like", ".", pattern]], text) is (re.fullmatch(regex, text, re.DOTALL) is not None)


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.integers() | st.text(max_size=3), lambda k: st.lists(k, max_size=3), max_leaves=8))
def test_garbage_policies_raise_only_policy_invalid(rules: Any) -> None:
    try:
        Policy.from_json(rules if isinstance(rules, list) else [rules]).matches({"a": 1})
    except AgoraError as exc:
        assert exc.code == "ucan_policy_invalid"
