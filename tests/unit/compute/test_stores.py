"""Where a task's inputs come from and outputs go, on a provider without a hub (memory transport) or S3, or
with an S3 store a job must not stretch: every refusal comes before the task runs and before any I/O."""

from __future__ import annotations

from typing import Any

import pytest

from agora.compute import NodeStores, S3Settings
from agora.wire import UsageReceipt
from tests.unit.compute import wat
from tests.unit.compute.harness import Provider, Requester, grant, leftovers
from tests.unit.compute.test_allocations import start, task, wait_end

HEX = "ab" * 32
# nothing listens on port 1: a check that did I/O would end in storage_unreachable, not the code expected
S3 = S3Settings(bucket="results", endpoint="http://127.0.0.1:1", access_key="k", secret_key="s")


def out(publish: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": "result", "path": "/outputs/hello.txt", "publish": publish}]


def inp(source: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": "msg", "source": source, "path": "/inputs/msg.txt"}]


async def refused(provider: Provider, requester: Requester, t: dict[str, Any]) -> dict[str, Any]:
    """Run `t` and return the allocation's error, checking it never ran and left nothing behind."""
    await grant(provider, requester)
    alloc_id = await start(requester, provider, t, wat.hello())
    st = await wait_end(requester, provider, alloc_id)
    assert st["state"] == "failed", st
    assert "running" not in [h["state"] for h in st["history"]]  # refused while staging, before the task ran
    receipt = UsageReceipt.open(st["receipt"], expected_provider=provider.did)
    assert receipt.error_code == st["error"]["code"] and receipt.outputs == ()
    assert leftovers(provider) == []
    return dict(st["error"])


@pytest.mark.parametrize(
    ("kw", "code", "says"),
    [
        ({"outputs": out({"type": "hub"})}, "config_invalid", "no hub object store"),
        ({"inputs": inp({"type": "hub", "name": HEX})}, "config_invalid", "no hub object store"),
        ({"outputs": out({"type": "s3", "bucket": "results"})}, "config_invalid", "no S3 store"),
        ({"inputs": inp({"type": "s3", "bucket": "results", "key": "m"})}, "config_invalid", "no S3 store"),
    ],
    ids=["hub-output", "hub-input", "s3-output", "s3-input"],
)
async def test_a_provider_without_the_backend_refuses_with_what_to_configure(
    provider: Provider, requester: Requester, kw: dict[str, Any], code: str, says: str
) -> None:
    err = await refused(provider, requester, task(**kw))
    assert err["code"] == code and says in err["message"], err
    if "S3" in says:
        assert "--s3-endpoint" in err["hint"] and "--s3-bucket" in err["hint"] and "AWS_ACCESS_KEY_ID" in err["hint"]
    else:
        assert "hub" in err["hint"]


@pytest.mark.parametrize(
    ("kw", "code", "says"),
    [
        ({"outputs": out({"type": "s3", "bucket": "other"})}, "storage_forbidden", "'other'"),
        ({"inputs": inp({"type": "s3", "bucket": "other", "key": "secret"})}, "storage_forbidden", "'other'"),
        (
            {"inputs": inp({"type": "s3", "bucket": "results", "key": "m", "endpoint": "https://s3.example.org"})},
            "config_invalid",
            "https://s3.example.org",
        ),
        (
            {"outputs": out({"type": "s3", "bucket": "results", "region": "eu-west-1"})},
            "config_invalid",
            "eu-west-1",
        ),
    ],
    ids=["output-other-bucket", "input-other-bucket", "input-other-endpoint", "output-other-region"],
)
async def test_s3_credentials_serve_the_configured_bucket_only(
    provider: Provider, requester: Requester, kw: dict[str, Any], code: str, says: str
) -> None:
    provider.manager.stores = NodeStores(provider.cas, s3=S3)
    err = await refused(provider, requester, task(**kw))
    assert err["code"] == code and says in err["message"], err


async def test_a_hub_input_is_named_by_its_hash(provider: Provider, requester: Requester) -> None:
    err = await refused(provider, requester, task(inputs=inp({"type": "hub", "name": "results.txt"})))
    assert err["code"] == "job_spec_invalid" and "sha256" in err["message"]
    assert err["details"]["errors"][0]["path"] == "input 'msg'.source.name"


async def test_a_hub_bucket_name_is_checked(provider: Provider, requester: Requester) -> None:
    err = await refused(provider, requester, task(outputs=out({"type": "hub", "bucket": "no/slashes"})))
    assert err["code"] == "job_spec_invalid" and "bucket" in err["message"]


def test_published_outputs_are_downloaded_only_from_what_this_node_reaches(provider: Provider) -> None:
    bare = NodeStores(provider.cas)
    assert not bare.can_download(f"hub://agora-results/{HEX}")
    assert not bare.can_download(f"s3://results/agora/sha256/{HEX}")
    with_s3 = NodeStores(provider.cas, s3=S3)
    assert with_s3.can_download(f"s3://results/agora/sha256/{HEX}")
    assert not with_s3.can_download(f"s3://other/agora/sha256/{HEX}")  # not with this node's credentials
    assert not with_s3.can_download("cas://sha256/" + HEX)
