"""S3Storage against a real SeaweedFS: credentials, unreachable endpoints, arbitrary objects."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

import pytest

from agora.errors import AgoraError
from agora.storage import S3Storage
from tests.integration.storage.conformance import listing
from tests.integration.storage.conftest import TEST_BUCKET
from tests.integration.storage.seaweed import SeaweedS3
from tests.support import free_port

pytestmark = pytest.mark.integration


async def _code(aw: object) -> AgoraError:
    with pytest.raises(AgoraError) as info:
        await aw  # type: ignore[misc]
    return info.value


def _store(seaweed: SeaweedS3, **overrides: object) -> S3Storage:
    args: dict[str, object] = {
        "endpoint_url": seaweed.endpoint,
        "bucket": TEST_BUCKET,
        "access_key": seaweed.access_key,
        "secret_key": seaweed.secret_key,
        "region": seaweed.region,
        "prefix": f"t-{secrets.token_hex(4)}",
    }
    args.update(overrides)
    return S3Storage(**args)  # type: ignore[arg-type]


async def test_wrong_secret_is_storage_auth_failed(seaweed: SeaweedS3, s3_storage: S3Storage) -> None:
    ref = await s3_storage.put(b"guarded")
    bad = _store(seaweed, secret_key="not-the-secret", prefix=s3_storage.prefix)
    try:
        for aw in (bad.put(b"x"), bad.get(ref), bad.exists(ref), bad.delete(ref)):
            err = await _code(aw)
            assert err.code == "storage_auth_failed", err
            assert "credentials" in err.message
    finally:
        await bad.close()
    assert await s3_storage.get(ref) == b"guarded", "a refused delete must not have removed anything"


async def test_unknown_access_key_is_storage_auth_failed(seaweed: SeaweedS3) -> None:
    bad = _store(seaweed, access_key="AKNOBODY", secret_key="whatever")
    try:
        assert (await _code(bad.put(b"x"))).code == "storage_auth_failed"
    finally:
        await bad.close()


async def test_unreachable_endpoint_fails_fast_with_storage_unreachable(tmp_path: Path) -> None:
    store = S3Storage(f"http://127.0.0.1:{free_port()}", "b", "ak", "sk", prefix="p", connect_timeout=1.0)
    ref = store.ref_for(hashlib.sha256(b"x").hexdigest(), 1)
    try:
        for aw in (store.put(b"x"), store.get(ref), store.exists(ref), store.get_to_file(ref, tmp_path / "f")):
            err = await _code(aw)
            assert err.code == "storage_unreachable", err
            assert err.retryable
        assert listing(tmp_path) == []
    finally:
        await store.close()


async def test_get_object_reads_arbitrary_keys(seaweed: SeaweedS3, s3_storage: S3Storage, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    key = f"datasets/{secrets.token_hex(4)}/train.bin"
    await s3_storage.put_object(TEST_BUCKET, key, data)
    assert await s3_storage.get_object(TEST_BUCKET, key) == data
    digest, size = await s3_storage.get_object_to_file(
        TEST_BUCKET, key, tmp_path / "train.bin", expected_sha256=hashlib.sha256(data).hexdigest()
    )
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert (tmp_path / "train.bin").read_bytes() == data


async def test_get_object_checks_expected_hash_and_cap(s3_storage: S3Storage, tmp_path: Path) -> None:
    key = f"in/{secrets.token_hex(4)}"
    await s3_storage.put_object(TEST_BUCKET, key, b"0123456789")
    err = await _code(s3_storage.get_object_to_file(TEST_BUCKET, key, tmp_path / "a", expected_sha256="0" * 64))
    assert err.code == "storage_integrity"
    err = await _code(s3_storage.get_object_to_file(TEST_BUCKET, key, tmp_path / "b", max_bytes=9))
    assert err.code == "input_too_large"
    err = await _code(s3_storage.get_object(TEST_BUCKET, key, max_bytes=9))
    assert err.code == "input_too_large"
    assert listing(tmp_path) == [], "failed downloads leave no files"


async def test_missing_key_and_missing_bucket(s3_storage: S3Storage, seaweed: SeaweedS3) -> None:
    err = await _code(s3_storage.get_object(TEST_BUCKET, "no/such/key"))
    assert err.code == "input_missing"
    assert "not found" in err.message
    err = await _code(s3_storage.get_object("no-such-bucket-" + secrets.token_hex(3), "k"))
    assert err.code == "input_missing"
    nobucket = _store(seaweed, bucket="absent-" + secrets.token_hex(3))
    try:
        err = await _code(nobucket.put(b"data"))
        assert err.code == "config_invalid"
        assert "bucket" in err.message
        await nobucket.ensure_bucket()
        ref = await nobucket.put(b"data")
        assert await nobucket.get(ref) == b"data"
    finally:
        await nobucket.close()


async def test_keys_are_content_addressed_under_the_prefix(s3_storage: S3Storage, seaweed: SeaweedS3) -> None:
    ref = await s3_storage.put(b"addressed")
    digest = hashlib.sha256(b"addressed").hexdigest()
    assert ref.uri == f"s3://{TEST_BUCKET}/{s3_storage.prefix}/sha256/{digest}"
    raw = seaweed.client().get_object(Bucket=TEST_BUCKET, Key=f"{s3_storage.prefix}/sha256/{digest}")  # type: ignore[attr-defined]
    assert raw["Body"].read() == b"addressed"


def test_a_bucket_is_required() -> None:
    with pytest.raises(AgoraError) as info:
        S3Storage("http://127.0.0.1:1", "", "a", "b")
    assert info.value.code == "config_invalid"
