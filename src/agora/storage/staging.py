"""Staging: get a task's inputs onto disk before it starts, and its outputs into a store after it ends.

`fetch_inputs` is all-or-nothing. It validates every input spec first (names, paths, sources, that
the needed backend is configured), downloads into a hidden sibling directory, and only when every
input is there and verified renames that directory to `dest_dir` and makes it read-only (files 0444,
dirs 0555) so a task cannot alter what it was given. Any failure removes everything fetched and raises
an AgoraError whose message starts with the input's name. Input sources:

  inline  content + encoding (text|base64), capped        local  a ref into this node's LocalCAS
  http    url (http/https), streamed, capped               s3     bucket + key (or uri s3://bucket/key)
  hub     a ref into the hub object store (hub://bucket/<hex>)

`collect_outputs` walks the outputs dir (never following symlinks), stores every regular file in the
chosen content-addressed store and returns one `OutputRef` per file, sorted by path, whose hashes go
into the task's receipt.

The input/output types here are plain dataclasses; `compute` adapts agora.models.job specs to them
(`InputSpec.from_dict` reads the models' `to_dict` shape).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, Protocol

from agora.errors import AgoraError
from agora.storage.http import HttpFetcher
from agora.storage.inline import DEFAULT_MAX_INLINE_BYTES, decode_inline
from agora.storage.integrity import VerifiedFileWriter
from agora.storage.interfaces import CAS_URI_PREFIX, ContentRef, Storage, check_sha256_hex, parse_s3_uri

if TYPE_CHECKING:  # boto3 is imported only by nodes that use S3
    from agora.storage.s3 import S3Storage

log = logging.getLogger("agora.storage")

SourceType = Literal["inline", "local", "http", "s3", "hub"]
SOURCE_TYPES: tuple[str, ...] = ("inline", "local", "http", "s3", "hub")
FETCH_CONCURRENCY = 4
PUBLISH_CONCURRENCY = 8


@dataclass(frozen=True)
class InputSource:
    """Where an input comes from. Which fields matter depends on `type` (see the module docstring)."""

    type: str
    url: str | None = None  # http
    bucket: str | None = None  # s3
    key: str | None = None  # s3
    uri: str | None = None  # s3://bucket/key, cas://sha256/<hex>, hub://bucket/<hex>
    content: str | None = None  # inline
    encoding: str = "text"  # inline: text | base64

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputSource:
        """Read {"type": ..., **fields}; unknown fields are an error (a typo must not be ignored)."""
        if not isinstance(data, Mapping) or "type" not in data:
            raise AgoraError("invalid_argument", "an input source is a mapping with a 'type'")
        known = {"type", "url", "bucket", "key", "uri", "content", "encoding"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise AgoraError("invalid_argument", f"input source has unknown fields {unknown}")
        return cls(**{k: data[k] for k in data})


@dataclass(frozen=True)
class InputSpec:
    name: str
    source: InputSource
    path: str | None = None  # relative to the inputs dir; defaults to `name`
    sha256: str | None = None  # checked after fetching when given

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputSpec:
        if not isinstance(data, Mapping) or "name" not in data or "source" not in data:
            raise AgoraError("invalid_argument", "an input is a mapping with 'name' and 'source'")
        return cls(
            name=data["name"],
            source=InputSource.from_dict(data["source"]),
            path=data.get("path"),
            sha256=data.get("sha256"),
        )


class InputSpecLike(Protocol):
    """Anything shaped like `InputSpec` (the job models' spec after adaptation)."""

    @property
    def name(self) -> str: ...

    @property
    def source(self) -> InputSource: ...

    @property
    def path(self) -> str | None: ...

    @property
    def sha256(self) -> str | None: ...


@dataclass(frozen=True)
class FetchedInput:
    name: str
    path: Path  # absolute, under dest_dir
    sha256: str
    size: int
    source: str


@dataclass(frozen=True)
class OutputRef:
    name: str  # the file's name
    path: str  # relative to the outputs dir, POSIX separators
    sha256: str
    size: int
    uri: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "sha256": self.sha256, "size": self.size, "uri": self.uri}


