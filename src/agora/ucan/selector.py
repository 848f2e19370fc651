"""jq-style selectors of the UCAN policy language: parse once, resolve against invocation args.

Grammar (UCAN Delegation spec, "Selectors"): `.` identity; `.foo` field; `.["any key"]` / `["k"]` quoted
field; `[3]`, `[-1]` index (lists and bytes); `[1:3]`, `[:-1]` slices (lists, bytes, text); `[]` every
value of a list or map; `?` after a segment makes it optional (repeats count once).

Resolution returns a value or `MISSING`:
- a missing field, an index out of range or a segment applied to the wrong kind fails, unless the
  segment is optional, in which case it yields null and resolution continues;
- selectors resolve left to right and stop at the first failure, even if a later segment is optional;
- `[]` applies the rest of the path to every child and fails if any child fails (a quantifier must
  never pass because the children it could not read were silently dropped); on null with `?` it
  yields an empty list.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

from agora.errors import AgoraError


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INDEX = re.compile(r"\[(-?\d+)\]")
_SLICE = re.compile(r"\[(-?\d+)?:(-?\d+)?\]")
_MAX_INDEX = 2**53  # the spec's integer range; anything larger is a typo or an attack

# segment kinds
FIELD, INDEX, SLICE, ITER = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Segment:
    kind: int
    optional: bool
    key: str = ""
    index: int = 0
    start: int | None = None
    stop: int | None = None


def _invalid(text: str, why: str) -> AgoraError:
    return AgoraError("ucan_policy_invalid", f"selector {text[:80]!r}: {why}")


def parse_selector(text: object) -> tuple[Segment, ...]:
    """Parse a selector string; raises AgoraError("ucan_policy_invalid") naming the problem."""
    if not isinstance(text, str):
        raise AgoraError("ucan_policy_invalid", f"a selector is a string, got {type(text).__name__}")
    if not text.startswith("."):
        raise _invalid(text, "must start with '.'")
    if text == ".":
        return ()
    segments: list[Segment] = []
    pos, n = 0, len(text)
    while pos < n:
        ch = text[pos]
        if ch == ".":
            if pos + 1 >= n:
                raise _invalid(text, "must not end with '.' after a segment")
            nxt = text[pos + 1]
            if nxt == ".":
                raise _invalid(text, "'..' is not allowed")
            if nxt == "[":
                pos += 1
                continue
            m = _FIELD.match(text, pos + 1)
            if not m:
                raise _invalid(text, f"expected a field name at offset {pos + 1}")
            seg_kind, key, pos = FIELD, m.group(0), m.end()
            seg = Segment(FIELD, False, key=key)
        elif ch == "[":
            seg, pos = _bracket(text, pos)
            seg_kind = seg.kind
        else:
            raise _invalid(text, f"unexpected {ch!r} at offset {pos}")
        optional = False
        while pos < n and text[pos] == "?":
            optional = True
            pos += 1
        if optional:
            seg = Segment(seg_kind, True, seg.key, seg.index, seg.start, seg.stop)
        segments.append(seg)
    return tuple(segments)


def _bracket(text: str, pos: int) -> tuple[Segment, int]:
    if text.startswith("[]", pos):
        return Segment(ITER, False), pos + 2
    if text.startswith('["', pos):
        try:
            key, end = json.JSONDecoder().raw_decode(text, pos + 1)
        except json.JSONDecodeError:
            raise _invalid(text, f"bad quoted field at offset {pos}") from None
        if end >= len(text) or text[end] != "]":
            raise _invalid(text, f"expected ']' at offset {end}")
        return Segment(FIELD, False, key=key), end + 1
    m = _INDEX.match(text, pos)
    if m:
        index = int(m.group(1))
        if abs(index) > _MAX_INDEX:
            raise _invalid(text, "index out of range")
        return Segment(INDEX, False, index=index), m.end()
    m = _SLICE.match(text, pos)
    if m:
        start = int(m.group(1)) if m.group(1) is not None else None
        stop = int(m.group(2)) if m.group(2) is not None else None
        if any(v is not None and abs(v) > _MAX_INDEX for v in (start, stop)):
            raise _invalid(text, "slice bound out of range")
        return Segment(SLICE, False, start=start, stop=stop), m.end()
    raise _invalid(text, f"bad bracket segment at offset {pos}")


def resolve(segments: tuple[Segment, ...], value: Any) -> Any:
    """The value `segments` select in `value`, or MISSING when the path cannot be resolved."""
    cur = value
    for i, seg in enumerate(segments):
        kind = seg.kind
        t = type(cur)
        if kind == FIELD:
            if t is dict and seg.key in cur:
                cur = cur[seg.key]
                continue
            if not seg.optional:
                return MISSING
            cur = None
        elif kind == INDEX:
            if t is list or t is tuple or t is bytes:
                idx = seg.index
                size = len(cur)
                if idx < 0:
                    idx += size
                if 0 <= idx < size:
                    cur = cur[idx]
                    continue
            if not seg.optional:
                return MISSING
            cur = None
        elif kind == SLICE:
            if t is list or t is tuple or t is bytes or t is str:
                cur = cur[seg.start : seg.stop]
                if t is tuple:
                    cur = list(cur)
                continue
            if not seg.optional:
                return MISSING
            cur = None
        else:  # ITER
            if t is list or t is tuple:
                children = list(cur)
            elif t is dict:
                children = list(cur.values())
            elif cur is None and seg.optional:
                children = []
            else:
                return MISSING
            rest = segments[i + 1 :]
            if not rest:
                return children
            out = []
            for child in children:
                got = resolve(rest, child)
                if got is MISSING:
                    return MISSING
                out.append(got)
            return out
    return cur


def format_selector(segments: tuple[Segment, ...]) -> str:
    """A canonical text form (used in error messages and tests)."""
    if not segments:
        return "."
    parts = []
    for seg in segments:
        if seg.kind == FIELD:
            parts.append("." + seg.key if _FIELD.fullmatch(seg.key) else "[" + json.dumps(seg.key) + "]")
        elif seg.kind == INDEX:
            parts.append(f"[{seg.index}]")
        elif seg.kind == SLICE:
            a = "" if seg.start is None else str(seg.start)
            b = "" if seg.stop is None else str(seg.stop)
            parts.append(f"[{a}:{b}]")
        else:
            parts.append("[]")
        if seg.optional:
            parts.append("?")
    text = "".join(parts)
    return text if text.startswith(".") else "." + text


__all__ = ["MISSING", "Segment", "format_selector", "parse_selector", "resolve"]
