"""HTTP(S) inputs against a real local HTTP server: statuses, caps, hashes, refused connections.

The server listens on 127.0.0.1, which a provider refuses by default (test_http_policy.py tests that), so
every fetcher here opts in (`opted_in`: allow_private_inputs=True), as an operator would for its own network.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from agora.errors import AgoraError
from agora.storage import HttpFetcher
from tests.integration.storage.conformance import listing
from tests.integration.storage.conftest import HttpServer
from tests.support import free_port

pytestmark = pytest.mark.integration


def opted_in(**kw: Any) -> HttpFetcher:
    """A fetcher whose operator allows private addresses: the test server is on loopback."""
    return HttpFetcher(allow_private_inputs=True, **kw)


async def _err(aw: object) -> AgoraError:
    with pytest.raises(AgoraError) as info:
        await aw  # type: ignore[misc]
    return info.value


async def test_streams_to_file_with_hash(http_server: HttpServer, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 1)
    url = http_server.serve("/data.bin", data)
    digest = hashlib.sha256(data).hexdigest()
    got = await opted_in().fetch_to_file(url, tmp_path / "data.bin", expected_sha256=digest.upper())
    assert got == (digest, len(data))
    assert (tmp_path / "data.bin").read_bytes() == data
    assert await opted_in().fetch(url, expected_sha256=digest) == data


async def test_follows_redirects(http_server: HttpServer, tmp_path: Path) -> None:
    http_server.serve("/real", b"moved here")
    url = http_server.serve("/old", b"", status=302, Location=http_server.base_url + "/real")
    assert await opted_in().fetch(url) == b"moved here"


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (404, "input_missing"),
        (410, "input_missing"),
        (401, "storage_auth_failed"),
        (403, "storage_auth_failed"),
        (500, "storage_unreachable"),
        (503, "storage_unreachable"),
    ],
)
async def test_status_codes_map_to_storage_codes(
    http_server: HttpServer, tmp_path: Path, status: int, code: str
) -> None:
    url = http_server.serve("/x", b"nope", status=status)
    err = await _err(opted_in().fetch_to_file(url, tmp_path / "x"))
    assert err.code == code
    assert str(status) in err.message
    assert listing(tmp_path) == []


async def test_unknown_path_is_input_missing(http_server: HttpServer, tmp_path: Path) -> None:
    err = await _err(opted_in().fetch_to_file(http_server.base_url + "/missing", tmp_path / "x"))
    assert err.code == "input_missing"


async def test_connection_refused_is_storage_unreachable(tmp_path: Path) -> None:
    err = await _err(opted_in(connect_timeout=1.0).fetch_to_file(f"http://127.0.0.1:{free_port()}/f", tmp_path / "f"))
    assert err.code == "storage_unreachable"
    assert err.retryable
    assert listing(tmp_path) == []


async def test_hash_mismatch_leaves_no_file(http_server: HttpServer, tmp_path: Path) -> None:
    url = http_server.serve("/d", b"actual content")
    err = await _err(opted_in().fetch_to_file(url, tmp_path / "d", expected_sha256="ab" * 32))
    assert err.code == "storage_integrity"
    assert err.details["actual_sha256"] == hashlib.sha256(b"actual content").hexdigest()
    assert listing(tmp_path) == []
    assert (await _err(opted_in().fetch(url, expected_sha256="ab" * 32))).code == "storage_integrity"


async def test_size_cap_from_content_length(http_server: HttpServer, tmp_path: Path) -> None:
    url = http_server.serve("/big", b"x" * 1000)
    err = await _err(opted_in(max_bytes=999).fetch_to_file(url, tmp_path / "big"))
    assert err.code == "input_too_large"
    assert listing(tmp_path) == []
    assert (await opted_in(max_bytes=1000).fetch(url)) == b"x" * 1000


async def test_size_cap_enforced_while_streaming_without_length(http_server: HttpServer, tmp_path: Path) -> None:
    url = http_server.serve("/stream", os.urandom(4 * 1024 * 1024), send_length=False)
    err = await _err(opted_in(max_bytes=1024 * 1024).fetch_to_file(url, tmp_path / "s"))
    assert err.code == "input_too_large"
    assert listing(tmp_path) == []
    err = await _err(opted_in().fetch(url, max_bytes=1024 * 1024))
    assert err.code == "input_too_large"


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "file:///etc/passwd", "127.0.0.1/x", ""])
async def test_only_http_urls(url: str, tmp_path: Path) -> None:
    assert (await _err(opted_in().fetch_to_file(url, tmp_path / "x"))).code == "invalid_argument"


async def test_bad_expected_hash_is_invalid_argument(http_server: HttpServer, tmp_path: Path) -> None:
    url = http_server.serve("/h", b"h")
    assert (await _err(opted_in().fetch(url, expected_sha256="xyz"))).code == "invalid_argument"