@dataclass
class Storages:
    """The backends a node has configured; a source or publish target without one is config_invalid."""

    local: Storage | None = None
    s3: S3Storage | None = None
    hub: Storage | None = None
    http: HttpFetcher = field(default_factory=HttpFetcher)  # refuses private/local addresses unless opted in
    inline_max_bytes: int = DEFAULT_MAX_INLINE_BYTES
    s3_max_bytes: int | None = None

    def for_publish(self, target: str = "local") -> Storage:
        """The store outputs go to for a publish type (local | s3 | hub)."""
        store: Storage | None = {"local": self.local, "s3": self.s3, "hub": self.hub}.get(target)
        if target not in ("local", "s3", "hub"):
            raise AgoraError("invalid_argument", f"publish type must be local, s3 or hub, got {target!r}")
        if store is None:
            raise AgoraError("config_invalid", f"outputs should go to {target!r} but this node has no {target} store")
        return store


# -- validation (before any I/O) --------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    name: str
    rel: PurePosixPath
    source: InputSource
    sha256: str | None


def _bad(name: str, message: str, code: str = "invalid_argument") -> AgoraError:
    return AgoraError(code, f"input {name!r}: {message}", details={"input": name})


def _safe_rel(name: str, raw: str) -> PurePosixPath:
    if not isinstance(raw, str) or not raw or "\x00" in raw or "\\" in raw:
        raise _bad(name, f"path {raw!r} must be a non-empty relative path")
    rel = PurePosixPath(raw)
    if rel.is_absolute() or any(part in ("..", ".", "") for part in raw.split("/")):
        raise _bad(name, f"path {raw!r} must be relative, without '.' or '..' parts")
    return rel


def _plan(inputs: Sequence[InputSpecLike], storages: Storages) -> list[_Plan]:
    plans: list[_Plan] = []
    seen_names: set[str] = set()
    seen_paths: dict[PurePosixPath, str] = {}
    for spec in inputs:
        name = spec.name
        if not isinstance(name, str) or not name:
            raise AgoraError("invalid_argument", "every input needs a non-empty name")
        if name in seen_names:
            raise _bad(name, "the name is used by two inputs")
        seen_names.add(name)
        rel = _safe_rel(name, spec.path if spec.path is not None else name)
        for other_path, other in seen_paths.items():
            if rel == other_path or other_path in rel.parents or rel in other_path.parents:
                raise _bad(name, f"path {rel} collides with input {other!r} ({other_path})")
        seen_paths[rel] = name
        expected = check_sha256_hex(spec.sha256, f"input {name!r} sha256") if spec.sha256 else None
        src = spec.source
        if src.type not in SOURCE_TYPES:
            raise _bad(name, f"source type must be one of {', '.join(SOURCE_TYPES)}, got {src.type!r}")
        _check_source(name, src, storages)
        plans.append(_Plan(name, rel, src, expected))
    return plans


def _check_source(name: str, src: InputSource, storages: Storages) -> None:
    t = src.type
    if t == "inline":
        if src.content is None:
            raise _bad(name, "an inline input needs 'content'")
        if src.encoding not in ("text", "base64"):
            raise _bad(name, f"inline encoding must be text or base64, got {src.encoding!r}")
    elif t == "http":
        url = src.url or src.uri
        if not url or not url.startswith(("http://", "https://")):
            raise _bad(name, f"an http input needs an http(s) 'url', got {url!r}")
    elif t == "s3":
        _s3_location(name, src)
        if storages.s3 is None:
            raise _bad(name, "the input is in S3 but this node has no S3 storage configured", "config_invalid")
    elif t in ("local", "hub"):
        _content_ref(name, src)
        if (storages.local if t == "local" else storages.hub) is None:
            raise _bad(name, f"the input is in the {t} store but this node has none configured", "config_invalid")


def _s3_location(name: str, src: InputSource) -> tuple[str, str]:
    if src.uri:
        try:
            return parse_s3_uri(src.uri)
        except AgoraError as e:
            raise _bad(name, e.message) from None
    if not src.bucket or not src.key:
        raise _bad(name, "an s3 input needs 'bucket' and 'key' (or 'uri': s3://bucket/key)")
    return src.bucket, src.key


