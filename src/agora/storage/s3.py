"""S3Storage: content-addressed objects in any S3-compatible server (AWS, SeaweedFS, MinIO), via boto3.

Keys are `<prefix>/sha256/<hex>`; URIs are `s3://<bucket>/<key>`. `get_object`/`get_object_to_file`
also read arbitrary keys, for job inputs that name an existing S3 object.

Timeouts are short and retries bounded (connect 3 s, read 30 s, 2 attempts) so a dead endpoint fails
in seconds with `storage_unreachable` instead of hanging a job's staging for boto's default minutes.
Checksums are only computed when the operation requires them: S3-compatible servers differ in their
support of the newer flexible checksums, and agora verifies SHA-256 itself on every read anyway.
boto3 is blocking, so every call runs in a worker thread; the client is thread-safe.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import boto3
import botocore.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from agora.errors import AgoraError
from agora.storage.integrity import CHUNK, VerifiedFileWriter, sha256_bytes, sha256_file, verify_bytes
from agora.storage.interfaces import ContentRef, Storage, parse_s3_uri

T = TypeVar("T")

_SESSION = boto3.session.Session()
_SESSION_LOCK = threading.Lock()

_AUTH_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "InvalidToken",
    "ExpiredToken",
    "AuthorizationHeaderMalformed",
    "InvalidClientTokenId",
    "401",
    "403",
}
_MISSING_CODES = {"NoSuchKey", "NotFound", "404", "NoSuchBucket"}
_NETWORK_ERRORS = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.HTTPClientError,
    OSError,
)


def _map_error(e: Exception, what: str, endpoint: str, writing: bool = False) -> AgoraError:
    """Turn a boto error into the catalog code a user can act on."""
    if isinstance(e, AgoraError):
        return e
    if isinstance(e, botocore.exceptions.ClientError):
        err = e.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        msg = err.get("Message") or code
        if writing and code == "NoSuchBucket":
            return AgoraError("config_invalid", f"{what}: bucket does not exist in S3 at {endpoint} ({msg})")
        if code in _AUTH_CODES or status in (401, 403):
            return AgoraError("storage_auth_failed", f"{what}: S3 at {endpoint} refused the credentials ({msg})")
        if code in _MISSING_CODES or status == 404:
            return AgoraError("input_missing", f"{what}: not found in S3 at {endpoint} ({msg})")
        if isinstance(status, int) and status >= 500:
            return AgoraError("storage_unreachable", f"{what}: S3 at {endpoint} failed ({status} {msg})")
        return AgoraError("invalid_argument", f"{what}: S3 at {endpoint} rejected the request ({code} {msg})")
    if isinstance(e, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError):
        return AgoraError("storage_auth_failed", f"{what}: no S3 credentials configured")
    if isinstance(e, _NETWORK_ERRORS):
        return AgoraError("storage_unreachable", f"{what}: S3 endpoint {endpoint} did not answer ({e})")
    if isinstance(e, botocore.exceptions.ParamValidationError):
        return AgoraError("invalid_argument", f"{what}: {e}")
    return AgoraError("internal", f"{what}: unexpected S3 client error {type(e).__name__}: {e}")


class S3Storage(Storage):
    scheme = "s3"

    def __init__(
        self,
        endpoint_url: str | None,
        bucket: str,
        access_key: str | None,
        secret_key: str | None,
        region: str = "us-east-1",
        prefix: str = "agora",
        *,
        connect_timeout: float = 3.0,
        read_timeout: float = 30.0,
        max_attempts: int = 2,
        multipart_threshold: int = 64 * 1024 * 1024,
    ) -> None:
        if not bucket:
            raise AgoraError("config_invalid", "S3 storage needs a bucket name")
        self.endpoint_url = endpoint_url
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._endpoint = endpoint_url or f"AWS S3 ({region})"
        config = Config(
            region_name=region,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        with _SESSION_LOCK:  # boto3 sessions are not thread-safe; sharing one keeps its model cache warm
            self._client: Any = _SESSION.client(
                "s3",
                endpoint_url=endpoint_url,
                aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
                region_name=region,
                config=config,
            )
        self._transfer = TransferConfig(multipart_threshold=multipart_threshold, max_concurrency=4)

    # -- content-addressed interface -------------------------------------------------------------

    def key_for(self, sha256: str) -> str:
        return f"{self.prefix}/sha256/{sha256}" if self.prefix else f"sha256/{sha256}"

    def ref_for(self, sha256: str, size: int | None) -> ContentRef:
        return ContentRef(sha256=sha256, size=size, uri=f"s3://{self.bucket}/{self.key_for(sha256)}")

    async def put(self, data: bytes | Path) -> ContentRef:
        return await self._run("put", self._put_sync, data, writing=True)

    def _put_sync(self, data: bytes | Path) -> ContentRef:
        if isinstance(data, bytes | bytearray | memoryview):
            payload = bytes(data)
            ref = self.ref_for(sha256_bytes(payload), len(payload))
            if not self._head_matches(ref):
                self._client.put_object(Bucket=self.bucket, Key=self.key_for(ref.sha256), Body=payload)
            return ref
        try:
            digest, size = sha256_file(Path(data))
        except FileNotFoundError:
            raise AgoraError("input_missing", f"no such file to store: {data}") from None
        ref = self.ref_for(digest, size)
        if not self._head_matches(ref):
            with open(data, "rb") as f:
                self._client.upload_fileobj(f, self.bucket, self.key_for(digest), Config=self._transfer)
        return ref

    def _head_matches(self, ref: ContentRef) -> bool:
        """True when the object is already stored with the right size (puts are idempotent)."""
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self.key_for(ref.sha256))
        except botocore.exceptions.ClientError as e:
            if e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise
        return bool(head.get("ContentLength") == ref.size)

    async def get(self, ref: ContentRef) -> bytes:
        data = await self.get_object(self.bucket, self.key_for(ref.sha256))
        verify_bytes(data, ref.sha256, ref.size, f"S3 object {ref.sha256}")
        return data

    async def get_to_file(self, ref: ContentRef, path: Path) -> None:
        await self.get_object_to_file(
            self.bucket, self.key_for(ref.sha256), path, expected_sha256=ref.sha256, expected_size=ref.size
        )

    async def exists(self, ref: ContentRef) -> bool:
        def head() -> bool:
            try:
                self._client.head_object(Bucket=self.bucket, Key=self.key_for(ref.sha256))
            except botocore.exceptions.ClientError as e:
                if e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                    return False
                raise
            return True

        return await self._run("exists", head)

    async def delete(self, ref: ContentRef) -> None:
        await self._run("delete", lambda: self._client.delete_object(Bucket=self.bucket, Key=self.key_for(ref.sha256)))

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)

    # -- arbitrary objects (job inputs that name an S3 key) -------------------------------------

    async def get_object(self, bucket: str, key: str, *, max_bytes: int | None = None) -> bytes:
        """Read any object into memory; `max_bytes` refuses bigger ones before reading them."""

        def read() -> bytes:
            resp = self._client.get_object(Bucket=bucket, Key=key)
            length = resp.get("ContentLength")
            if max_bytes is not None and isinstance(length, int) and length > max_bytes:
                resp["Body"].close()
                raise AgoraError("input_too_large", f"s3://{bucket}/{key} is {length} bytes, over {max_bytes}")
            return bytes(resp["Body"].read())

        return await self._run(f"s3://{bucket}/{key}", read)

    async def get_object_to_file(
        self,
        bucket: str,
        key: str,
        path: Path,
        *,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
        max_bytes: int | None = None,
    ) -> tuple[str, int]:
        """Stream any object to `path` (verified, capped, atomic); returns its (sha256, size)."""
        what = f"s3://{bucket}/{key}"

        def download() -> tuple[str, int]:
            resp = self._client.get_object(Bucket=bucket, Key=key)
            body = resp["Body"]
            try:
                with VerifiedFileWriter(
                    path,
                    expected_sha256=expected_sha256,
                    expected_size=expected_size,
                    max_bytes=max_bytes,
                    what=what,
                ) as w:
                    for chunk in body.iter_chunks(CHUNK):
                        w.write(chunk)
                    return w.commit()
            finally:
                body.close()

        return await self._run(what, download)

    async def put_object(self, bucket: str, key: str, data: bytes) -> None:
        """Write an arbitrary key (tests use it to plant inputs; not content-addressed)."""
        await self._run(
            f"s3://{bucket}/{key}", lambda: self._client.put_object(Bucket=bucket, Key=key, Body=data), writing=True
        )

    async def ensure_bucket(self) -> None:
        """Create the bucket when it does not exist yet (a node's first start)."""

        def create() -> None:
            try:
                self._client.head_bucket(Bucket=self.bucket)
                return
            except botocore.exceptions.ClientError as e:
                if e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404:
                    raise
            self._client.create_bucket(Bucket=self.bucket)

        await self._run(f"bucket {self.bucket}", create)

    async def _run(self, what: str, fn: Callable[..., T], *args: Any, writing: bool = False) -> T:
        try:
            return await asyncio.to_thread(fn, *args)
        except AgoraError:
            raise
        except Exception as e:
            raise _map_error(e, what, self._endpoint, writing) from e


__all__ = ["S3Storage", "parse_s3_uri"]
