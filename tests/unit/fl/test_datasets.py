"""Data sets on the provider: CSV / NPZ / folder described (schema, rows, content hash), a missing file and
a declared schema that does not match the file refused with their codes, the local path never published."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from agora.clock import ManualClock
from agora.errors import AgoraError
from agora.fl.datasets import DatasetBook, inspect_dataset, load_arrays
from agora.identity import Keypair
from agora.models.dataset import DatasetSchema
from agora.store import MemoryStore

ME = Keypair.generate().did
NOW = 1_000_000


def write_csv(path: Path, rows: int = 6) -> Path:
    lines = ["a,b,label"] + [f"{i},{i * 2},{i % 3}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
async def book() -> AsyncIterator[DatasetBook]:
    store = MemoryStore(ManualClock(NOW))
    await store.open()
    yield DatasetBook(store, ME, clock=ManualClock(NOW))
    await store.close()


def test_csv_is_described(tmp_path: Path) -> None:
    d = inspect_dataset(write_csv(tmp_path / "d.csv"))
    assert d.format == "csv" and d.rows == 6
    assert d.schema.features == ("a", "b") and d.schema.label == "label" and d.schema.classes == ("0", "1", "2")
    assert d.content_hash.startswith("sha256:") and d.size_bytes == (tmp_path / "d.csv").stat().st_size


def test_content_hash_follows_the_bytes(tmp_path: Path) -> None:
    first = inspect_dataset(write_csv(tmp_path / "d.csv", rows=6)).content_hash
    second = inspect_dataset(write_csv(tmp_path / "d.csv", rows=7)).content_hash
    assert first != second


def test_npz_and_folder(tmp_path: Path) -> None:
    x = np.arange(12, dtype=float).reshape(4, 3)
    np.savez(tmp_path / "one.npz", x=x, y=np.array([0, 1, 0, 1]))
    d = inspect_dataset(tmp_path / "one.npz")
    assert d.format == "npz" and d.rows == 4 and d.schema.features == ("x0", "x1", "x2")
    folder = tmp_path / "parts"
    folder.mkdir()
    np.savez(folder / "a.npz", x=x, y=np.array([0, 1, 0, 1]))
    np.savez(folder / "b.npz", x=x[:2], y=np.array([1, 1]))
    d = inspect_dataset(folder)
    assert d.format == "folder" and d.rows == 6
    xs, ys = load_arrays(folder, d.schema)
    assert xs.shape == (6, 3) and ys.tolist() == [0, 1, 0, 1, 1, 1]


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AgoraError) as err:
        inspect_dataset(tmp_path / "nope.csv")
    assert err.value.code == "dataset_not_found"


def test_declared_schema_must_match_the_file(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv")
    declared = DatasetSchema(("a", "c"), "label")
    with pytest.raises(AgoraError) as err:
        inspect_dataset(path, declared=declared)
    assert err.value.code == "dataset_schema_mismatch"
    assert any("c" in d for d in err.value.details["differences"])
    ok = inspect_dataset(path, declared=DatasetSchema(("a", "b"), "label", ("0", "1", "2")))
    assert ok.schema.features == ("a", "b")


async def test_the_book_keeps_the_path_private(book: DatasetBook, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "secret-name-dir.csv")
    offer = await book.add(path, tags=["tabular", "demo"], licence="CC-BY-4.0", price_per_update=3)
    assert offer.custom_code is False and offer.price_per_update == 3 and offer.provider == ME
    published = await book.public()
    assert [o["offer_id"] for o in published] == [offer.offer_id]
    assert str(tmp_path) not in repr(published)
    _, kept = await book.get(offer.offer_id)
    assert kept == path.resolve()
    events = await book.store.events(kind="dataset.added")
    assert [e.subject for e in events] == [offer.offer_id]
    await book.remove(offer.offer_id)
    assert await book.list() == []
    with pytest.raises(AgoraError) as err:
        await book.get(offer.offer_id)
    assert err.value.code == "dataset_not_found"


async def test_the_book_refuses_a_missing_file(book: DatasetBook, tmp_path: Path) -> None:
    with pytest.raises(AgoraError) as err:
        await book.add(tmp_path / "gone.csv", tags=["x"], licence="MIT")
    assert err.value.code == "dataset_not_found"
    assert await book.list() == []
