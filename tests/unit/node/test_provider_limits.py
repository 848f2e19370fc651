"""The provider's limits in NodeConfig: checked at start and handed to the allocation manager."""

from __future__ import annotations

from pathlib import Path

import pytest

from agora.errors import AgoraError
from agora.node import NodeConfig
from agora.node.compute import compute_settings


def config(tmp_path: Path, **kw: object) -> NodeConfig:
    return NodeConfig(home=tmp_path, hubs=["nats://127.0.0.1:4222"], **kw)  # type: ignore[arg-type]


def test_the_defaults_are_valid_and_reach_the_manager(tmp_path: Path) -> None:
    c = config(tmp_path)
    c.validate()
    assert compute_settings(c).max_output_files == c.max_output_files == 1000
    assert compute_settings(config(tmp_path, max_output_files=7)).max_output_files == 7
    store = compute_settings(config(tmp_path, requester_store_quota_bytes=0, store_retention_s=60.0)).store
    assert (store.quota_bytes, store.retention_s) == (0, 60.0)
    assert compute_settings(c).store.quota_bytes == c.requester_store_quota_bytes > 0


@pytest.mark.parametrize(
    ("kw", "says"),
    [
        ({"max_output_files": 0}, "max_output_files"),
        ({"max_output_files": 5000}, "max_output_files"),
        ({"max_output_files": True}, "max_output_files"),
        ({"requester_store_quota_bytes": -1}, "requester_store_quota_bytes"),
        ({"store_retention_s": 0}, "store_retention_s"),
    ],
)
def test_bad_provider_limits_fail_at_start(tmp_path: Path, kw: dict[str, object], says: str) -> None:
    with pytest.raises(AgoraError) as info:
        config(tmp_path, **kw).validate()
    assert info.value.code == "config_invalid" and says in info.value.message
