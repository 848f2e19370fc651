"""fetch_inputs refuses bad specs before touching the network or the disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from agora.errors import AgoraError
from agora.storage import InputSource, InputSpec, LocalCAS, Storages, fetch_inputs

H = "a" * 64


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


UNREACHABLE = "http://127.0.0.1:9/never-contacted"


def _inline(name: str, path: str | None = None) -> InputSpec:
    return InputSpec(name, InputSource("inline", content="x"), path=path)


@pytest.mark.parametrize(
    ("specs", "needle"),
    [
        ([_inline("a"), _inline("a")], "used by two inputs"),
        ([_inline("a", "../escape")], "relative"),
        ([_inline("a", "/etc/passwd")], "relative"),
        ([_inline("a", "x/./y")], "relative"),
        ([_inline("a", "")], "non-empty"),
        ([_inline("a", "dir"), _inline("b", "dir/file")], "collides"),
        ([_inline("a", "same"), _inline("b", "same")], "collides"),
        ([InputSpec("a", InputSource("ftp", url="ftp://x"))], "source type"),
        ([InputSpec("a", InputSource("inline"))], "content"),
        ([InputSpec("a", InputSource("inline", content="x", encoding="hex"))], "encoding"),
        ([InputSpec("a", InputSource("http", url="file:///etc/passwd"))], "http"),
        ([InputSpec("a", InputSource("s3", bucket="b"))], "key"),
        ([InputSpec("a", InputSource("s3", uri="s3://bucket"))], "bucket and a key"),
        ([InputSpec("a", InputSource("local", uri="cas://sha256/xyz"))], "sha256"),
        ([InputSpec("a", InputSource("hub", uri=f"cas://sha256/{H}"))], "hub://"),
        ([InputSpec("a", InputSource("inline", content="x"), sha256="nothex")], "sha256"),
        ([InputSpec("", InputSource("inline", content="x"))], "name"),
    ],
)
async def test_invalid_specs_fail_before_any_io(tmp_path: Path, specs: list[InputSpec], needle: str) -> None:
    # a valid http input first: if validation ran late, it would be fetched (and fail differently)
    first = InputSpec("zzz-first", InputSource("http", url=UNREACHABLE))
    with pytest.raises(AgoraError) as info:
        await fetch_inputs([first, *specs], tmp_path / "inputs", Storages())
    assert info.value.code == "invalid_argument", info.value
    assert needle in info.value.message
    assert listing(tmp_path) == []


@pytest.mark.parametrize("source", [InputSource("s3", bucket="b", key="k"), InputSource("hub", uri=f"hub://b/{H}")])
async def test_a_source_without_a_configured_backend_is_config_invalid(tmp_path: Path, source: InputSource) -> None:
    with pytest.raises(AgoraError) as info:
        await fetch_inputs([InputSpec("data", source)], tmp_path / "inputs", Storages())
    assert info.value.code == "config_invalid"
    assert "'data'" in info.value.message
    assert listing(tmp_path) == []


async def test_local_ref_with_contradicting_sha_is_refused(tmp_path: Path) -> None:
    cas = LocalCAS(tmp_path / "cas")
    ref = await cas.put(b"content")
    spec = InputSpec("x", InputSource("local", uri=ref.uri), sha256=H)
    with pytest.raises(AgoraError) as info:
        await fetch_inputs([spec], tmp_path / "work" / "inputs", Storages(local=cas))
    assert info.value.code == "storage_integrity"
    assert list((tmp_path / "work").iterdir()) == []


def test_specs_from_the_job_model_dict_shape() -> None:
    spec = InputSpec.from_dict(
        {"name": "data", "source": {"type": "http", "url": "https://example.org/d"}, "path": "d.csv", "sha256": H}
    )
    assert spec == InputSpec("data", InputSource("http", url="https://example.org/d"), path="d.csv", sha256=H)
    with pytest.raises(AgoraError) as info:
        InputSource.from_dict({"type": "http", "ulr": "typo"})
    assert "ulr" in info.value.message
    with pytest.raises(AgoraError):
        InputSpec.from_dict({"name": "x"})