def _content_ref(name: str, src: InputSource) -> ContentRef:
    prefix = CAS_URI_PREFIX if src.type == "local" else "hub://"
    if not src.uri or not src.uri.startswith(prefix):
        raise _bad(name, f"a {src.type} input needs 'uri' of the form {prefix}...<sha256 hex>")
    try:
        return ContentRef.parse(src.uri)
    except AgoraError as e:
        raise _bad(name, e.message) from None


# -- fetching ---------------------------------------------------------------------------------------


async def _fetch_one(plan: _Plan, target: Path, storages: Storages) -> tuple[str, int]:
    src = plan.source
    if src.type == "inline":
        data = decode_inline(
            src.content or "", "base64" if src.encoding == "base64" else "text", storages.inline_max_bytes
        )
        return await asyncio.to_thread(_write_verified, target, data, plan.sha256, plan.name)
    if src.type == "http":
        return await storages.http.fetch_to_file(src.url or src.uri or "", target, expected_sha256=plan.sha256)
    if src.type == "s3":
        assert storages.s3 is not None
        bucket, key = _s3_location(plan.name, src)
        return await storages.s3.get_object_to_file(
            bucket, key, target, expected_sha256=plan.sha256, max_bytes=storages.s3_max_bytes
        )
    ref = _content_ref(plan.name, src)
    if plan.sha256 is not None and plan.sha256 != ref.sha256:
        raise AgoraError("storage_integrity", f"sha256 {plan.sha256} contradicts the source's {ref.sha256}")
    store = storages.local if src.type == "local" else storages.hub
    assert store is not None
    await store.get_to_file(ref, target)
    return ref.sha256, (await asyncio.to_thread(os.stat, target)).st_size


def _write_verified(target: Path, data: bytes, expected: str | None, name: str) -> tuple[str, int]:
    with VerifiedFileWriter(target, expected_sha256=expected, what=f"inline input {name!r}") as w:
        w.write(data)
        return w.commit()


async def fetch_inputs(inputs: Sequence[InputSpecLike], dest_dir: Path, storages: Storages) -> list[FetchedInput]:
    """Fetch every input into `dest_dir` (the task's inputs dir), read-only, or nothing at all.

    `dest_dir` must not exist or be empty. Returns one FetchedInput per spec, in spec order.
    """
    plans = _plan(inputs, storages)
    dest_dir = Path(dest_dir)
    if dest_dir.exists() and (not dest_dir.is_dir() or any(dest_dir.iterdir())):
        raise AgoraError("already_exists", f"inputs dir {dest_dir} already has content; stage into a fresh one")
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = dest_dir.parent / f".{dest_dir.name}.staging-{secrets.token_hex(6)}"
    staging.mkdir()
    sem = asyncio.Semaphore(FETCH_CONCURRENCY)
    results: dict[str, tuple[str, int]] = {}

    async def one(plan: _Plan) -> None:
        async with sem:
            target = staging / plan.rel
            try:
                await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
                results[plan.name] = await _fetch_one(plan, target, storages)
            except AgoraError as e:
                raise AgoraError(
                    e.code,
                    f"input {plan.name!r}: {e.message}",
                    hint=e.hint,
                    retryable=e.retryable,
                    details={**e.details, "input": plan.name},
                ) from e
            except OSError as e:
                raise AgoraError(
                    "internal", f"input {plan.name!r}: could not write {target}: {e}", details={"input": plan.name}
                ) from e

    try:
        try:
            async with asyncio.TaskGroup() as tg:
                for plan in plans:
                    tg.create_task(one(plan))
        except BaseExceptionGroup as eg:
            raise _first_error(eg) from None
        if dest_dir.exists():
            dest_dir.rmdir()  # empty, checked above
        os.replace(staging, dest_dir)
    except BaseException:
        await asyncio.to_thread(_force_remove, staging)
        raise
    await asyncio.to_thread(_make_read_only, dest_dir)
    return [
        FetchedInput(p.name, dest_dir / p.rel, results[p.name][0], results[p.name][1], p.source.type) for p in plans
    ]


def _first_error(eg: BaseExceptionGroup) -> BaseException:
    """The error to report from a failed TaskGroup: an AgoraError if any, else the first one."""
    flat: list[BaseException] = []

    def walk(g: BaseExceptionGroup) -> None:
        for e in g.exceptions:
            if isinstance(e, BaseExceptionGroup):
                walk(e)
            else:
                flat.append(e)

    walk(eg)
    for e in flat:
        if isinstance(e, AgoraError):
            return e
    return flat[0] if flat else eg


