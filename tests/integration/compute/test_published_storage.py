"""Outputs published to the hub's object store or to S3, and inputs read from them, between real nodes.

A real hub (nats-server with JetStream), real nodes (SQLite, NATS, wasmtime), a real SeaweedFS S3
server (`weed mini`, auth on); jobs go through the requester's local API like a user's.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.js.errors
import pytest

from agora.identity import create_keystore
from agora.node import HubSettings, Node, NodeConfig
from agora.storage import ContentRef, HubObjectStore, S3Storage
from agora.wire import UsageReceipt
from tests.integration.compute.conftest import Cluster, until
from tests.integration.compute.test_remote_jobs import clean, ok, read, wait_job
from tests.integration.node.conftest import NodeFactory
from tests.integration.storage.conftest import TEST_BUCKET, seaweed  # noqa: F401 - fixture reused here
from tests.integration.storage.seaweed import SeaweedS3
from tests.unit.compute import wat

pytestmark = pytest.mark.integration

BUCKET = "agora-results"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def module(tmp_path: Path, code: bytes, name: str = "task.wasm") -> Path:
    path = tmp_path / name
    path.write_bytes(code)
    return path


def job(mod: Path, *, outputs: list[dict[str, Any]] | None = None, inputs: list[dict[str, Any]] | None = None) -> Any:
    t: dict[str, Any] = {
        "name": "t",
        "engine": "wasm",
        "module": str(mod),
        "resources": {"cpu": "500m", "memory": "64Mi", "disk": "16Mi"},
        "timeout": 30,
    }
    if outputs is not None:
        t["outputs"] = outputs
    if inputs is not None:
        t["inputs"] = inputs
    return {"name": "published", "tasks": [t]}


def published(publish: dict[str, Any], path: str = "/outputs/hello.txt") -> list[dict[str, Any]]:
    return [{"name": "result", "path": path, "publish": publish}]


async def grant(api_provider: httpx.AsyncClient, requester: Node) -> None:
    g = await ok(await api_provider.post("/grants", json={"did": requester.did, "ttl_s": 3600}), 201)
    assert g["delivered"] is True


async def run(api: httpx.AsyncClient, spec: Any, node: Node) -> dict[str, Any]:
    sub = await ok(await api.post("/jobs", json={"spec": spec, "node": node.did}), 201)
    return await wait_job(api, sub["id"])


def hub_url(cluster: Cluster) -> str:
    assert cluster.hub.hub is not None
    return cluster.hub.hub.url


async def in_hub(url: str, ref: ContentRef, bucket: str = BUCKET) -> bytes | None:
    store = await HubObjectStore.connect(url, bucket)
    try:
        return await store.get(ref) if await store.exists(ref) else None
    finally:
        await store.close()


async def put_in_hub(url: str, data: bytes, bucket: str = BUCKET) -> ContentRef:
    store = await HubObjectStore.connect(url, bucket)
    try:
        return await store.put(data)
    finally:
        await store.close()


def assert_receipt_names(unit: dict[str, Any], digest: str, size: int) -> None:
    receipt = UsageReceipt.from_dict(unit["receipt"])
    assert [(o.sha256, o.size) for o in receipt.outputs] == [(digest, size)]


# -- the hub's object store ------------------------------------------------------------------------


async def test_an_output_published_to_the_hub_reaches_the_requester_from_the_hub(
    cluster: Cluster, tmp_path: Path
) -> None:
    a, b = cluster.a, cluster.b
    content = b"a result for everyone on the hub\n"
    mod = module(tmp_path, wat.hello(content=content.decode()))
    async with cluster.api(a) as api_a, cluster.api(b) as api_b:
        await grant(api_b, a)
        doc = await run(api_a, job(mod, outputs=published({"type": "hub"})), b)
        assert doc["state"] == "completed", doc["error"]
        [unit] = doc["units"]
        [out] = unit["outputs"]
        digest = sha(content)
        assert out["sha256"] == digest and out["size"] == len(content) and out["name"] == "result"
        assert out["uri"] == f"hub://{BUCKET}/{digest}"
        assert out["fetched_from"] == "hub"  # not over /agora/alloc/fetch
        assert read(out["local_path"]) == content
        assert_receipt_names(unit, digest, len(content))
        listed = await ok(await api_a.get(f"/jobs/{doc['id']}/outputs"))
        assert [o["uri"] for o in listed["outputs"]] == [out["uri"]]
        # the provider's status names the URI too, and the object is in the hub's store under its hash
        assert await in_hub(hub_url(cluster), ContentRef.parse(out["uri"], len(content))) == content
    await until(lambda: clean(b), "the provider to hold nothing of the task")


async def test_a_planted_hub_copy_is_overwritten_by_the_provider(cluster: Cluster, tmp_path: Path) -> None:
    """A writer with access to the bucket plants other bytes under the result's name (same size) before the job:
    the provider's put replaces them, so the hub copy the requester reads is the real one."""
    a, b = cluster.a, cluster.b
    content = b"the real result\n"
    digest = sha(content)
    await _plant(cluster, digest, b"a forged result\n")
    mod = module(tmp_path, wat.hello(content=content.decode()))
    async with cluster.api(a) as api_a, cluster.api(b) as api_b:
        await grant(api_b, a)
        doc = await run(api_a, job(mod, outputs=published({"type": "hub"})), b)
        assert doc["state"] == "completed", doc["error"]
        [out] = doc["units"][0]["outputs"]
        assert out["uri"] == f"hub://{BUCKET}/{digest}" and out["fetched_from"] == "hub"
        assert read(out["local_path"]) == content


