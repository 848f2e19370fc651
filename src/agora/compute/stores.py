"""Which store a task's inputs come from and its outputs go to, on this node: `NodeStores`.

A job spec names a source per input (`inline`, `local`, `http`, `s3`, `hub`) and a publish target per
output (`local`, `s3`, `hub`); this module turns those into configured backends of `agora.storage`, or
refuses before any I/O with an error that says what to configure:

- `local`: the node's content-addressed store (always there).
- `hub`: the hub's JetStream object store, opened lazily on first use, one `HubObjectStore` per bucket
  over the node's own NATS connection (`HubOpener`, given by the node). A node without a hub (the memory
  transport of tests and the simulator) refuses with `config_invalid`.
- `s3`: the node operator's S3 server (`S3Settings`). The provider's credentials must not become the
  requester's: a job may only read and write the bucket the operator configured, on the operator's
  endpoint (another bucket: `storage_forbidden`; another endpoint or region: `config_invalid`). A node
  without S3 settings refuses with `config_invalid` and the flags to set.

The requester side uses the same object (`can_download` / `download`) to fetch outputs a provider
published to the hub or S3, verified against the SHA-256 in the signed receipt; the orchestrator falls
back to the provider's own copy when this node cannot reach the published one.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agora.compute.taskprep import hub_bucket_of, hub_input_uri
from agora.errors import AgoraError
from agora.models.job import Publish, Scalar, TaskSpec
from agora.storage import ContentRef, HttpFetcher, HubObjectStore, LocalCAS, Storage, Storages, parse_s3_uri
from agora.storage.hub import DEFAULT_BUCKET as DEFAULT_HUB_BUCKET

if TYPE_CHECKING:  # boto3 is imported only by nodes that use S3
    from agora.storage.s3 import S3Storage

HubOpener = Callable[[str], Awaitable[HubObjectStore]]
"""Opens the hub object store of one bucket (called once per bucket, on first use)."""

S3_HINT = (
    "Start the provider with --s3-endpoint URL --s3-bucket NAME [--s3-region REGION] (`agora node up` takes the "
    "same flags) and its credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or publish to hub or local."
)
NO_HUB_REASON = "this node has no hub object store"
_HUB_BUCKET_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MAX_OPEN = 32  # stores kept open per kind; a spec naming many buckets or prefixes cannot grow this
_DEFAULT_S3_PREFIX = "agora"
PUBLISH_CONCURRENCY = 4


@dataclass(frozen=True)
class S3Settings:
    """The node operator's S3 store. Credentials None: boto3's own chain (the AWS_* variables, ...)."""

    bucket: str
    endpoint: str | None = None  # None: AWS
    region: str = "us-east-1"
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)

    def where(self) -> str:
        return f"bucket {self.bucket!r} at {self.endpoint or 'AWS S3'} ({self.region})"


def _norm_endpoint(url: str | None) -> str | None:
    return url.rstrip("/").lower() if url else None


class HubBuckets(Storage):
    """The hub object store across buckets: a ref is read from the bucket its URI names (hub://<bucket>/<hex>);
    puts go to the default bucket. Each bucket's store is opened on first use."""

    scheme = "hub"

    def __init__(self, opener: HubOpener, default_bucket: str = DEFAULT_HUB_BUCKET) -> None:
        self._opener = opener
        self.default_bucket = default_bucket
        self._open: OrderedDict[str, HubObjectStore] = OrderedDict()
        self._lock = asyncio.Lock()

    async def bucket(self, name: str) -> HubObjectStore:
        if not _HUB_BUCKET_RE.fullmatch(name):
            raise AgoraError("invalid_argument", f"hub bucket {name!r}: 1-64 letters, digits, '-' or '_'")
        async with self._lock:
            store = self._open.get(name)
            if store is None:
                store = await self._opener(name)
                self._open[name] = store
                if len(self._open) > _MAX_OPEN:
                    _, old = self._open.popitem(last=False)
                    await old.close()
            self._open.move_to_end(name)
            return store

    async def _of(self, ref: ContentRef) -> HubObjectStore:
        if ref.scheme != "hub":
            raise AgoraError("invalid_argument", f"not a hub object: {ref.uri}")
        return await self.bucket(ref.uri[len("hub://") :].split("/", 1)[0])

    def ref_for(self, sha256: str, size: int | None) -> ContentRef:
        return ContentRef(sha256=sha256, size=size, uri=f"hub://{self.default_bucket}/{sha256}")

    async def put(self, data: bytes | Path) -> ContentRef:
        return await (await self.bucket(self.default_bucket)).put(data)

    async def get(self, ref: ContentRef) -> bytes:
        return await (await self._of(ref)).get(ref)

    async def get_to_file(self, ref: ContentRef, path: Path) -> None:
        await (await self._of(ref)).get_to_file(ref, path)

    async def exists(self, ref: ContentRef) -> bool:
        return await (await self._of(ref)).exists(ref)

    async def delete(self, ref: ContentRef) -> None:
        await (await self._of(ref)).delete(ref)

    async def close(self) -> None:
        async with self._lock:
            stores, self._open = list(self._open.values()), OrderedDict()
        for store in stores:
            await store.close()


class NodeStores:
    """A node's storage backends and the rules for which one a task's input or output uses."""

    def __init__(
        self,
        local: LocalCAS,
        *,
        http: HttpFetcher | None = None,
        hub: HubOpener | None = None,
        hub_bucket: str = DEFAULT_HUB_BUCKET,
        no_hub_reason: str = NO_HUB_REASON,
        s3: S3Settings | None = None,
    ) -> None:
        self.local = local
        self.http = http or HttpFetcher()
        self.hub_bucket = hub_bucket
        self.hub: HubBuckets | None = HubBuckets(hub, hub_bucket) if hub is not None else None
        self.no_hub_reason = no_hub_reason
        self.s3_settings = s3
        self._s3: OrderedDict[str, S3Storage] = OrderedDict()  # by key prefix, all in the configured bucket
        self._s3_lock = asyncio.Lock()

    # -- checks before any I/O ------------------------------------------------------------------
    def check_task(self, task: TaskSpec) -> None:
        """Refuse a task whose inputs or outputs need a backend this node lacks or must not use for it."""
        for inp in task.inputs:
            where = f"input {inp.name!r}"
            kind = inp.source.type
            if kind == "hub":
                hub_input_uri(inp, self.hub_bucket)  # a malformed spec is told as such first
                self._need_hub(where)
            elif kind == "s3":
                self._need_s3(where, inp.source.params)
        for out in task.outputs:
            where = f"output {out.name!r}"
            if out.publish.type == "hub":
                self._hub_bucket_of(f"{where}.publish", out.publish.params)
                self._need_hub(where)
            elif out.publish.type == "s3":
                self._need_s3(where, out.publish.params)

    def _need_hub(self, where: str) -> HubBuckets:
        if self.hub is None:
            raise AgoraError(
                "config_invalid",
                f"{where} uses the hub object store, but {self.no_hub_reason}",
                hint="Run the task on a node connected to a hub (NATS transport), or use local or s3.",
                details={"needs": "hub"},
            )
        return self.hub

    def _hub_bucket_of(self, where: str, params: Mapping[str, Scalar]) -> str:
        return hub_bucket_of(where, params, self.hub_bucket)

    def _need_s3(self, where: str, params: Mapping[str, Scalar]) -> S3Settings:
        s3 = self.s3_settings
        if s3 is None:
            raise AgoraError(
                "config_invalid",
                f"{where} uses S3, but this node has no S3 store configured",
                hint=S3_HINT,
                details={"needs": "s3"},
            )
        endpoint, region, bucket = params.get("endpoint"), params.get("region"), params.get("bucket", s3.bucket)
        if endpoint is not None and _norm_endpoint(str(endpoint)) != _norm_endpoint(s3.endpoint):
            raise AgoraError(
                "config_invalid",
                f"{where} names S3 endpoint {endpoint}, but this node's S3 is {s3.endpoint or 'AWS S3'}",
                hint="A provider uses its own S3 server only (its credentials never go to a server a job names): "
                "drop `endpoint` from the spec or run the task on a node configured for that server.",
            )
        if region is not None and str(region) != s3.region:
            raise AgoraError(
                "config_invalid",
                f"{where} names S3 region {region}, but this node's S3 is in {s3.region}",
                hint="Drop `region` from the spec, or start the provider with --s3-region " + str(region),
            )
        if bucket != s3.bucket:
            raise AgoraError(
                "storage_forbidden",
                f"{where} names S3 bucket {bucket!r}; this node reads and writes only {s3.where()}",
                hint="A provider lends its S3 credentials to jobs for its configured bucket only: use "
                f"bucket {s3.bucket!r}, or a provider configured for {bucket!r}.",
                details={"bucket": str(bucket), "allowed": s3.bucket},
            )
        return s3

    # -- opening backends -----------------------------------------------------------------------
    async def s3_store(self, prefix: str = _DEFAULT_S3_PREFIX) -> S3Storage:
        """The configured bucket's store with this key prefix (opened on first use; boto3 loads then)."""
        s3 = self._need_s3("S3 storage", {})
        prefix = prefix.strip("/") or _DEFAULT_S3_PREFIX
        async with self._s3_lock:
            store = self._s3.get(prefix)
            if store is None:

                def make() -> S3Storage:
                    from agora.storage.s3 import S3Storage

                    return S3Storage(s3.endpoint, s3.bucket, s3.access_key, s3.secret_key, s3.region, prefix)

                store = await asyncio.to_thread(make)
                self._s3[prefix] = store
                if len(self._s3) > _MAX_OPEN:
                    self._s3.popitem(last=False)  # not closed: a put in flight may still use it; GC closes it
            self._s3.move_to_end(prefix)
            return store

    async def publisher(self, publish: Publish, where: str = "output") -> Storage:
        """The store an output goes to (`check_task` has vetted the spec; this repeats the checks)."""
        kind = publish.type
        if kind == "local":
            return self.local
        if kind == "hub":
            return await self._need_hub(where).bucket(self._hub_bucket_of(f"{where}.publish", publish.params))
        if kind == "s3":
            self._need_s3(where, publish.params)
            return await self.s3_store(str(publish.params.get("key", _DEFAULT_S3_PREFIX)))
        raise AgoraError("invalid_argument", f"{where}: publish type must be local, s3 or hub, got {kind!r}")

    async def input_storages(self, task: TaskSpec) -> Storages:
        """The backends `agora.storage.fetch_inputs` needs for this task's inputs (S3 opened only if used)."""
        kinds = {inp.source.type for inp in task.inputs}
        return Storages(
            local=self.local,
            http=self.http,
            hub=self.hub if "hub" in kinds else None,
            s3=await self.s3_store() if "s3" in kinds else None,
        )

    # -- the requester side: outputs published elsewhere ----------------------------------------
    def can_download(self, uri: str) -> bool:
        """Whether this node can read an output published at `uri` (hub: it has a hub; s3: its own bucket)."""
        if uri.startswith("hub://"):
            return self.hub is not None
        if uri.startswith("s3://") and self.s3_settings is not None:
            try:
                bucket, _ = parse_s3_uri(uri)
            except AgoraError:
                return False
            return bucket == self.s3_settings.bucket
        return False

    async def download(self, uri: str, sha256: str, size: int, dest: Path) -> str:
        """Fetch a published output to `dest`, verified (hash and size) and atomic; returns the backend name."""
        await asyncio.to_thread(dest.parent.mkdir, parents=True, exist_ok=True)
        if uri.startswith("hub://"):
            hub = self._need_hub(f"output {uri}")
            ref = ContentRef.parse(uri, size)
            if ref.sha256 != sha256:
                raise AgoraError("storage_integrity", f"{uri} names another object than the receipt's {sha256}")
            await hub.get_to_file(ref, dest)
            return "hub"
        if uri.startswith("s3://"):
            bucket, key = parse_s3_uri(uri)
            store = await self.s3_store()
            if bucket != store.bucket:
                raise AgoraError("storage_forbidden", f"{uri} is not in this node's S3 bucket {store.bucket!r}")
            await store.get_object_to_file(bucket, key, dest, expected_sha256=sha256, expected_size=size)
            return "s3"
        raise AgoraError("invalid_argument", f"cannot download {uri!r} from a published store")

    async def close(self) -> None:
        if self.hub is not None:
            await self.hub.close()
        async with self._s3_lock:
            stores, self._s3 = list(self._s3.values()), OrderedDict()
        for store in stores:
            await store.close()


async def publish_outputs(
    stores: NodeStores, task: TaskSpec, outputs: Sequence[tuple[str, str, str]], source: Callable[[str], Path]
) -> dict[str, str]:
    """Put outputs (name, path, sha256) whose declared output says hub or s3 into that store.

    `source(sha256)` is the collected file (in the node's CAS). Returns {path: uri} of what was published;
    the first failure (over the hub's size cap, refused credentials...) is raised with the output's path.
    """
    by_name = {o.name: o.publish for o in task.outputs}
    sem = asyncio.Semaphore(PUBLISH_CONCURRENCY)
    uris: dict[str, str] = {}

    async def one(name: str, path: str, sha256: str) -> None:
        publish = by_name.get(name, Publish())
        if publish.type == "local":
            return
        async with sem:
            try:
                store = await stores.publisher(publish, f"output {name!r}")
                ref = await store.put(source(sha256))
            except AgoraError as e:
                raise AgoraError(
                    e.code,
                    f"output {path!r} ({publish.type}): {e.message}",
                    hint=e.hint,
                    retryable=e.retryable,
                    details={**e.details, "output": path},
                ) from e
        if ref.sha256 != sha256:
            raise AgoraError("storage_integrity", f"output {path!r} changed while it was published")
        uris[path] = ref.uri

    try:
        async with asyncio.TaskGroup() as tg:
            for name, path, sha256 in outputs:
                tg.create_task(one(name, path, sha256))
    except BaseExceptionGroup as eg:
        raise _first_agora_error(eg) from None
    return uris


def _first_agora_error(eg: BaseExceptionGroup) -> BaseException:
    flat: list[BaseException] = []
    stack: list[BaseException] = [eg]
    while stack:
        e = stack.pop(0)
        if isinstance(e, BaseExceptionGroup):
            stack[:0] = list(e.exceptions)
        else:
            flat.append(e)
    return next((e for e in flat if isinstance(e, AgoraError)), flat[0] if flat else eg)


__all__ = [
    "NO_HUB_REASON",
    "S3_HINT",
    "HubBuckets",
    "HubOpener",
    "NodeStores",
    "S3Settings",
    "publish_outputs",
]
