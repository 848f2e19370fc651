"""Typed field readers: each returns the value or `None` after recording a problem, never raises.

Keeping them tiny and uniform is what lets the parser report every error in one pass.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from agora.jobs.problems import Problems, child

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
NAME_EXPECTED = "a name of 1-63 letters, digits, '_', '.' or '-' starting with a letter or digit"
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,255}$")  # dots and dashes: Kubernetes allows them
LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_./-]{0,126}[A-Za-z0-9])?$")
HEX64_RE = re.compile(r"^[0-9a-fA-F]{64}$")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_str(p: Problems, path: str, value: Any, *, expected: str = "a non-empty string") -> str | None:
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        p.add(path, expected, value)
        return None
    return value


def read_name(p: Problems, path: str, value: Any) -> str | None:
    if not isinstance(value, str) or not NAME_RE.match(value):
        p.add(path, NAME_EXPECTED, value)
        return None
    return value


def read_int(p: Problems, path: str, value: Any, *, lo: int = 0, hi: int = 2**62) -> int | None:
    if not is_int(value) or not lo <= value <= hi:
        p.add(path, f"an integer from {lo} to {hi}", value)
        return None
    return int(value)


def read_bool(p: Problems, path: str, value: Any) -> bool | None:
    if not isinstance(value, bool):
        p.add(path, "true or false", value)
        return None
    return value


def read_choice(p: Problems, path: str, value: Any, choices: tuple[str, ...]) -> str | None:
    if not isinstance(value, str) or value not in choices:
        p.add(path, "one of " + ", ".join(choices), value)
        return None
    return value


def read_str_list(p: Problems, path: str, value: Any) -> tuple[str, ...] | None:
    """A list of strings; numbers are accepted and turned into strings (argv is text anyway)."""
    if not isinstance(value, list):
        p.add(path, "a list of strings", value)
        return None
    out: list[str] = []
    for i, item in enumerate(value):
        if isinstance(item, str) and "\x00" not in item:
            out.append(item)
        elif is_int(item) or isinstance(item, float):
            out.append(str(item))
        else:
            p.add(child(path, i), "a string", item)
    return tuple(out) if len(out) == len(value) else None


def read_str_map(p: Problems, path: str, value: Any, key_re: re.Pattern[str], key_expected: str) -> dict[str, str]:
    """A str -> str mapping (numbers become strings; booleans are refused: quote them)."""
    if not isinstance(value, Mapping):
        p.add(path, "a mapping of strings to strings", value)
        return {}
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key_re.match(key):
            p.add(child(path, str(key)), key_expected, key)
            continue
        if isinstance(item, str) and "\x00" not in item:
            out[key] = item
        elif is_int(item) or isinstance(item, float):
            out[key] = str(item)
        else:
            p.add(child(path, key), "a string (quote values like 'true')", item)
    return out


def read_list(p: Problems, path: str, value: Any, *, max_len: int = 1000) -> list[Any]:
    if not isinstance(value, list):
        p.add(path, "a list", value)
        return []
    if len(value) > max_len:
        p.add(path, f"a list of at most {max_len} items", f"{len(value)} items")
        return []
    return value


def read_sha256(p: Problems, path: str, value: Any) -> str | None:
    if not isinstance(value, str) or not HEX64_RE.match(value):
        p.add(path, "a sha256 digest as 64 hex characters", value)
        return None
    return value.lower()


def read_abs_path(p: Problems, path: str, value: Any) -> str | None:
    """An absolute path inside the task's sandbox, without '..' (mounts must not escape)."""
    if (
        not isinstance(value, str)
        or not value.startswith("/")
        or "\x00" in value
        or ".." in value.split("/")
        or value == "/"
    ):
        p.add(path, "an absolute path like /inputs/data (no '..', not '/')", value)
        return None
    return value


def read_http_url(p: Problems, path: str, value: Any) -> str | None:
    if not isinstance(value, str) or not re.match(r"^https?://[^/\s?#]+([/?#]\S*)?$", value):
        p.add(path, "an http:// or https:// URL", value)
        return None
    return value


__all__ = [
    "ENV_KEY_RE",
    "HEX64_RE",
    "LABEL_KEY_RE",
    "NAME_EXPECTED",
    "NAME_RE",
    "is_int",
    "read_abs_path",
    "read_bool",
    "read_choice",
    "read_http_url",
    "read_int",
    "read_list",
    "read_name",
    "read_sha256",
    "read_str",
    "read_str_list",
    "read_str_map",
]
