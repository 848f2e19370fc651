"""The data provider's side of data sets: read a local data set, describe it, keep it in the book.

`inspect_dataset(path)` reads a CSV file (a header row; the label column named by `label`, default the
last), an NPZ file (arrays `x` (rows x features) and `y`; feature names `x0..xN-1` unless the file has a
`features` array) or a folder of such files with one schema, and returns a `Described`: the schema it
found, rows, size and the content hash (sha256 over every file's relative name and bytes, in name order).
A missing path is `dataset_not_found`; a declared schema that does not match the file is
`dataset_schema_mismatch` naming the differences; anything else `dataset_format_unsupported`.

`load_arrays(path, schema)` gives the trainer its (x, y) in the schema's column order and the label values
as class indices (by the schema's `classes`, or sorted distinct values).

`DatasetBook` keeps this node's offers in its store: the public offer (`DatasetOffer`) and, beside it, the
local path, which is never part of what is published (`public()` returns the offers only). Each change is
one store transaction with its event (`dataset.added`, `dataset.removed`).
"""

from __future__ import annotations

import asyncio
import builtins
import csv
import hashlib
import io
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from agora.clock import SYSTEM_CLOCK, Clock
from agora.errors import AgoraError
from agora.models.dataset import DatasetOffer, DatasetSchema, dataset_offer_from_dict
from agora.store import Store

COLLECTION = "datasets"
DEFAULT_VALIDITY_S = 30 * 24 * 3600
MAX_FILES = 10_000
MAX_OFFERS = 256
MAX_CLASSES_FOUND = 1000

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class Described:
    format: str
    schema: DatasetSchema
    rows: int
    size_bytes: int
    content_hash: str


def _files(path: Path) -> list[Path]:
    if not path.exists():
        raise AgoraError("dataset_not_found", f"no such file or folder: {path}", details={"path": str(path)})
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".csv", ".npz"))
    if not files or len(files) > MAX_FILES:
        raise AgoraError(
            "dataset_format_unsupported",
            f"{path}: a folder data set holds 1-{MAX_FILES} .csv or .npz files, found {len(files)}",
            details={"path": str(path)},
        )
    return files


def _content_hash(path: Path, files: Sequence[Path]) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    for f in files:
        rel = f.name if f == path else str(f.relative_to(path))
        data = f.read_bytes()
        size += len(data)
        h.update(rel.encode() + b"\0" + len(data).to_bytes(8, "big") + data)
    return "sha256:" + h.hexdigest(), size


def _read_csv(f: Path, label: str | None) -> tuple[list[str], str, Array, list[str]]:
    text = f.read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    if len(rows) < 2 or len(rows[0]) < 2:
        raise AgoraError("dataset_format_unsupported", f"{f}: a CSV data set has a header row, 2+ columns and rows")
    header = [c.strip() for c in rows[0]]
    lab = label or header[-1]
    if lab not in header:
        raise AgoraError(
            "dataset_schema_mismatch",
            f"{f}: no label column {lab!r} (columns: {', '.join(header[:8])})",
            details={"label": lab, "columns": header},
        )
    li = header.index(lab)
    feats = [c for i, c in enumerate(header) if i != li]
    body = [r for r in rows[1:] if r]
    try:
        x = np.array([[float(v) for i, v in enumerate(r) if i != li] for r in body], dtype=np.float64)
    except ValueError as exc:
        raise AgoraError("dataset_format_unsupported", f"{f}: a feature is not a number ({exc})") from None
    if x.ndim != 2 or x.shape[1] != len(feats):
        raise AgoraError("dataset_format_unsupported", f"{f}: every row needs {len(header)} values")
    return feats, lab, x, [r[li].strip() for r in body]