async def test_a_hub_copy_tampered_after_publishing_is_refused_and_the_provider_copy_taken(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bytes are replaced on the hub right after the provider published them: the requester does not
    believe the hub over the signed receipt and takes the provider's copy."""
    import agora.compute.manager as manager

    a, b = cluster.a, cluster.b
    content = b"the real result\n"
    digest = sha(content)
    original = manager.publish_outputs

    async def publish_then_tamper(*args: Any, **kw: Any) -> Any:
        uris = await original(*args, **kw)
        await _plant(cluster, digest, b"a forged result\n")
        return uris

    monkeypatch.setattr(manager, "publish_outputs", publish_then_tamper)
    mod = module(tmp_path, wat.hello(content=content.decode()))
    async with cluster.api(a) as api_a, cluster.api(b) as api_b:
        await grant(api_b, a)
        doc = await run(api_a, job(mod, outputs=published({"type": "hub"})), b)
        assert doc["state"] == "completed", doc["error"]
        [out] = doc["units"][0]["outputs"]
        assert out["uri"] == f"hub://{BUCKET}/{digest}" and out["fetched_from"] == "provider"
        assert read(out["local_path"]) == content
        logs = await ok(await api_a.get(f"/jobs/{doc['id']}/logs"))
        assert any("storage_integrity" in x["line"] and "fetched from the provider" in x["line"] for x in logs["lines"])


async def _plant(cluster: Cluster, name: str, data: bytes) -> None:
    nc = await nats.connect(hub_url(cluster))
    try:
        js = nc.jetstream()
        try:
            obs = await js.object_store(BUCKET)
        except nats.js.errors.BucketNotFoundError:
            obs = await js.create_object_store(BUCKET)
        await obs.put(name, data)
    finally:
        await nc.close()


async def test_a_task_reads_its_input_from_the_hub(cluster: Cluster, tmp_path: Path) -> None:
    a, b = cluster.a, cluster.b
    data = b"put on the hub by someone earlier\n"
    ref = await put_in_hub(hub_url(cluster), data)
    mod = module(tmp_path, wat.cat_input("msg.txt"))
    src = {"type": "hub", "name": ref.sha256}
    async with cluster.api(a) as api_a, cluster.api(b) as api_b:
        await grant(api_b, a)
        inputs = [{"name": "msg", "source": src, "path": "/inputs/msg.txt", "sha256": ref.sha256}]
        doc = await run(api_a, job(mod, inputs=inputs), b)
        assert doc["state"] == "completed", doc["error"]
        [out] = doc["units"][0]["outputs"]
        assert read(out["local_path"]) == data and out["fetched_from"] == "provider"

        # an object the hub does not hold: input_missing, recorded, nothing left behind
        gone = {"type": "hub", "name": sha(b"never stored")}
        doc = await run(api_a, job(mod, inputs=[{"name": "msg", "source": gone, "path": "/inputs/msg.txt"}]), b)
        assert doc["state"] == "failed" and doc["error"]["code"] == "input_missing", doc["error"]
        assert "msg" in doc["error"]["message"]
    await until(lambda: clean(b), "the provider to hold nothing of the task")


async def test_an_output_over_the_hub_cap_fails_clearly_and_frees_capacity(cluster: Cluster, tmp_path: Path) -> None:
    a = cluster.a
    small = await cluster.make("small", hubs=[hub_url(cluster)], hub_max_object_bytes=64)
    content = "x" * 200
    mod = module(tmp_path, wat.hello(content=content))
    async with cluster.api(a) as api_a, cluster.api(small) as api_small:
        await grant(api_small, a)
        doc = await run(api_a, job(mod, outputs=published({"type": "hub"})), small)
        assert doc["state"] == "failed"
        err = doc["error"]
        assert err["code"] == "message_too_large" and "hello.txt" in err["message"] and "64" in err["message"]
        assert "S3" in err["hint"]
        [unit] = doc["units"]
        assert unit["outputs"] == []
        receipt = UsageReceipt.from_dict(unit["receipt"])
        assert receipt.error_code == "message_too_large" and receipt.reason == "error" and receipt.outputs == ()
    digest = sha(content.encode())
    assert await in_hub(hub_url(cluster), ContentRef(digest, len(content), f"hub://{BUCKET}/{digest}")) is None
    await until(lambda: clean(small), "the provider to free its capacity")


async def test_an_allowlisted_hub_serves_hub_outputs_to_its_members(tmp_path: Path) -> None:
    # identities first: the hub's allowlist names them; the hub creates its bucket (nodes may not)
    dids = [create_keystore(tmp_path / n / "identity.json").did for n in ("a", "b")]
    started: list[Node] = []

    async def start(name: str, **kw: Any) -> Node:
        timing = {"announce_interval": 0.2, "lost_after": 1.0, "expire_after": 5.0}
        node = Node(NodeConfig(home=tmp_path / name, api_port=0, benchmark="off", **timing, **kw))
        await node.start()
        started.append(node)
        return node

    try:
        hub = await start("hub", hub=HubSettings(port=0, allow=dids))
        assert hub.hub is not None
        a = await start("a", hubs=[hub.hub.url])
        b = await start("b", hubs=[hub.hub.url])
        assert [a.did, b.did] == dids
        content = b"members only\n"
        mod = module(tmp_path, wat.hello(content=content.decode()))
        cluster = Cluster(hub, a, b, start)
        async with cluster.api(a) as api_a, cluster.api(b) as api_b:
            await grant(api_b, a)
            doc = await run(api_a, job(mod, outputs=published({"type": "hub"})), b)
            assert doc["state"] == "completed", doc["error"]
            [out] = doc["units"][0]["outputs"]
            assert out["fetched_from"] == "hub" and out["uri"] == f"hub://{BUCKET}/{sha(content)}"
            assert read(out["local_path"]) == content
    finally:
        for node in reversed(started):
            await node.stop()


# -- S3 (SeaweedFS) ----------------------------------------------------------------------------------


@pytest.fixture
async def s3_cluster(
    make_node: NodeFactory,
    seaweed: SeaweedS3,  # noqa: F811 - the imported fixture
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Cluster]:
    """A hub and two nodes that both use the S3 server (credentials from the standard variables)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweed.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweed.secret_key)
    s3 = {"s3_endpoint": seaweed.endpoint, "s3_bucket": TEST_BUCKET, "s3_region": seaweed.region}
    hub = await make_node("hub", hub=True)
    assert hub.hub is not None
    a = await make_node("a", hubs=[hub.hub.url], **s3)
    b = await make_node("b", hubs=[hub.hub.url], **s3)
    yield Cluster(hub, a, b, make_node)


def s3(seaweed: SeaweedS3) -> S3Storage:  # noqa: F811 - the fixture's value, passed in
    return S3Storage(seaweed.endpoint, TEST_BUCKET, seaweed.access_key, seaweed.secret_key, seaweed.region)


async def test_an_output_published_to_s3_reaches_the_requester_from_s3(
    s3_cluster: Cluster,
    seaweed: SeaweedS3,  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    a, b = s3_cluster.a, s3_cluster.b
    content = f"an S3 result {secrets.token_hex(8)}\n".encode()
    prefix = f"runs/{secrets.token_hex(4)}"
    mod = module(tmp_path, wat.hello(content=content.decode()))
    async with s3_cluster.api(a) as api_a, s3_cluster.api(b) as api_b:
        await grant(api_b, a)
        spec = job(mod, outputs=published({"type": "s3", "bucket": TEST_BUCKET, "key": prefix + "/"}))
        doc = await run(api_a, spec, b)
        assert doc["state"] == "completed", doc["error"]
        [unit] = doc["units"]
        [out] = unit["outputs"]
        digest = sha(content)
        assert out["uri"] == f"s3://{TEST_BUCKET}/{prefix}/sha256/{digest}"
        assert out["fetched_from"] == "s3"
        assert read(out["local_path"]) == content
        assert_receipt_names(unit, digest, len(content))
    store = s3(seaweed)
    try:
        assert await store.get_object(TEST_BUCKET, f"{prefix}/sha256/{digest}") == content
    finally:
        await store.close()
    await until(lambda: clean(b), "the provider to hold nothing of the task")


async def test_a_requester_without_s3_gets_s3_outputs_from_the_provider(s3_cluster: Cluster, tmp_path: Path) -> None:
    b = s3_cluster.b
    plain = await s3_cluster.make("plain", hubs=[hub_url(s3_cluster)])  # no S3 settings
    content = b"fetched the long way\n"
    mod = module(tmp_path, wat.hello(content=content.decode()))
    async with s3_cluster.api(plain) as api_plain, s3_cluster.api(b) as api_b:
        await grant(api_b, plain)
        doc = await run(api_plain, job(mod, outputs=published({"type": "s3", "bucket": TEST_BUCKET})), b)
        assert doc["state"] == "completed", doc["error"]
        [out] = doc["units"][0]["outputs"]
        assert out["uri"] == f"s3://{TEST_BUCKET}/agora/sha256/{sha(content)}" and out["fetched_from"] == "provider"
        assert read(out["local_path"]) == content


async def test_a_task_reads_its_input_from_s3(
    s3_cluster: Cluster,
    seaweed: SeaweedS3,  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    a, b = s3_cluster.a, s3_cluster.b
    data = f"an object in S3 {secrets.token_hex(8)}\n".encode()
    key = f"inputs/{secrets.token_hex(6)}.txt"
    store = s3(seaweed)
    try:
        await store.put_object(TEST_BUCKET, key, data)
    finally:
        await store.close()
    mod = module(tmp_path, wat.cat_input("msg.txt"))
    src = {"type": "s3", "bucket": TEST_BUCKET, "key": key}
    async with s3_cluster.api(a) as api_a, s3_cluster.api(b) as api_b:
        await grant(api_b, a)
        doc = await run(api_a, job(mod, inputs=[{"name": "msg", "source": src, "path": "/inputs/msg.txt"}]), b)
        assert doc["state"] == "completed", doc["error"]
        [out] = doc["units"][0]["outputs"]
        assert read(out["local_path"]) == data
    await until(lambda: clean(b), "the provider to hold nothing of the task")


async def test_wrong_s3_credentials_fail_the_job_with_storage_auth_failed(
    s3_cluster: Cluster,
    seaweed: SeaweedS3,  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    a = s3_cluster.a
    wrong = await s3_cluster.make(
        "wrong",
        hubs=[hub_url(s3_cluster)],
        s3_endpoint=seaweed.endpoint,
        s3_bucket=TEST_BUCKET,
        s3_region=seaweed.region,
        s3_access_key=seaweed.access_key,
        s3_secret_key="not-the-secret",
    )
    mod = module(tmp_path, wat.hello(content="never stored\n"))
    async with s3_cluster.api(a) as api_a, s3_cluster.api(wrong) as api_wrong:
        await grant(api_wrong, a)
        doc = await run(api_a, job(mod, outputs=published({"type": "s3", "bucket": TEST_BUCKET})), wrong)
        assert doc["state"] == "failed"
        assert doc["error"]["code"] == "storage_auth_failed" and "hello.txt" in doc["error"]["message"]
        events = await ok(await api_a.get(f"/jobs/{doc['id']}"))
        assert events["units"][0]["state"] == "failed"
        assert events["units"][0]["error"]["code"] == "storage_auth_failed"
    await until(lambda: clean(wrong), "the provider to free its capacity")
