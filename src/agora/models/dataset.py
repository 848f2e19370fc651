"""A data-set offer for federated learning: what a data provider publishes about a data set it keeps.

The data never leaves its provider, and neither does its local path: an offer carries only the
description (name, tags, format, schema, rows, size, licence), the content hash of the files (so a
requester can tell two offers of the same data apart and a provider cannot swap the data under a
contract unnoticed), the price per delivered update and whether custom training code is accepted
(default: no, only the built-in trainers run on it).

`DatasetSchema` is the column contract between an offer and a training intent: the feature names (in
order), the label column and, for classification, the label values. `schema_problems(need, have)` lists
every way an offer's schema does not serve an intent's (the matcher's `schema_mismatch` reason).

Pure data: validation collects every field error at once (`dataset_invalid`, `details.field` the first).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from agora.errors import AgoraError

FORMATS = ("csv", "npz", "folder")
MAX_FEATURES = 100_000
MAX_CLASSES = 10_000
MAX_TAGS = 64
DATASET_FIELDS = (
    "offer_id",
    "provider",
    "name",
    "tags",
    "format",
    "schema",
    "rows",
    "size_bytes",
    "content_hash",
    "licence",
    "price_per_update",
    "custom_code",
    "valid_from",
    "valid_until",
)
SCHEMA_FIELDS = ("features", "label", "classes")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")
_NAME_RE = re.compile(r"^[^\x00-\x1f]{1,200}$")
_HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


class _Problems:
    def __init__(self, code: str, what: str) -> None:
        self.code, self.what = code, what
        self.items: list[dict[str, Any]] = []

    def add(self, path: str, expected: str, got: Any = None) -> None:
        shown = got if got is None or isinstance(got, bool | int | float) else str(got)[:80]
        self.items.append({"path": path, "expected": expected, "got": shown})

    def raise_if_any(self) -> None:
        if not self.items:
            return
        first = self.items[0]
        text = "; ".join(f"{p['path']}: expected {p['expected']}, got {p['got']!r}" for p in self.items[:5])
        more = f" (+{len(self.items) - 5} more)" if len(self.items) > 5 else ""
        raise AgoraError(
            self.code,
            f"{self.what}: {text}{more}",
            hint=f"Fix `{first['path']}`: {first['expected']}.",
            details={"field": first["path"], "errors": list(self.items)},
        )


@dataclass(frozen=True)
class DatasetSchema:
    """Feature names in column order, the label column, and the label values (classification)."""

    features: tuple[str, ...]
    label: str
    classes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "label": self.label, "classes": list(self.classes)}

    @classmethod
    def from_dict(cls, data: Any, *, path: str = "schema", code: str = "dataset_invalid") -> DatasetSchema:
        p = _Problems(code, "schema")
        schema = _schema(p, data, path)
        p.raise_if_any()
        assert schema is not None
        return schema


def _schema(p: _Problems, data: Any, path: str) -> DatasetSchema | None:
    if not isinstance(data, Mapping):
        p.add(path, "an object (features, label, classes)", data)
        return None
    ok = True
    for key in data:
        if key not in SCHEMA_FIELDS:
            p.add(f"{path}.{key}", f"no such field; known fields: {', '.join(SCHEMA_FIELDS)}", key)
            ok = False
    features = data.get("features")
    if (
        not isinstance(features, list | tuple)
        or not 1 <= len(features) <= MAX_FEATURES
        or not all(isinstance(f, str) and 0 < len(f) <= 128 for f in features)
    ):
        p.add(f"{path}.features", f"a list of 1-{MAX_FEATURES} column names", features)
        ok = False
    elif len(set(features)) != len(features):
        p.add(f"{path}.features", "distinct column names", features)
        ok = False
    label = data.get("label")
    if not isinstance(label, str) or not 0 < len(label) <= 128:
        p.add(f"{path}.label", "the label column's name", label)
        ok = False
    elif isinstance(features, list | tuple) and label in features:
        p.add(f"{path}.label", "a column that is not also a feature", label)
        ok = False
    classes = data.get("classes", [])
    if (
        not isinstance(classes, list | tuple)
        or len(classes) > MAX_CLASSES
        or not all(isinstance(c, str) and 0 < len(c) <= 128 for c in classes)
    ):
        p.add(f"{path}.classes", f"a list of at most {MAX_CLASSES} label values (strings)", classes)
        ok = False
    if not ok:
        return None
    assert isinstance(features, list | tuple) and isinstance(label, str) and isinstance(classes, list | tuple)
    return DatasetSchema(tuple(features), label, tuple(classes))


def schema_problems(need: DatasetSchema, have: DatasetSchema) -> list[str]:
    """Every way `have` (an offer's schema) does not serve `need` (an intent's); empty when it does.

    The features must be the same names in the same order (a model's weights are per column), the label
    the same column, and every class the intent needs must be among the offer's (an offer may know more)."""
    problems: list[str] = []
    if need.features != have.features:
        missing = [f for f in need.features if f not in have.features]
        if missing:
            more = f" (+{len(missing) - 3} more)" if len(missing) > 3 else ""
            problems.append(f"missing features {', '.join(missing[:3])}{more}")
        elif len(need.features) != len(have.features):
            problems.append(f"{len(have.features)} features, need {len(need.features)}")
        else:
            problems.append("features in another order")
    if need.label != have.label:
        problems.append(f"label is {have.label!r}, need {need.label!r}")
    if need.classes and have.classes:
        absent = [c for c in need.classes if c not in have.classes]
        if absent:
            problems.append(f"classes {', '.join(absent[:3])} absent")
    return problems


@dataclass(frozen=True)
class DatasetOffer:
    """A data set offered for federated learning; everything here is public (no local path)."""

    offer_id: str
    provider: str
    name: str
    tags: frozenset[str]
    format: str
    schema: DatasetSchema
    rows: int
    size_bytes: int
    content_hash: str
    licence: str
    price_per_update: int
    custom_code: bool
    valid_from: int
    valid_until: int

    def is_valid_at(self, now: float) -> bool:
        return self.valid_from <= now < self.valid_until

    def to_dict(self) -> dict[str, Any]:
        return {
            "offer_id": self.offer_id,
            "provider": self.provider,
            "name": self.name,
            "tags": sorted(self.tags),
            "format": self.format,
            "schema": self.schema.to_dict(),
            "rows": self.rows,
            "size_bytes": self.size_bytes,
            "content_hash": self.content_hash,
            "licence": self.licence,
            "price_per_update": self.price_per_update,
            "custom_code": self.custom_code,
            "valid_from": self.valid_from,
            "valid_until": self.valid_until,
        }


def dataset_offer_from_dict(data: Any) -> DatasetOffer:
    """A validated `DatasetOffer`, or one `dataset_invalid` listing every bad field."""
    p = _Problems("dataset_invalid", "data-set offer")
    if not isinstance(data, Mapping):
        p.add("offer", "an object", data)
        p.raise_if_any()
    assert isinstance(data, Mapping)
    for key in data:
        if key not in DATASET_FIELDS:
            p.add(str(key), f"no such field; known fields: {', '.join(DATASET_FIELDS)}", key)
    offer_id = data.get("offer_id")
    if not isinstance(offer_id, str) or not _ID_RE.match(offer_id):
        p.add("offer_id", "1-128 characters of letters, digits and ._:-", offer_id)
    provider = data.get("provider")
    if not isinstance(provider, str) or not provider.startswith("did:") or not 8 <= len(provider) <= 256:
        p.add("provider", "a DID", provider)
    name = data.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        p.add("name", "1-200 printable characters", name)
    tags = data.get("tags")
    if not isinstance(tags, list | tuple) or not 1 <= len(tags) <= MAX_TAGS:
        p.add("tags", f"a list of 1-{MAX_TAGS} tags", tags)
    else:
        for i, tag in enumerate(tags):
            if not isinstance(tag, str) or not _TAG_RE.match(tag):
                p.add(f"tags[{i}]", "a tag of letters, digits and ._:/- (1-64 characters)", tag)
    fmt = data.get("format")
    if fmt not in FORMATS:
        p.add("format", f"one of {', '.join(FORMATS)}", fmt)
    schema = _schema(p, data.get("schema"), "schema")
    for key in ("rows", "size_bytes", "price_per_update"):
        v = data.get(key)
        if not _is_int(v) or v < (1 if key == "rows" else 0):
            p.add(key, "an integer >= 1" if key == "rows" else "an integer >= 0", v)
    content_hash = data.get("content_hash")
    if not isinstance(content_hash, str) or not _HASH_RE.match(content_hash):
        p.add("content_hash", "sha256: and 64 hex digits", content_hash)
    licence = data.get("licence")
    if not isinstance(licence, str) or not 0 < len(licence) <= 128:
        p.add("licence", "a licence name (e.g. CC-BY-4.0), at most 128 characters", licence)
    custom = data.get("custom_code", False)
    if not isinstance(custom, bool):
        p.add("custom_code", "true or false", custom)
    valid_from, valid_until = data.get("valid_from"), data.get("valid_until")
    if not _is_int(valid_from) or valid_from < 0:
        p.add("valid_from", "a unix time in seconds", valid_from)
    if not _is_int(valid_until) or (_is_int(valid_from) and valid_until <= valid_from):
        p.add("valid_until", "a unix time after valid_from", valid_until)
    p.raise_if_any()
    assert schema is not None and isinstance(tags, list | tuple)
    return DatasetOffer(
        offer_id=str(offer_id),
        provider=str(provider),
        name=str(name),
        tags=frozenset(tags),
        format=str(fmt),
        schema=schema,
        rows=int(data["rows"]),
        size_bytes=int(data["size_bytes"]),
        content_hash=str(content_hash),
        licence=str(licence),
        price_per_update=int(data["price_per_update"]),
        custom_code=bool(custom),
        valid_from=int(valid_from or 0),
        valid_until=int(valid_until or 0),
    )


__all__ = [
    "DATASET_FIELDS",
    "FORMATS",
    "DatasetOffer",
    "DatasetSchema",
    "dataset_offer_from_dict",
    "schema_problems",
]
