"""Shared machinery of the converters: the result type, the field tracker that turns every unmapped
field into a warning, and small helpers (names, units, documents).

The rule all converters follow: a field is either mapped (taken with `Fields.take`) or reported by
`Fields.finish` as "<path>: not supported, ignored". Nothing from the source file disappears silently.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from agora.errors import AgoraError
from agora.jobs.parse import spec_from_data, syntax_error
from agora.models.job import JobSpec, under_root


@dataclass(frozen=True, slots=True)
class ConvertResult:
    spec: JobSpec
    warnings: list[str] = field(default_factory=list)


def is_empty(value: Any) -> bool:
    """Values that carry no meaning (defaults that API dumps are full of): not worth a warning."""
    if isinstance(value, bool):
        return not value
    return value is None or value == 0 or value == "" or value == [] or value == {}


class Warnings:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        text = f"{path}: {message}"
        if text not in self.items:
            self.items.append(text)

    def ignored(self, path: str, why: str = "") -> None:
        self.add(path, "not supported, ignored" + (f" ({why})" if why else ""))


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Fields:
    """A source mapping being converted. `take` marks keys as mapped; `finish` warns about the rest.

    With `ci=True` key lookup ignores case (Bacalhau's Go decoder does); paths keep the file's spelling.
    """

    def __init__(self, data: Any, path: str, warn: Warnings, *, ci: bool = False) -> None:
        self.data: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
        self.path = path
        self.warn = warn
        self.ci = ci
        self._taken: set[str] = set()
        if data is not None and not isinstance(data, Mapping):
            warn.add(path or "(root)", f"expected a mapping, got {type(data).__name__}; ignored")

    def key_of(self, name: str) -> str | None:
        if name in self.data:
            return name
        if self.ci:
            low = name.lower()
            for k in self.data:
                if isinstance(k, str) and k.lower() == low:
                    return k
        return None

    def has(self, name: str) -> bool:
        k = self.key_of(name)
        return k is not None and not is_empty(self.data[k])

    def take(self, *names: str, default: Any = None) -> Any:
        """The first present of `names` (aliases); all of them count as mapped."""
        found: Any = default
        done = False
        for name in names:
            k = self.key_of(name)
            if k is None:
                continue
            self._taken.add(k)
            if not done and self.data[k] is not None:
                found, done = self.data[k], True
        return found

    def path_of(self, name: str) -> str:
        return join(self.path, self.key_of(name) or name)

    def sub(self, name: str) -> Fields:
        """A nested mapping as its own `Fields` (empty when absent); the caller must `finish` it."""
        return Fields(self.take(name), self.path_of(name), self.warn, ci=self.ci)

    def items(self, name: str) -> Iterator[tuple[int, Fields]]:
        """The mappings of a list field, each as `Fields`; a non-list value is warned about."""
        value = self.take(name)
        if value is None:
            return
        if not isinstance(value, list):
            self.warn.add(self.path_of(name), "expected a list; ignored")
            return
        for i, item in enumerate(value):
            yield i, Fields(item, join(self.path_of(name), i), self.warn, ci=self.ci)

    def ignore(self, *names: str) -> None:
        """Mark fields as deliberately dropped without a warning (pure metadata)."""
        for name in names:
            if (k := self.key_of(name)) is not None:
                self._taken.add(k)

    def finish(self, why: dict[str, str] | None = None) -> None:
        """Warn about every field not taken that has a non-empty value (`why` adds reasons)."""
        reasons = {k.lower(): v for k, v in (why or {}).items()}
        for k, v in self.data.items():
            if k in self._taken or is_empty(v):
                continue
            self.warn.ignored(join(self.path, k), reasons.get(str(k).lower(), ""))


_SLUG_RE = re.compile(r"[^A-Za-z0-9_.-]+")


def slug(name: Any, fallback: str) -> str:
    """A valid agora name from a free-form one ("My main task" -> "my-main-task")."""
    text = _SLUG_RE.sub("-", str(name or "")).strip("-._").lower()[:63]
    return text or fallback


def unique_names(names: list[str]) -> list[str]:
    """Make names unique by suffixing -2, -3... (two containers may share a name across groups)."""
    seen: dict[str, int] = {}
    out: list[str] = []
    for n in names:
        if n in seen:
            seen[n] += 1
            candidate = f"{n[:59]}-{seen[n]}"
            while candidate in seen:
                seen[n] += 1
                candidate = f"{n[:59]}-{seen[n]}"
            seen[candidate] = 1
            out.append(candidate)
        else:
            seen[n] = 1
            out.append(n)
    return out


def str_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def str_map(f: Fields, name: str) -> dict[str, str]:
    """A str -> str field (labels, env maps); anything else is warned about and dropped."""
    value = f.take(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        f.warn.add(f.path_of(name), "expected a mapping of strings; ignored")
        return {}
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}


def mount_path(value: Any, roots: tuple[str, ...], where: str, warn: Warnings) -> Any:
    """An input or output path the provider can map. A path already under `roots` stays; any other path
    is moved under the first root, with a warning naming the field, because a converter must never emit
    a spec that a provider refuses later. What is not a usable path is left for the parser to report."""
    if not isinstance(value, str) or not value.strip() or "\x00" in value or ".." in value.split("/"):
        return value
    if value.startswith("/") and under_root(value, roots):
        return value
    moved = roots[0] + ("/" + value.strip("/") if value.strip("/") else "")
    warn.add(where, f"{value} is mapped to {moved}: agora tasks see their files under {roots[0]}; make the task use it")
    return moved


def parse_failed(
    source: str, exc: Exception | str, *, hint: str | None = None, line: int | None = None, column: int | None = None
) -> AgoraError:
    """`convert_parse_failed`; a syntax error keeps its line and column (message and details)."""
    reason, yaml_line, yaml_column = syntax_error(exc)
    line, column = (yaml_line, yaml_column) if yaml_line is not None else (line, column)
    where = f"line {line}, column {column}: " if isinstance(line, int) and isinstance(column, int) else ""
    details = {"line": line, "column": column} if where else None
    return AgoraError(
        "convert_parse_failed", f"cannot read the {source} file: {where}{reason}", hint=hint, details=details
    )


def load_yaml_or_json(text: str | bytes, source: str, fmt: str | None) -> list[Any]:
    """The documents of a YAML (safe_load, multi-document) or JSON text; empty documents dropped."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise parse_failed(source, exc) from exc
    if len(text) > 1 << 20:
        raise parse_failed(source, "larger than 1 MiB")
    if fmt is None:
        fmt = "yaml"  # YAML reads JSON too
    try:
        if fmt == "json":
            docs = [json.loads(text)]
        elif fmt == "yaml":
            docs = list(yaml.safe_load_all(text))
        else:
            raise AgoraError("invalid_argument", f"unknown format {fmt!r} for {source}: use yaml or json")
    except (ValueError, yaml.YAMLError, RecursionError) as exc:
        raise parse_failed(source, exc) from exc
    docs = [d for d in docs if d is not None]
    if not docs:
        raise parse_failed(source, "the file is empty")
    return docs


def finish_spec(data: dict[str, Any], warn: Warnings, source: str) -> ConvertResult:
    """Validate the converted agora spec with the same parser users' files go through."""
    try:
        spec = spec_from_data(data)
    except AgoraError as exc:
        raise AgoraError(
            exc.code,
            f"the {source} job converts to an invalid agora spec: {exc.message}",
            details=exc.details,
        ) from exc
    return ConvertResult(spec=spec, warnings=list(warn.items))


__all__ = [
    "ConvertResult",
    "Fields",
    "Warnings",
    "finish_spec",
    "is_empty",
    "join",
    "load_yaml_or_json",
    "mount_path",
    "parse_failed",
    "slug",
    "str_list",
    "str_map",
    "unique_names",
]
