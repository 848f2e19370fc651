"""HubObjectStore: small results in the hub's NATS JetStream object store.

Every node already holds a connection to its hub, so small results (logs, metrics, model updates)
can be shared without an S3 server. JetStream keeps everything in the hub's stream storage and
replicates it to clustered hubs, which is why objects are capped (default 8 MiB): bigger results
belong in S3, and the error says so. Object names are the hex SHA-256; URIs are hub://<bucket>/<hex>.

nats-py checks its own digest on read; agora checks the SHA-256 name as well, so an object rewritten
under a content name (a broken or hostile writer with access to the bucket) is caught too.

On a hub with an allowlist a node may use only the buckets the hub opens (HubConfig.object_buckets,
created by the hub itself: no node may create a stream), and reads its replies under its own reply
prefix; `connect(keypair=...)` sets both the key and that prefix.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import nkeys
from nats.aio.client import Client as NatsClient
from nats.js.object_store import ObjectStore

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.storage.integrity import VerifiedFileWriter, sha256_bytes, sha256_file, verify_bytes
from agora.storage.interfaces import ContentRef, Storage
from agora.transport.nats_errors import map_nats_error
from agora.transport.subjects import reply_inbox_prefix

DEFAULT_BUCKET = "agora-results"
DEFAULT_MAX_OBJECT_BYTES = 8 * 1024 * 1024
_HINT = "Results over the hub's object size limit must go to S3: configure an S3 store for outputs."


def _map_error(e: BaseException, what: str) -> AgoraError:
    """What the object store knows more about (a missing object, damaged content), else the hub's error as
    every JetStream user maps it, with the storage codes."""
    if isinstance(e, nats.js.errors.ObjectNotFoundError | nats.js.errors.ObjectDeletedError):
        return AgoraError("input_missing", f"{what}: not in the hub object store")
    if isinstance(e, nats.js.errors.DigestMismatchError | nats.js.errors.BadObjectMetaError):
        return AgoraError("storage_integrity", f"{what}: the hub returned damaged content ({type(e).__name__})")
    return map_nats_error(
        e, what, refused="storage_auth_failed", unreachable="storage_unreachable", unexpected="internal"
    )


def _keypair_of_seed(seed: str) -> Keypair | None:
    """The node key behind an nkey seed, so its reply prefix follows (None: nats-py will refuse it)."""
    try:
        return Keypair.from_seed(nkeys.decode_seed(seed.encode())[1])
    except (nkeys.NkeysError, ValueError, TypeError):
        return None


class HubObjectStore(Storage):
    scheme = "hub"

    def __init__(
        self,
        nc: NatsClient,
        bucket: str = DEFAULT_BUCKET,
        *,
        max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES,
        timeout: float = 5.0,
        owns_connection: bool = False,
    ) -> None:
        """Use an existing connection (the node's link to its hub); the store never closes it unless
        `owns_connection` (as `connect` sets)."""
        self._nc = nc
        self.bucket = bucket
        self.max_object_bytes = max_object_bytes
        self._timeout = timeout
        self._owns = owns_connection
        self._obs: ObjectStore | None = None
        self._lock = asyncio.Lock()
        self._refusals: list[str] = []  # the hub's permission refusals on a connection `connect` made

    @classmethod
    async def connect(
        cls,
        servers: str | list[str],
        bucket: str = DEFAULT_BUCKET,
        *,
        max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES,
        connect_timeout: float = 3.0,
        timeout: float = 5.0,
        keypair: Keypair | None = None,
        **options: Any,
    ) -> HubObjectStore:
        """Dial a hub just for storage (tools, tests) as `keypair` (its nkey and its own reply prefix,
        which an allowlisted hub requires); other `options` go to nats.connect."""
        refusals: list[str] = []

        async def _quiet(e: Exception) -> None:  # errors surface as exceptions of the calls instead
            if "permissions violation" in str(e).lower():
                refusals.append(str(e))

        if keypair is None and isinstance(options.get("nkeys_seed_str"), str):
            keypair = _keypair_of_seed(options["nkeys_seed_str"])
        if keypair is not None:
            options.setdefault("nkeys_seed_str", keypair.nkey_seed())
            options.setdefault("inbox_prefix", reply_inbox_prefix(keypair.did))

        try:
            # nats-py retries an initial connect forever with max_reconnect_attempts=0; 1 means "give up
            # after one retry", and the outer deadline guards against any other endless loop
            async with asyncio.timeout(3 * connect_timeout + 1):
                nc = await nats.connect(
                    servers,
                    connect_timeout=connect_timeout,
                    allow_reconnect=False,
                    max_reconnect_attempts=1,
                    reconnect_time_wait=0.1,
                    error_cb=_quiet,
                    **options,
                )
        except Exception as e:
            raise _map_error(e, f"hub {servers}") from e
        store = cls(nc, bucket, max_object_bytes=max_object_bytes, timeout=timeout, owns_connection=True)
        store._refusals = refusals
        return store

    def ref_for(self, sha256: str, size: int | None) -> ContentRef:
        return ContentRef(sha256=sha256, size=size, uri=f"hub://{self.bucket}/{sha256}")

    async def _store(self) -> ObjectStore:
        """Open the bucket, creating it on first use (idempotent across nodes)."""
        if self._obs is not None:
            return self._obs
        async with self._lock:
            if self._obs is None:
                js = self._nc.jetstream(timeout=self._timeout)
                try:
                    try:
                        self._obs = await js.object_store(self.bucket)
                    except nats.js.errors.BucketNotFoundError:
                        self._obs = await js.create_object_store(
                            self.bucket, description="agora content-addressed results"
                        )
                except Exception as e:
                    if self._refusals:
                        raise AgoraError(
                            "storage_auth_failed",
                            f"hub bucket {self.bucket}: the hub does not let this node use it ({self._refusals[-1]})",
                            hint="A hub with an allowlist opens only its configured object buckets "
                            "(HubConfig.object_buckets); ask its operator to add this one.",
                        ) from e
                    raise _map_error(e, f"hub bucket {self.bucket}") from e
            return self._obs

    def _check_size(self, size: int) -> None:
        if size > self.max_object_bytes:
            raise AgoraError(
                "message_too_large",
                f"{size} bytes is over the hub object store's limit of {self.max_object_bytes} bytes",
                hint=_HINT,
                details={"size": size, "limit_bytes": self.max_object_bytes},
            )

    async def put(self, data: bytes | Path) -> ContentRef:
        what = "hub put"
        if isinstance(data, bytes | bytearray | memoryview):
            payload = bytes(data)
            self._check_size(len(payload))
            ref = self.ref_for(sha256_bytes(payload), len(payload))
            # always written, never skipped when a same-named object exists: whoever can write the bucket
            # could have planted other bytes (and a matching digest header) under this hash
            obs = await self._store()
            try:
                await obs.put(ref.sha256, payload)
            except Exception as e:
                raise _map_error(e, what) from e
            return ref
        path = Path(data)
        try:
            size = (await asyncio.to_thread(os.stat, path)).st_size
        except FileNotFoundError:
            raise AgoraError("input_missing", f"no such file to store: {path}") from None
        self._check_size(size)
        digest, size = await asyncio.to_thread(sha256_file, path)
        self._check_size(size)
        ref = self.ref_for(digest, size)
        obs = await self._store()
        f = await asyncio.to_thread(open, path, "rb")
        try:
            await obs.put(ref.sha256, f)
        except Exception as e:
            raise _map_error(e, what) from e
        finally:
            await asyncio.to_thread(f.close)
        return ref

    async def get(self, ref: ContentRef) -> bytes:
        what = f"hub object {ref.sha256}"
        obs = await self._store()
        try:
            result = await obs.get(ref.sha256)
        except Exception as e:
            raise _map_error(e, what) from e
        data = bytes(result.data or b"")
        verify_bytes(data, ref.sha256, ref.size, what)
        return data

    async def get_to_file(self, ref: ContentRef, path: Path) -> None:
        what = f"hub object {ref.sha256}"
        obs = await self._store()
        writer = await asyncio.to_thread(
            VerifiedFileWriter,
            path,
            expected_sha256=ref.sha256,
            expected_size=ref.size,
            max_bytes=self.max_object_bytes,
            what=what,
        )
        try:
            try:
                # nats-py hands each chunk to writer.write in an executor thread: bounded memory
                await obs.get(ref.sha256, writeinto=writer)  # type: ignore[arg-type]
            except Exception as e:
                raise _map_error(e, what) from e
            await asyncio.to_thread(writer.commit)
        finally:
            await asyncio.to_thread(writer.abort)

    async def exists(self, ref: ContentRef) -> bool:
        obs = await self._store()
        try:
            await obs.get_info(ref.sha256)
        except nats.js.errors.NotFoundError:
            return False
        except Exception as e:
            raise _map_error(e, f"hub object {ref.sha256}") from e
        return True

    async def delete(self, ref: ContentRef) -> None:
        obs = await self._store()
        try:
            await obs.delete(ref.sha256)
        except nats.js.errors.NotFoundError:
            return
        except Exception as e:
            raise _map_error(e, f"hub object {ref.sha256}") from e

    async def close(self) -> None:
        if self._owns and not self._nc.is_closed:
            await self._nc.close()


__all__ = ["DEFAULT_BUCKET", "DEFAULT_MAX_OBJECT_BYTES", "HubObjectStore"]
