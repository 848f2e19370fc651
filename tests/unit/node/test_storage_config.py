"""The storage settings of a node: defaults, the checks at start, the daemon flags, where credentials come from."""

from __future__ import annotations

from pathlib import Path

import pytest

from agora.daemon.main import build_config, parse_args
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.models.job import Publish
from agora.node import HubSettings, Node, NodeConfig
from agora.node.compute import compute_of
from agora.transport import MemoryNetwork, MemoryTransport

HUB = ["--hub-url", "nats://127.0.0.1:4222"]


def config(tmp_path: Path, **kw: object) -> NodeConfig:
    return NodeConfig(home=tmp_path, hubs=["nats://127.0.0.1:4222"], **kw)  # type: ignore[arg-type]


def test_defaults_use_the_hub_and_no_s3(tmp_path: Path) -> None:
    c = config(tmp_path)
    c.validate()
    assert c.hub_bucket == "agora-results" and c.hub_max_object_bytes == 8 * 1024 * 1024
    assert c.s3_bucket is None and c.s3_endpoint is None


def test_the_daemon_flags_set_s3(tmp_path: Path) -> None:
    c = build_config(parse_args([*HUB, "--s3-endpoint", "http://127.0.0.1:8333", "--s3-bucket", "results"]))
    assert (c.s3_endpoint, c.s3_bucket, c.s3_region) == ("http://127.0.0.1:8333", "results", "us-east-1")
    c = build_config(parse_args([*HUB, "--s3-bucket", "results", "--s3-region", "eu-west-1"]))
    assert (c.s3_endpoint, c.s3_bucket, c.s3_region) == (None, "results", "eu-west-1")
    assert build_config(parse_args(HUB)).s3_bucket is None


@pytest.mark.parametrize(
    ("kw", "says"),
    [
        ({"s3_endpoint": "http://127.0.0.1:8333"}, "s3_bucket"),
        ({"s3_endpoint": "ftp://host", "s3_bucket": "results"}, "http(s)"),
        ({"s3_bucket": "Not_A_Bucket"}, "bucket name"),
        ({"s3_bucket": "results", "s3_region": "eu west"}, "region"),
        ({"s3_bucket": "results", "s3_access_key": "AK"}, "go together"),
        ({"hub_bucket": "a.b"}, "hub_bucket"),
        ({"hub_max_object_bytes": 0}, "hub_max_object_bytes"),
    ],
)
def test_bad_storage_settings_fail_at_start(tmp_path: Path, kw: dict[str, object], says: str) -> None:
    with pytest.raises(AgoraError) as info:
        config(tmp_path, **kw).validate()
    assert info.value.code == "config_invalid" and says in info.value.message


def test_credentials_come_from_the_config_else_the_standard_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    assert config(tmp_path, s3_bucket="results").s3_credentials() == ("env-key", "env-secret")
    own = config(tmp_path, s3_bucket="results", s3_access_key="mine", s3_secret_key="s3cr3t-value")
    assert own.s3_credentials() == ("mine", "s3cr3t-value")
    assert "s3cr3t-value" not in repr(own)  # a logged config does not leak the key
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert config(tmp_path, s3_bucket="results").s3_credentials() == (None, None)  # boto3's own chain


DID = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"


def test_an_allowlisted_hub_opens_the_configured_bucket(tmp_path: Path) -> None:
    c = NodeConfig(home=tmp_path, hub=HubSettings(port=0, allow=[DID]))
    assert c.hub_process_config(DID).object_buckets == ("agora-results",)
    c.hub_bucket = "team-results"
    assert c.hub_process_config(DID).object_buckets == (
        "agora-results",
        "team-results",
    )


async def test_a_node_on_the_memory_transport_has_no_hub_store_and_says_so(tmp_path: Path) -> None:
    kp = Keypair.generate()
    node = Node(
        config(tmp_path, s3_bucket="results", benchmark="off"),
        keypair=kp,
        transport=MemoryTransport(MemoryNetwork(), kp.did),
    )
    await node.start()
    try:
        stores = compute_of(node).stores
        assert stores.hub is None and not stores.can_download("hub://agora-results/" + "ab" * 32)
        assert stores.s3_settings is not None and stores.s3_settings.bucket == "results"
        with pytest.raises(AgoraError) as info:
            await stores.publisher(Publish("hub"), "output 'result'")
        assert info.value.code == "config_invalid" and "memory transport" in info.value.message
    finally:
        await node.stop()
