"""The provider's limits in NodeConfig (its `compute` section): checked at start, set by flags or the environment,
and handed to the allocation manager."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agora.daemon.main import build_config, parse_args
from agora.errors import AgoraError
from agora.node import NodeConfig
from agora.node.compute import ComputeOptions


def config(tmp_path: Path, **compute: object) -> NodeConfig:
    c = NodeConfig(home=tmp_path, hubs=["nats://127.0.0.1:4222"])
    store = {k[len("store_") :]: v for k, v in compute.items() if k.startswith("store_")}
    rest = {k: v for k, v in compute.items() if not k.startswith("store_")}
    c.compute = dataclasses.replace(c.compute, store=dataclasses.replace(c.compute.store, **store), **rest)  # type: ignore[arg-type]
    return c


def test_the_defaults_are_valid_and_reach_the_manager(tmp_path: Path) -> None:
    c = config(tmp_path)
    c.validate()
    assert c.compute.max_output_files == 1000
    assert c.compute.store.quota_bytes == 10 * 1024**3 and c.compute.store.retention_s == 7 * 24 * 3600
    assert ComputeOptions.from_config(c).settings is c.compute


def test_the_limits_are_settings() -> None:
    argv = ["--hub-url", "nats://127.0.0.1:4222", "--compute-max-output-files", "7"]
    c = build_config(parse_args(argv), {"AGORA_COMPUTE_STORE_QUOTA_BYTES": "0", "AGORA_ALLOW_TASK_USERNS": "1"})
    assert (c.compute.max_output_files, c.compute.store.quota_bytes, c.allow_task_userns) == (7, 0, True)


@pytest.mark.parametrize(
    ("kw", "says"),
    [
        ({"max_output_files": 0}, "max_output_files"),
        ({"max_output_files": 5000}, "max_output_files"),
        ({"max_output_files": True}, "max_output_files"),
        ({"store_quota_bytes": -1}, "quota_bytes"),
        ({"store_retention_s": 0}, "retention_s"),
    ],
)
def test_bad_provider_limits_fail_at_start(tmp_path: Path, kw: dict[str, object], says: str) -> None:
    with pytest.raises(AgoraError) as info:
        config(tmp_path, **kw).validate()
    assert info.value.code == "config_invalid" and says in info.value.message
