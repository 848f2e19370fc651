"""Input checks and the query semantics every backend shares (pure, no I/O).

All argument checking happens here, before a backend is touched, so a bad call never writes
anything and both backends reject exactly the same inputs with the same codes. The functions that
evaluate a query in Python (`matches`, `sort_key`) are the reference the SQLite backend's SQL is
written to agree with; the conformance suite holds the two to it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from agora.errors import AgoraError
from agora.store.interfaces import JSONDict, Scalar

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
MAX_ID_CHARS: Final = 512
MAX_DOC_BYTES: Final = 16 * 1024 * 1024
MAX_DEPTH: Final = 64
MAX_LIMIT: Final = 10_000

COLLECTION_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,127}\Z")
FIELD_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}(?:\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,15}\Z")
KIND_RE: Final = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+){0,15}\Z")
MAX_KIND_CHARS: Final = 128


def _bad(message: str, **details: Any) -> AgoraError:
    return AgoraError("invalid_argument", message, details=details or None)


def _bad_query(message: str, **details: Any) -> AgoraError:
    return AgoraError("store_query_invalid", message, details=details or None)


def check_collection(collection: object) -> str:
    if not isinstance(collection, str) or not COLLECTION_RE.match(collection):
        raise _bad(
            "a collection name is a letter then up to 127 letters, digits, '_', '.' or '-'",
            collection=repr(collection)[:200],
        )
    return collection


def check_id(id: object) -> str:
    if not isinstance(id, str) or not id or len(id) > MAX_ID_CHARS or not _utf8_ok(id):
        raise _bad(f"a document id is a non-empty string of at most {MAX_ID_CHARS} characters", id=repr(id)[:200])
    return id


def check_subject(subject: object) -> str:
    if not isinstance(subject, str) or not subject or len(subject) > MAX_ID_CHARS or not _utf8_ok(subject):
        raise _bad(f"an event subject is a non-empty string of at most {MAX_ID_CHARS} characters")
    return subject


def check_kind(kind: object) -> str:
    if not isinstance(kind, str) or len(kind) > MAX_KIND_CHARS or not KIND_RE.match(kind):
        raise _bad("an event kind is a dotted lower-case name such as 'peer.joined'", kind=repr(kind)[:200])
    return kind


def check_expected_version(expected: object) -> int | None:
    if expected is None:
        return None
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
        raise _bad("expected_version is None, 0 (must not exist) or the version last read")
    return expected


def _utf8_ok(text: str) -> bool:
    """Storable text: encodable as UTF-8 (no lone surrogates) and free of NUL, which SQLite's JSON
    functions cut strings at (PostgreSQL refuses it in text and jsonb for the same kind of reason)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_value(value: Any, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _bad(f"the document nests deeper than {MAX_DEPTH} levels", path=path)
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        if "\x00" in value:
            raise _bad("strings may not contain NUL (U+0000)", path=path)
        return
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise _bad("integers must fit in 64 bits (store larger numbers as strings)", path=path)
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _bad("NaN and infinities are not JSON values", path=path)
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_value(item, f"{path}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or "\x00" in key:
                raise _bad("object keys must be strings without NUL", path=path, key=repr(key)[:100])
            _check_value(item, f"{path}.{key}", depth + 1)
        return
    raise _bad(f"{type(value).__name__} is not a JSON value", path=path)


def conflict_error(collection: str, id: str, expected: int, current: int) -> AgoraError:
    state = "does not exist" if current == 0 else f"is at version {current}"
    return AgoraError(
        "store_conflict",
        f"{collection}/{id} {state}, not at the expected version {expected}",
        details={"collection": collection, "id": id, "expected_version": expected, "version": current},
    )


def encode_doc(doc: object, what: str = "doc") -> str:
    """Check that `doc` is a JSON object and return its compact JSON text (key order kept)."""
    if not isinstance(doc, dict):
        raise _bad(f"{what} must be a dict, not {type(doc).__name__}")
    _check_value(doc, what, 0)
    text = json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # lone surrogates cannot be stored as UTF-8
        raise _bad(f"{what} holds a string that is not valid Unicode (a lone surrogate)") from exc
    if size > MAX_DOC_BYTES:
        raise _bad(f"{what} is {size} bytes of JSON; the limit is {MAX_DOC_BYTES}", size=size)
    return text


def decode_doc(text: str) -> JSONDict:
    value = json.loads(text)
    assert isinstance(value, dict)
    return value


def check_limit(limit: object, offset: object = 0) -> tuple[int, int]:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_LIMIT:
        raise _bad_query(f"limit must be an integer from 0 to {MAX_LIMIT}")
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= INT64_MAX:
        raise _bad_query("offset must be a non-negative integer")
    return limit, offset


def check_field(name: object) -> str:
    if not isinstance(name, str) or not FIELD_RE.match(name):
        raise _bad_query(
            "a field is a name of letters, digits and '_' (not starting with a digit), dotted for nested fields",
            field=repr(name)[:200],
        )
    return name


def check_scalar(value: object, field: str) -> Scalar:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and INT64_MIN <= value <= INT64_MAX:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, str) and _utf8_ok(value):
        return value
    raise _bad_query("a where value must be a JSON scalar (str, 64-bit int, finite float, bool or None)", field=field)


@dataclass(frozen=True, slots=True)
class QuerySpec:
    """A validated query; `needle` is the casefolded `contains` text."""

    where: tuple[tuple[str, Scalar], ...] = ()
    order_by: str | None = None
    desc: bool = False
    limit: int = 100
    offset: int = 0
    needle: str | None = None


def build_query(
    where: object = None,
    *,
    order_by: object = None,
    desc: object = False,
    limit: object = 100,
    offset: object = 0,
    contains: object = None,
) -> QuerySpec:
    items: list[tuple[str, Scalar]] = []
    if where is not None:
        if not isinstance(where, dict):
            raise _bad_query("where must be a dict of field -> value")
        for name, value in where.items():
            items.append((check_field(name), check_scalar(value, name)))
    if order_by is not None:
        check_field(order_by)
    if not isinstance(desc, bool):
        raise _bad_query("desc must be a bool")
    lim, off = check_limit(limit, offset)
    needle: str | None = None
    if contains is not None:
        if not isinstance(contains, str) or not contains or len(contains) > 1024 or not _utf8_ok(contains):
            raise _bad_query("contains must be a non-empty string of at most 1024 characters")
        needle = contains.casefold()
    return QuerySpec(tuple(items), order_by if isinstance(order_by, str) else None, desc, lim, off, needle)


# --- the reference semantics, evaluated in Python ---------------------------------------------------

MISSING: Final = object()


def lookup(doc: JSONDict, path: str) -> Any:
    """The value at a dotted path, or MISSING when any step is absent or not an object."""
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def scalar_equal(a: Any, b: Scalar) -> bool:
    if b is None:
        return a is None
    if isinstance(b, bool):
        return isinstance(a, bool) and a is b
    if isinstance(b, (int, float)):
        return isinstance(a, (int, float)) and not isinstance(a, bool) and a == b
    return isinstance(a, str) and a == b


def field_matches(doc: JSONDict, path: str, value: Scalar) -> bool:
    found = lookup(doc, path)
    if found is MISSING:
        return value is None
    if scalar_equal(found, value):
        return True
    return isinstance(found, list) and any(scalar_equal(item, value) for item in found)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def contains_text(doc: JSONDict, needle: str) -> bool:
    return any(needle in s.casefold() for s in _strings(doc))


def matches(doc: JSONDict, spec: QuerySpec) -> bool:
    if not all(field_matches(doc, path, value) for path, value in spec.where):
        return False
    return spec.needle is None or contains_text(doc, spec.needle)


def sort_key(doc: JSONDict, path: str) -> tuple[int, Any]:
    """Rank by type (missing/null < bool < number < string < list/object), then by value."""
    value = lookup(doc, path)
    if value is MISSING or value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, (int, float)):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    return (4, 0)