def _read_npz(f: Path, label: str | None) -> tuple[list[str], str, Array, list[str]]:
    try:
        with np.load(f, allow_pickle=False) as z:
            if "x" not in z or "y" not in z:
                raise AgoraError("dataset_format_unsupported", f"{f}: an NPZ data set has arrays x and y")
            x = np.asarray(z["x"], dtype=np.float64)
            y = np.asarray(z["y"])
            names = [str(n) for n in z["features"]] if "features" in z else None
    except (OSError, ValueError) as exc:
        raise AgoraError("dataset_format_unsupported", f"{f}: not a readable NPZ file ({exc})") from None
    if x.ndim != 2 or y.ndim != 1 or len(y) != len(x) or len(x) == 0:
        raise AgoraError("dataset_format_unsupported", f"{f}: x must be rows x features and y one value per row")
    feats = names or [f"x{i}" for i in range(x.shape[1])]
    return feats, label or "y", x, [str(v) for v in y.tolist()]


def _read(f: Path, label: str | None) -> tuple[list[str], str, Array, list[str]]:
    if f.suffix.lower() == ".csv":
        return _read_csv(f, label)
    if f.suffix.lower() == ".npz":
        return _read_npz(f, label)
    raise AgoraError("dataset_format_unsupported", f"{f}: a data set is a .csv, an .npz or a folder of those")


def _read_all(path: Path, label: str | None) -> tuple[str, list[Path], list[str], str, Array, list[str]]:
    files = _files(path)
    fmt = "folder" if path.is_dir() else files[0].suffix.lower().lstrip(".")
    feats: list[str] | None = None
    lab = ""
    xs: list[Array] = []
    ys: list[str] = []
    for f in files:
        fe, lb, x, y = _read(f, label)
        if feats is not None and (fe != feats or lb != lab):
            raise AgoraError(
                "dataset_schema_mismatch",
                f"{f}: its columns differ from the folder's first file",
                details={"file": str(f.relative_to(path))},
            )
        feats, lab = fe, lb
        xs.append(x)
        ys.extend(y)
    assert feats is not None
    return fmt, files, feats, lab, np.concatenate(xs), ys


def _classes(values: Sequence[str]) -> list[str]:
    distinct = set(values)

    def key(v: str) -> tuple[int, float, str]:
        try:
            return (0, float(v), v)
        except ValueError:
            return (1, 0.0, v)

    return sorted(distinct, key=key)


def inspect_dataset(path: Path, *, label: str | None = None, declared: DatasetSchema | None = None) -> Described:
    """Describe the data set at `path`; with `declared`, check it against the file (every difference)."""
    fmt, files, feats, lab, _x, ys = _read_all(path, label if label else (declared.label if declared else None))
    found_classes = _classes(ys)
    classes = tuple(found_classes) if len(found_classes) <= MAX_CLASSES_FOUND else ()
    schema = DatasetSchema(tuple(feats), lab, classes)
    if declared is not None:
        diff: list[str] = []
        if declared.features != schema.features:
            diff.append(f"features: declared {len(declared.features)}, the file has {len(schema.features)}")
            missing = [c for c in declared.features if c not in schema.features]
            if missing:
                diff.append(f"not in the file: {', '.join(missing[:5])}")
        if declared.label != schema.label:
            diff.append(f"label: declared {declared.label!r}, the file has {schema.label!r}")
        extra = [c for c in set(ys) if declared.classes and c not in declared.classes]
        if extra:
            diff.append(f"label values not declared: {', '.join(sorted(extra)[:5])}")
        if diff:
            raise AgoraError(
                "dataset_schema_mismatch",
                f"{path}: the declared schema does not match the file: {'; '.join(diff)}",
                details={"differences": diff, "found": schema.to_dict()},
            )
        schema = declared
    digest, size = _content_hash(path, files)
    return Described(fmt, schema, len(ys), size, digest)


def load_arrays(path: Path, schema: DatasetSchema) -> tuple[Array, Array]:
    """(x, y) for training: x in the schema's feature order, y as class indices."""
    _fmt, _paths, feats, _lab, x, ys = _read_all(path, schema.label)
    if list(schema.features) != feats:
        order = [feats.index(c) for c in schema.features if c in feats]
        if len(order) != len(schema.features):
            raise AgoraError("dataset_schema_mismatch", f"{path}: the file lacks some of the schema's features")
        x = x[:, order]
    classes = list(schema.classes) or _classes(ys)
    index = {c: i for i, c in enumerate(classes)}
    unknown = [v for v in ys if v not in index]
    if unknown:
        raise AgoraError("dataset_schema_mismatch", f"{path}: label values outside the schema: {unknown[:3]}")
    return x, np.array([index[v] for v in ys], dtype=np.int64)