def _chmod_no_follow(path: str, mode: int) -> None:
    """chmod `path` unless it is a symlink: os.chmod follows links, and a task can plant one to any host dir.

    Linux has no lchmod, so the check is an lstat just before; cleanup runs after the task has ended, so
    nothing in the sandbox can swap the entry in between.
    """
    try:
        st = os.lstat(path)
    except OSError:
        return
    if stat.S_ISLNK(st.st_mode):
        return
    with contextlib.suppress(OSError):
        os.chmod(path, mode)


def _make_read_only(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root, topdown=False, followlinks=False):
        for f in filenames:
            _chmod_no_follow(os.path.join(dirpath, f), 0o444)
        for d in dirnames:
            _chmod_no_follow(os.path.join(dirpath, d), 0o555)
    _chmod_no_follow(str(root), 0o555)


def _force_remove(root: Path) -> None:
    """rmtree that first restores write permission (read-only dirs cannot be emptied); never follows links."""
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):  # a symlink (or file) in place of the dir: remove the entry only
        with contextlib.suppress(OSError):
            os.unlink(root)
        return
    _chmod_no_follow(str(root), 0o755)
    for dirpath, dirnames, _ in os.walk(root, followlinks=False):
        for d in list(dirnames):
            full = os.path.join(dirpath, d)
            try:
                is_link = stat.S_ISLNK(os.lstat(full).st_mode)
            except OSError:
                is_link = True
            if is_link:
                dirnames.remove(d)
                continue
            _chmod_no_follow(full, 0o755)
    shutil.rmtree(root, ignore_errors=True)


def remove_tree(root: Path) -> None:
    """Blocking: delete a work or inputs dir even when parts are read-only, never following a symlink."""
    _force_remove(Path(root))


async def remove_inputs(dest_dir: Path) -> None:
    """Delete a staged (read-only) inputs dir; executors' cleanup calls this before removing work_dir."""
    await asyncio.to_thread(_force_remove, Path(dest_dir))


# -- outputs ----------------------------------------------------------------------------------------


def _list_outputs(root: Path) -> list[tuple[Path, str]]:
    """Regular files under root, sorted by relative path; symlinks and special files are skipped."""
    found: list[tuple[Path, str]] = []
    if not root.is_dir():
        return found
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for f in filenames:
            full = Path(dirpath) / f
            st = os.lstat(full)
            rel = full.relative_to(root).as_posix()
            if stat.S_ISREG(st.st_mode):
                found.append((full, rel))
            else:
                log.warning("output %s is not a regular file (symlink or special); not collected", rel)
    found.sort(key=lambda item: item[1])
    return found


async def collect_outputs(outputs_dir: Path, storage: Storage) -> list[OutputRef]:
    """Store every regular file under `outputs_dir` in `storage`; returns refs sorted by path.

    A missing outputs dir means no outputs. The hashes are what the receipt commits to.
    """
    files = await asyncio.to_thread(_list_outputs, Path(outputs_dir))
    sem = asyncio.Semaphore(PUBLISH_CONCURRENCY)

    async def one(full: Path, rel: str) -> OutputRef:
        async with sem:
            try:
                ref = await storage.put(full)
            except AgoraError as e:
                raise AgoraError(
                    e.code,
                    f"output {rel!r}: {e.message}",
                    hint=e.hint,
                    retryable=e.retryable,
                    details={**e.details, "output": rel},
                ) from e
        assert ref.size is not None
        return OutputRef(name=full.name, path=rel, sha256=ref.sha256, size=ref.size, uri=ref.uri)

    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(full, rel)) for full, rel in files]
    except BaseExceptionGroup as eg:
        raise _first_error(eg) from None
    return [t.result() for t in tasks]


__all__ = [
    "SOURCE_TYPES",
    "FetchedInput",
    "InputSource",
    "InputSpec",
    "InputSpecLike",
    "OutputRef",
    "SourceType",
    "Storages",
    "collect_outputs",
    "fetch_inputs",
    "remove_inputs",
    "remove_tree",
]
