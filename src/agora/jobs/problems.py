"""Collects every field error of a spec so the user fixes them all in one round, not one per run.

A `Problems` is handed down the parser; readers report `(path, expected, got)` and return `None` so
parsing goes on. At the end `raise_if_any()` raises one `job_spec_invalid` listing them all.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from agora.errors import AgoraError

T = TypeVar("T")
_MISSING: Any = object()


def show(value: Any) -> Any:
    """What the user gave, made JSON-safe and short (error details travel over the wire)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value if len(value) <= 80 else value[:77] + "..."
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Problems:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, path: str, expected: str, got: Any = _MISSING, **extra: Any) -> None:
        item: dict[str, Any] = {"path": path or "(root)", "expected": expected}
        item["got"] = None if got is _MISSING else show(got)
        item.update(extra)
        self.items.append(item)

    def check(self, path: str, value: Any, conv: Callable[[Any], T], expected: str) -> T | None:
        """`conv(value)`, or None with a problem recorded when it raises ValueError."""
        try:
            return conv(value)
        except ValueError as exc:
            self.add(path, f"{expected} ({exc})", value)
            return None

    def mapping(self, path: str, value: Any, known: Iterable[str]) -> Mapping[str, Any] | None:
        """`value` as a mapping with string keys; unknown keys are problems with a "did you mean"."""
        if not isinstance(value, Mapping):
            self.add(path, "a mapping", value)
            return None
        allowed = list(known)
        for key in value:
            if not isinstance(key, str):
                self.add(child(path, str(key)), "a string key", key)
            elif key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}? " if close else ""
                self.add(
                    child(path, key),
                    f"no such field; {hint}known fields: {', '.join(allowed)}",
                    key,
                    **({"did_you_mean": close[0]} if close else {}),
                )
        return value

    def raise_if_any(self) -> None:
        if not self.items:
            return
        first = "; ".join(
            f"{p['path']}: expected {p['expected']}, got {'nothing' if p['got'] is None else repr(p['got'])}"
            for p in self.items[:3]
        )
        more = f" (and {len(self.items) - 3} more)" if len(self.items) > 3 else ""
        raise AgoraError(
            "job_spec_invalid",
            f"the job spec has {len(self.items)} error(s): {first}{more}",
            details={"errors": list(self.items)},
        )


__all__ = ["Problems", "child", "show"]