def _resolve_and_inspect(path: Path, label: str | None, declared: DatasetSchema | None) -> tuple[Path, Described]:
    path = path.expanduser().resolve()
    return path, inspect_dataset(path, label=label, declared=declared)


def new_offer_id() -> str:
    return "data-" + secrets.token_hex(6)


class DatasetBook:
    """This node's data-set offers in its store; the local path stays here, never in the offer."""

    def __init__(self, store: Store, provider: str, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.store = store
        self.provider = provider
        self.clock = clock
        self.on_change: list[Callable[[], None]] = []  # told after an offer is added or removed (the data ad)

    def _changed(self) -> None:
        for listener in self.on_change:
            listener()

    async def add(
        self,
        path: Path,
        *,
        tags: Sequence[str],
        licence: str,
        name: str | None = None,
        price_per_update: int = 0,
        custom_code: bool = False,
        label: str | None = None,
        schema: Mapping[str, Any] | None = None,
        validity_s: int = DEFAULT_VALIDITY_S,
    ) -> DatasetOffer:
        """Inspect `path` (and check a declared `schema` against it), then keep the offer."""
        declared = DatasetSchema.from_dict(schema) if schema is not None else None
        path, described = await asyncio.to_thread(_resolve_and_inspect, path, label, declared)
        if await self.store.count(COLLECTION, {"state": "active"}) >= MAX_OFFERS:
            raise AgoraError("invalid_argument", f"this node offers at most {MAX_OFFERS} data sets; remove one")
        now = int(self.clock.now())
        offer = dataset_offer_from_dict(
            {
                "offer_id": new_offer_id(),
                "provider": self.provider,
                "name": name or path.name,
                "tags": list(tags),
                "format": described.format,
                "schema": described.schema.to_dict(),
                "rows": described.rows,
                "size_bytes": described.size_bytes,
                "content_hash": described.content_hash,
                "licence": licence,
                "price_per_update": price_per_update,
                "custom_code": custom_code,
                "valid_from": now,
                "valid_until": now + validity_s,
            }
        )
        async with self.store.transaction():
            await self.store.put(
                COLLECTION, offer.offer_id, {"offer": offer.to_dict(), "path": str(path), "state": "active"}
            )
            await self.store.append_event("dataset.added", offer.offer_id, {"offer": offer.to_dict()})
        self._changed()
        return offer

    async def list(self) -> list[DatasetOffer]:
        docs = await self.store.query(COLLECTION, {"state": "active"}, limit=MAX_OFFERS)
        return sorted((dataset_offer_from_dict(d["offer"]) for d in docs), key=lambda o: o.offer_id)

    async def public(self) -> builtins.list[dict[str, Any]]:
        """What is published: the offers' descriptions, never their paths."""
        return [o.to_dict() for o in await self.list()]

    async def get(self, offer_id: str) -> tuple[DatasetOffer, Path]:
        doc = await self.store.get(COLLECTION, offer_id)
        if doc is None or doc.get("state") != "active":
            raise AgoraError("dataset_not_found", f"no data set {offer_id!r} on this node (`agora dataset list`)")
        return dataset_offer_from_dict(doc["offer"]), Path(str(doc["path"]))

    async def remove(self, offer_id: str) -> DatasetOffer:
        offer, path = await self.get(offer_id)
        async with self.store.transaction():
            await self.store.put(
                COLLECTION, offer_id, {"offer": offer.to_dict(), "path": str(path), "state": "removed"}
            )
            await self.store.append_event("dataset.removed", offer_id, {})
        self._changed()
        return offer


__all__ = ["DatasetBook", "Described", "inspect_dataset", "load_arrays"]
