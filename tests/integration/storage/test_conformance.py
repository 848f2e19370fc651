"""The one Storage conformance suite, run against every backend with its real server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agora.storage import ContentRef, HubObjectStore, LocalCAS, S3Storage
from tests.integration.storage.conformance import Harness, StorageConformance
from tests.integration.storage.seaweed import SeaweedS3

pytestmark = pytest.mark.integration


class TestLocalCAS(StorageConformance):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> Harness:
        cas = LocalCAS(tmp_path / "cas")

        async def corrupt(ref: ContentRef, data: bytes) -> None:
            path = cas.path_of(ref.sha256)
            os.chmod(path, 0o644)
            path.write_bytes(data)

        return Harness(storage=cas, corrupt=corrupt, big_size=32 * 1024 * 1024)


class TestS3Storage(StorageConformance):
    @pytest.fixture
    def harness(self, s3_storage: S3Storage, seaweed: SeaweedS3) -> Harness:
        raw = seaweed.client()

        async def corrupt(ref: ContentRef, data: bytes) -> None:
            raw.put_object(Bucket=s3_storage.bucket, Key=s3_storage.key_for(ref.sha256), Body=data)  # type: ignore[attr-defined]

        return Harness(storage=s3_storage, corrupt=corrupt, big_size=24 * 1024 * 1024)


class TestHubObjectStore(StorageConformance):
    @pytest.fixture
    async def harness(self, hub_store: HubObjectStore) -> Harness:
        async def corrupt(ref: ContentRef, data: bytes) -> None:
            js = hub_store._nc.jetstream()
            obs = await js.object_store(hub_store.bucket)
            await obs.put(ref.sha256, data)  # a writer that ignores the content-addressing rule

        # capped at 8 MiB by design; nats-py buffers a subscription's pending chunks, so no memory bound here
        return Harness(storage=hub_store, corrupt=corrupt, big_size=6 * 1024 * 1024, bounded_memory=False)
