"""HTTP(S) inputs: stream a URL to a file with a size cap, optional SHA-256 check and short timeouts.

HTTP is read-only here (inputs only): results go to a content-addressed store. The body is streamed
through `VerifiedFileWriter`, so memory stays at one chunk, the cap is enforced as bytes arrive (a
server that lies in Content-Length or sends forever is cut off), and a failed or mismatched download
leaves no file. Status codes map onto the storage codes: 404/410 -> input_missing, 401/403 ->
storage_auth_failed, 5xx and connection failures -> storage_unreachable (retryable).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from agora.errors import AgoraError
from agora.storage.integrity import CHUNK, VerifiedFileWriter, sha256_bytes, too_large
from agora.storage.interfaces import check_sha256_hex

DEFAULT_MAX_BYTES = 1024 * 1024 * 1024
"""1 GiB: inputs bigger than this belong in S3 (resumable, parallel) rather than one HTTP stream."""


def _check_url(url: str) -> None:
    if not isinstance(url, str) or not (url.startswith("http://") or url.startswith("https://")):
        raise AgoraError("invalid_argument", f"an HTTP input needs an http:// or https:// URL, got {url!r}")


def _status_error(url: str, status: int) -> AgoraError:
    if status in (404, 410):
        return AgoraError("input_missing", f"{url} answered {status}: not found")
    if status in (401, 403):
        return AgoraError("storage_auth_failed", f"{url} answered {status}: access refused")
    if status >= 500 or status == 429:
        return AgoraError("storage_unreachable", f"{url} answered {status}; the server is failing or busy")
    return AgoraError("input_missing", f"{url} answered {status}")


class HttpFetcher:
    """Downloads inputs over HTTP(S). One fetcher per node; it holds no connection between calls."""

    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self._timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        # identity encoding: the hash is of the bytes as published, and no decompression bomb slips past the cap
        self._headers = {"user-agent": "agora-node", "accept-encoding": "identity"} | (headers or {})

    async def fetch(self, url: str, *, expected_sha256: str | None = None, max_bytes: int | None = None) -> bytes:
        """Download into memory (small inputs); same checks as `fetch_to_file`."""
        _check_url(url)
        expected = check_sha256_hex(expected_sha256) if expected_sha256 else None
        cap = self.max_bytes if max_bytes is None else max_bytes
        parts: list[bytes] = []
        total = 0
        async with self._stream(url) as resp:
            self._check_length(url, resp, cap)
            async for chunk in self._chunks(url, resp):
                total += len(chunk)
                if total > cap:
                    raise too_large(url, cap)
                parts.append(chunk)
        data = b"".join(parts)
        if expected is not None:
            actual = sha256_bytes(data)
            if actual != expected:
                raise AgoraError(
                    "storage_integrity",
                    f"{url}: content hash is sha256:{actual}, expected sha256:{expected}",
                    details={"expected_sha256": expected, "actual_sha256": actual},
                )
        return data

    async def fetch_to_file(
        self, url: str, path: Path, *, expected_sha256: str | None = None, max_bytes: int | None = None
    ) -> tuple[str, int]:
        """Stream `url` to `path`; returns (sha256, size). `path` exists only if all checks passed."""
        _check_url(url)
        expected = check_sha256_hex(expected_sha256) if expected_sha256 else None
        cap = self.max_bytes if max_bytes is None else max_bytes
        async with self._stream(url) as resp:
            self._check_length(url, resp, cap)
            writer = await asyncio.to_thread(
                VerifiedFileWriter, path, expected_sha256=expected, max_bytes=cap, what=url
            )
            try:
                async for chunk in self._chunks(url, resp):
                    await asyncio.to_thread(writer.write, chunk)
                return await asyncio.to_thread(writer.commit)
            finally:
                await asyncio.to_thread(writer.abort)

    def _stream(self, url: str) -> _Download:
        return _Download(url, self._timeout, self._headers)

    @staticmethod
    def _check_length(url: str, resp: httpx.Response, cap: int) -> None:
        length = resp.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > cap:
            raise too_large(f"{url} ({length} bytes)", cap)

    @staticmethod
    def _chunks(url: str, resp: httpx.Response) -> _ChunkIter:
        return _ChunkIter(url, resp)


class _Download:
    """Async context manager: open a streamed GET, map transport errors and bad statuses to codes."""

    def __init__(self, url: str, timeout: httpx.Timeout, headers: dict[str, str]) -> None:
        self.url = url
        self._client = httpx.AsyncClient(timeout=timeout, headers=headers, follow_redirects=True, max_redirects=5)
        self._resp: httpx.Response | None = None

    async def __aenter__(self) -> httpx.Response:
        try:
            req = self._client.build_request("GET", self.url)
            self._resp = await self._client.send(req, stream=True)
        except BaseException as e:
            await self._client.aclose()
            if isinstance(e, httpx.HTTPError):
                raise _transport_error(self.url, e) from e
            raise
        if self._resp.status_code >= 400:
            status = self._resp.status_code
            await self._close()
            raise _status_error(self.url, status)
        return self._resp

    async def __aexit__(self, *exc: object) -> None:
        await self._close()

    async def _close(self) -> None:
        if self._resp is not None:
            await self._resp.aclose()
        await self._client.aclose()


class _ChunkIter:
    def __init__(self, url: str, resp: httpx.Response) -> None:
        self._url = url
        self._it = resp.aiter_bytes(CHUNK)

    def __aiter__(self) -> _ChunkIter:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._it.__anext__()
        except httpx.HTTPError as e:
            raise _transport_error(self._url, e) from e


def _transport_error(url: str, e: httpx.HTTPError) -> AgoraError:
    if isinstance(e, httpx.TimeoutException):
        return AgoraError("storage_unreachable", f"{url}: timed out ({type(e).__name__})")
    if isinstance(e, httpx.TooManyRedirects):
        return AgoraError("invalid_argument", f"{url}: too many redirects")
    if isinstance(e, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return AgoraError("invalid_argument", f"{url}: {e}")
    return AgoraError("storage_unreachable", f"{url}: {type(e).__name__}: {e}")


__all__ = ["DEFAULT_MAX_BYTES", "HttpFetcher"]
