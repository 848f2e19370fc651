"""The UCAN policy language: predicates over an invocation's `args` (UCAN Delegation spec, "Policy").

A policy is a list of statements, all of which must hold:
    ["==", sel, value] ["!=", sel, value] ["<"|"<="|">"|">=", sel, number] ["like", sel, glob]
    ["not", stmt] ["and", [stmt...]] ["or", [stmt...]] ["all"|"any", sel, stmt]
`Policy.from_json(rules)` checks the whole tree once (raising `ucan_policy_invalid` with the path of the
bad part) and compiles it; `matches(args)` only evaluates.

Decisions, where Python or the spec leave room:
- Kinds are IPLD kinds, except that numbers compare by value: a bool is never a number, so
  `["==", ".a", 1]` does not match `true`, but int 1 and float 1.0 are equal, both for `==` (a deep
  comparison, so also inside lists and maps) and for the ordering operators. The spec says numeric
  comparisons are agnostic to numeric type (`1 == 1.0 == 1.00`), and the working group's policy
  fixtures (`fixtures/1.0.0/policy.json` of ucan-wg/spec) require `["==", ".b", 1.0]` to hold for
  `{"b": 1}`. The comparison is exact (Python compares int and float without rounding), so
  `2**53 + 1 != float(2**53)`. The ordering operators are false on non-numbers.
- `like` is a glob with `*` (zero or more characters); `\\*` is a literal star and `\\\\` a literal
  backslash. Matching is linear-ish (chunk search), never a backtracking regex an argument could blow up.
- A selector that cannot be resolved makes its statement "unknown": false where it stands, and
  `not` keeps it unknown instead of turning it true, so a policy never passes because a field it
  tests is absent. `and`/`all` are false if any part is false, `or`/`any` true if any part is true
  (Kleene logic); the whole policy passes only when it is definitely true.
- `["or", []]` is true and `["and", []]` is true, as the spec says for both.
- `all`/`any` accept one statement (the spec's form) or a list of statements (read as `and`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from agora.codec import CID
from agora.errors import AgoraError
from agora.ucan.selector import MISSING, Segment, parse_selector, resolve

TRUE: Final = 1
FALSE: Final = 0
UNKNOWN: Final = 2
MAX_DEPTH = 32
_INT_RANGE = 2**63  # DAG-CBOR ints; wider values cannot occur in decoded args

_Eval = Callable[[Any], int]


def _invalid(path: str, why: str) -> AgoraError:
    return AgoraError("ucan_policy_invalid", f"{path}: {why}", details={"path": path})


def _is_number(v: object) -> bool:
    t = type(v)
    return t is int or t is float


def ipld_equal(a: Any, b: Any) -> bool:
    """Deep equality over IPLD values; numbers compare by exact value across int and float (1 == 1.0),
    a bool is never a number (true != 1)."""
    ta, tb = type(a), type(b)
    if ta is tuple:
        ta = list
    if tb is tuple:
        tb = list
    if ta is not tb:
        return (ta is int or ta is float) and (tb is int or tb is float) and bool(a == b)
    if ta is list:
        return len(a) == len(b) and all(ipld_equal(x, y) for x, y in zip(a, b, strict=True))
    if ta is dict:
        return a.keys() == b.keys() and all(ipld_equal(v, b[k]) for k, v in a.items())
    return bool(a == b)


def _check_ipld(value: Any, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _invalid(path, "value nested too deeply")
    t = type(value)
    if value is None or t is bool or t is str or t is bytes or t is CID:
        return
    if t is int:
        if not -_INT_RANGE <= value < _INT_RANGE:
            raise _invalid(path, "integer out of the 64-bit range")
        return
    if t is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise _invalid(path, "NaN and infinities are not IPLD values")
        return
    if t is list or t is tuple:
        for i, v in enumerate(value):
            _check_ipld(v, f"{path}[{i}]", depth + 1)
        return
    if t is dict:
        for k, v in value.items():
            if type(k) is not str:
                raise _invalid(path, "map keys must be strings")
            _check_ipld(v, f"{path}.{k}", depth + 1)
        return
    raise _invalid(path, f"{t.__name__} is not an IPLD value")


def glob_match(chunks: tuple[str, ...], text: str) -> bool:
    """`chunks` are the literal parts between wildcards (len >= 1; a pattern without `*` has one)."""
    if len(chunks) == 1:
        return text == chunks[0]
    first, last = chunks[0], chunks[-1]
    if len(text) < len(first) + len(last) or not text.startswith(first) or not text.endswith(last):
        return False
    pos, end = len(first), len(text) - len(last)
    for chunk in chunks[1:-1]:  # greedy leftmost placement is optimal for `*`-only globs
        found = text.find(chunk, pos, end)
        if found < 0:
            return False
        pos = found + len(chunk)
    return True


def parse_glob(pattern: str) -> tuple[str, ...]:
    chunks: list[str] = []
    cur: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n and pattern[i + 1] in "*\\":
            cur.append(pattern[i + 1])
            i += 2
            continue
        if c == "*":
            chunks.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    chunks.append("".join(cur))
    return tuple(chunks)


def _selected(segments: tuple[Segment, ...], test: Callable[[Any], bool]) -> _Eval:
    if not segments:
        return lambda args: TRUE if test(args) else FALSE

    def run(args: Any) -> int:
        value = resolve(segments, args)
        if value is MISSING:
            return UNKNOWN
        return TRUE if test(value) else FALSE

    return run


def _ordering(op: str, bound: int | float) -> Callable[[Any], bool]:
    if op == "<":
        return lambda v: _is_number(v) and v < bound
    if op == "<=":
        return lambda v: _is_number(v) and v <= bound
    if op == ">":
        return lambda v: _is_number(v) and v > bound
    return lambda v: _is_number(v) and v >= bound


def _conj(parts: Sequence[_Eval]) -> _Eval:
    def run(args: Any) -> int:
        result = TRUE
        for part in parts:
            r = part(args)
            if r == FALSE:
                return FALSE
            if r == UNKNOWN:
                result = UNKNOWN
        return result

    return run


def _disj(parts: Sequence[_Eval]) -> _Eval:
    if not parts:
        return lambda args: TRUE

    def run(args: Any) -> int:
        result = FALSE
        for part in parts:
            r = part(args)
            if r == TRUE:
                return TRUE
            if r == UNKNOWN:
                result = UNKNOWN
        return result

    return run


def _negate(inner: _Eval) -> _Eval:
    def run(args: Any) -> int:
        r = inner(args)
        return UNKNOWN if r == UNKNOWN else TRUE - r

    return run


def _quantify(segments: tuple[Segment, ...], inner: _Eval, every: bool) -> _Eval:
    def run(args: Any) -> int:
        value = resolve(segments, args)
        if value is MISSING:
            return UNKNOWN
        t = type(value)
        if t is dict:
            items: Any = value.values()
        elif t is list or t is tuple:
            items = value
        else:
            return FALSE  # quantifying over a non-collection is false, never an exception
        result = TRUE if every else FALSE
        for item in items:
            r = inner(item)
            if every and r == FALSE:
                return FALSE
            if not every and r == TRUE:
                return TRUE
            if r == UNKNOWN:
                result = UNKNOWN
        return result

    return run


def _compile(stmt: Any, path: str, depth: int) -> _Eval:
    if depth > MAX_DEPTH:
        raise _invalid(path, f"statements nested deeper than {MAX_DEPTH}")
    if type(stmt) is not list and type(stmt) is not tuple:
        raise _invalid(path, f"a statement is an array [operator, ...], got {type(stmt).__name__}")
    if not stmt or type(stmt[0]) is not str:
        raise _invalid(path, "a statement starts with its operator string")
    op, n = stmt[0], len(stmt)
    if op in ("and", "or"):
        if n != 2 or (type(stmt[1]) is not list and type(stmt[1]) is not tuple):
            raise _invalid(path, f'"{op}" takes one array of statements: ["{op}", [...]]')
        parts = [_compile(s, f"{path}[1][{i}]", depth + 1) for i, s in enumerate(stmt[1])]
        return _conj(parts) if op == "and" else _disj(parts)
    if op == "not":
        if n != 2:
            raise _invalid(path, '"not" takes one statement: ["not", stmt]')
        return _negate(_compile(stmt[1], f"{path}[1]", depth + 1))
    if op in ("all", "any"):
        if n != 3:
            raise _invalid(path, f'"{op}" takes a selector and a statement: ["{op}", ".sel", stmt]')
        segments = _selector(stmt[1], f"{path}[1]")
        body = stmt[2]
        if (type(body) is list or type(body) is tuple) and (not body or type(body[0]) is not str):
            inner = _conj([_compile(s, f"{path}[2][{i}]", depth + 1) for i, s in enumerate(body)])
        else:
            inner = _compile(body, f"{path}[2]", depth + 1)
        return _quantify(segments, inner, op == "all")
    if op in ("==", "!=", "<", "<=", ">", ">=", "like"):
        if n != 3:
            raise _invalid(path, f'"{op}" takes a selector and a value: ["{op}", ".sel", value]')
        segments = _selector(stmt[1], f"{path}[1]")
        arg = stmt[2]
        if op in ("==", "!="):
            _check_ipld(arg, f"{path}[2]", depth + 1)
            expected = arg
            eq = _selected(segments, lambda v: ipld_equal(v, expected))
            return eq if op == "==" else _negate(eq)
        if op == "like":
            if type(arg) is not str:
                raise _invalid(f"{path}[2]", f'"like" takes a string pattern, got {type(arg).__name__}')
            chunks = parse_glob(arg)
            return _selected(segments, lambda v: type(v) is str and glob_match(chunks, v))
        if not _is_number(arg):
            raise _invalid(f"{path}[2]", f'"{op}" compares with a number, got {type(arg).__name__}')
        _check_ipld(arg, f"{path}[2]", depth + 1)
        return _selected(segments, _ordering(op, arg))
    raise _invalid(path, f"unknown operator {op[:40]!r}")


def _selector(text: Any, path: str) -> tuple[Segment, ...]:
    try:
        return parse_selector(text)
    except AgoraError as exc:
        raise _invalid(path, exc.message) from None


class Policy:
    """A compiled policy; immutable. `rules` is the policy as given (what goes into a delegation)."""

    __slots__ = ("_run", "rules")

    def __init__(self, rules: list[Any], run: _Eval) -> None:
        self.rules = rules
        self._run = run

    @classmethod
    def from_json(cls, rules: Any) -> Policy:
        if isinstance(rules, Policy):
            return rules
        if type(rules) is not list and type(rules) is not tuple:
            raise _invalid("pol", f"a policy is an array of statements, got {type(rules).__name__}")
        parts = [_compile(s, f"pol[{i}]", 1) for i, s in enumerate(rules)]
        return cls(list(rules), _conj(parts))

    def matches(self, args: Any) -> bool:
        """True only when every statement definitely holds for `args`."""
        if not self.rules:
            return True
        return self._run(args) == TRUE

    def __bool__(self) -> bool:  # an empty policy allows everything: make `if policy:` mean "has rules"
        return bool(self.rules)

    def __repr__(self) -> str:
        return f"Policy({self.rules!r})"


__all__ = ["Policy", "glob_match", "ipld_equal", "parse_glob"]
