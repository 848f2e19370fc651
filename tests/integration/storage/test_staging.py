"""Staging with every input source on real servers: read-only inputs, all-or-nothing, outputs."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

import pytest

from agora.errors import AgoraError
from agora.storage import (
    HttpFetcher,
    HubObjectStore,
    InputSource,
    InputSpec,
    LocalCAS,
    S3Storage,
    Storages,
    collect_outputs,
    fetch_inputs,
    remove_inputs,
)
from tests.integration.storage.conformance import listing
from tests.integration.storage.conftest import TEST_BUCKET, HttpServer

pytestmark = pytest.mark.integration

LOOPBACK_HTTP = HttpFetcher(allow_private_inputs=True)
"""The test HTTP server is on 127.0.0.1, which a provider refuses unless its operator opts in."""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _lexists(path: Path) -> bool:
    return os.path.lexists(path)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def cas(tmp_path: Path) -> LocalCAS:
    return LocalCAS(tmp_path / "cas")


@pytest.fixture
def work(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    return d


async def test_every_source_is_fetched_read_only(
    work: Path,
    cas: LocalCAS,
    s3_storage: S3Storage,
    hub_store: HubObjectStore,
    http_server: HttpServer,
) -> None:
    blobs = {name: os.urandom(1000 + i) for i, name in enumerate(["local", "http", "s3", "hub", "b64"])}
    local_ref = await cas.put(blobs["local"])
    hub_ref = await hub_store.put(blobs["hub"])
    await s3_storage.put_object(TEST_BUCKET, f"{s3_storage.prefix}/in/data.bin", blobs["s3"])
    url = http_server.serve("/in.bin", blobs["http"])
    inputs = [
        InputSpec("text", InputSource("inline", content="hello\n")),
        InputSpec("b64", InputSource("inline", content=base64.b64encode(blobs["b64"]).decode(), encoding="base64")),
        InputSpec("local", InputSource("local", uri=local_ref.uri), path="refs/local.bin"),
        InputSpec("http", InputSource("http", url=url), sha256=_sha(blobs["http"])),
        InputSpec("s3", InputSource("s3", bucket=TEST_BUCKET, key=f"{s3_storage.prefix}/in/data.bin")),
        InputSpec("hub", InputSource("hub", uri=hub_ref.uri), path="refs/hub.bin"),
    ]
    storages = Storages(local=cas, s3=s3_storage, hub=hub_store, http=LOOPBACK_HTTP)
    dest = work / "inputs"
    fetched = await fetch_inputs(inputs, dest, storages)

    assert [f.name for f in fetched] == ["text", "b64", "local", "http", "s3", "hub"]
    expected = {
        "text": b"hello\n",
        "b64": blobs["b64"],
        "local": blobs["local"],
        "http": blobs["http"],
        "s3": blobs["s3"],
        "hub": blobs["hub"],
    }
    for f in fetched:
        assert f.path.read_bytes() == expected[f.name], f.name
        assert f.sha256 == _sha(expected[f.name])
        assert f.size == len(expected[f.name])
        assert f.path.is_relative_to(dest)
        assert _mode(f.path) == 0o444, f"{f.name} must be read-only"
    assert (dest / "refs" / "local.bin").is_file()
    assert _mode(dest) == 0o555
    assert _mode(dest / "refs") == 0o555
    assert listing(work) == ["inputs"], "no staging leftovers"
    await remove_inputs(dest)
    assert not dest.exists()


async def test_hash_mismatch_removes_everything(work: Path, cas: LocalCAS, http_server: HttpServer) -> None:
    good = await cas.put(b"fine")
    inputs = [
        InputSpec("a", InputSource("local", uri=good.uri)),
        InputSpec("b", InputSource("inline", content="also fine")),
        InputSpec("bad", InputSource("http", url=http_server.serve("/bad", b"tampered")), sha256=_sha(b"original")),
    ]
    with pytest.raises(AgoraError) as info:
        await fetch_inputs(inputs, work / "inputs", Storages(local=cas, http=LOOPBACK_HTTP))
    assert info.value.code == "storage_integrity"
    assert "'bad'" in info.value.message
    assert info.value.details["input"] == "bad"
    assert listing(work) == [], "no partial inputs, no staging dir"


async def test_missing_input_names_the_input(
    work: Path, cas: LocalCAS, s3_storage: S3Storage, hub_store: HubObjectStore, http_server: HttpServer
) -> None:
    absent = cas.ref_for(_sha(b"never stored"), None)
    storages = Storages(local=cas, s3=s3_storage, hub=hub_store, http=LOOPBACK_HTTP)
    cases = [
        InputSpec("weights", InputSource("local", uri=absent.uri)),
        InputSpec("dataset", InputSource("http", url=http_server.base_url + "/nothing")),
        InputSpec("corpus", InputSource("s3", uri=f"s3://{TEST_BUCKET}/{s3_storage.prefix}/absent")),
        InputSpec("update", InputSource("hub", uri=hub_store.ref_for(absent.sha256, None).uri)),
    ]
    for spec in cases:
        ok = InputSpec("ok", InputSource("inline", content="x"))
        with pytest.raises(AgoraError) as info:
            await fetch_inputs([ok, spec], work / "inputs", storages)
        assert info.value.code == "input_missing", spec.name
        assert f"input {spec.name!r}" in info.value.message
        assert listing(work) == []


async def test_inline_size_cap(work: Path) -> None:
    spec = InputSpec("big", InputSource("inline", content="x" * 101))
    with pytest.raises(AgoraError) as info:
        await fetch_inputs([spec], work / "inputs", Storages(inline_max_bytes=100))
    assert info.value.code == "input_too_large"
    assert "'big'" in info.value.message
    assert listing(work) == []


async def test_existing_inputs_dir_with_content_is_refused(work: Path) -> None:
    dest = work / "inputs"
    dest.mkdir()
    (dest / "old").write_text("stale")
    with pytest.raises(AgoraError) as info:
        await fetch_inputs([InputSpec("a", InputSource("inline", content="x"))], dest, Storages())
    assert info.value.code == "already_exists"
    assert (dest / "old").read_text() == "stale"


async def test_an_empty_existing_inputs_dir_is_used(work: Path) -> None:
    dest = work / "inputs"
    dest.mkdir()
    fetched = await fetch_inputs([InputSpec("a", InputSource("inline", content="x"))], dest, Storages())
    assert fetched[0].path.read_bytes() == b"x"


async def test_no_inputs_gives_an_empty_read_only_dir(work: Path) -> None:
    assert await fetch_inputs([], work / "inputs", Storages()) == []
    assert (work / "inputs").is_dir()
    assert _mode(work / "inputs") == 0o555


# -- outputs ----------------------------------------------------------------------------------------


def _make_outputs(root: Path) -> dict[str, bytes]:
    files = {
        "result.json": b'{"ok": true}',
        "logs/run.log": os.urandom(5000),
        "logs/deep/empty.txt": b"",
        "model.bin": os.urandom(300_000),
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


async def test_collect_outputs_to_local(tmp_path: Path, cas: LocalCAS) -> None:
    out = tmp_path / "outputs"
    out.mkdir()
    files = _make_outputs(out)
    (out / "link").symlink_to("/etc/hostname")  # never followed, never collected
    refs = await collect_outputs(out, cas)
    assert [r.path for r in refs] == sorted(files)
    for r in refs:
        assert r.sha256 == _sha(files[r.path])
        assert r.size == len(files[r.path])
        assert r.name == Path(r.path).name
        assert r.uri == f"cas://sha256/{r.sha256}"
        assert cas.path_of(r.sha256).read_bytes() == files[r.path]
    assert refs[0].to_dict() == {
        "name": refs[0].name,
        "path": refs[0].path,
        "sha256": refs[0].sha256,
        "size": refs[0].size,
        "uri": refs[0].uri,
    }


@pytest.mark.parametrize("target", ["s3", "hub"])
async def test_collect_outputs_to_remote_stores(
    tmp_path: Path, target: str, s3_storage: S3Storage, hub_store: HubObjectStore
) -> None:
    out = tmp_path / "outputs"
    out.mkdir()
    files = _make_outputs(out)
    store = Storages(s3=s3_storage, hub=hub_store).for_publish(target)
    refs = await collect_outputs(out, store)
    assert {r.path: r.sha256 for r in refs} == {k: _sha(v) for k, v in files.items()}
    for r in refs:
        assert r.uri.startswith(f"{target}://")
        assert await store.get(store.ref_for(r.sha256, r.size)) == files[r.path]


async def test_output_over_the_hub_cap_names_the_file(tmp_path: Path, hub_store: HubObjectStore) -> None:
    out = tmp_path / "outputs"
    out.mkdir()
    (out / "huge.bin").write_bytes(b"\0" * (hub_store.max_object_bytes + 1))
    with pytest.raises(AgoraError) as info:
        await collect_outputs(out, hub_store)
    assert info.value.code == "message_too_large"
    assert "'huge.bin'" in info.value.message


async def test_missing_outputs_dir_means_no_outputs(tmp_path: Path, cas: LocalCAS) -> None:
    assert await collect_outputs(tmp_path / "never-created", cas) == []


def test_publish_target_must_be_configured() -> None:
    with pytest.raises(AgoraError) as info:
        Storages().for_publish("s3")
    assert info.value.code == "config_invalid"
    with pytest.raises(AgoraError) as info:
        Storages().for_publish("ftp")
    assert info.value.code == "invalid_argument"


async def test_cleanup_never_follows_symlinks(work: Path, tmp_path: Path) -> None:
    """A task can leave `ln -s /any/dir outputs/x`; cleanup must not chmod (or empty) what the link points to."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    os.chmod(outside / "keep.txt", 0o400)
    os.chmod(outside, 0o700)
    dest = work / "inputs"
    fetched = await fetch_inputs([InputSpec("a", InputSource("inline", content="x"))], dest, Storages())
    assert fetched and _mode(dest) == 0o555
    outputs = work / "outputs" / "sub"
    outputs.mkdir(parents=True)
    (outputs / "evil").symlink_to(outside)
    (outputs / "evil-file").symlink_to(outside / "keep.txt")
    os.chmod(outputs, 0o555)
    link_root = tmp_path / "link-root"
    link_root.symlink_to(outside)

    await remove_inputs(work)
    await remove_inputs(link_root)

    assert not _lexists(work)
    assert not _lexists(link_root), "a symlink given as the root is removed, not followed"
    assert _mode(outside) == 0o700, "the directory a planted symlink points to was chmodded"
    assert _mode(outside / "keep.txt") == 0o400
    assert (outside / "keep.txt").read_text() == "mine"
