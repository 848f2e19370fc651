"""The hub's ledger stream setting: validated before anything starts, and the stream counted among what an
allowlisted hub provisions itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.transport import HubConfig, HubProcess
from agora.transport.hub_config import DEFAULT_LEDGER_STREAM


def test_a_bad_ledger_stream_name_is_refused(tmp_path: Path) -> None:
    assert HubConfig(home=tmp_path).ledger_stream == DEFAULT_LEDGER_STREAM
    for bad in ("has space", "a.b", "", "x" * 65):
        with pytest.raises(AgoraError) as raised:
            HubConfig(home=tmp_path, ledger_stream=bad).validate()
        assert raised.value.code == "config_invalid" and "ledger_stream" in raised.value.message


def test_an_allowlisted_hub_provisions_the_ledger_stream_even_without_a_market_bucket(tmp_path: Path) -> None:
    did = Keypair.generate().did
    with_ledger = HubConfig(home=tmp_path, allowed_dids=(did,), market_bucket=None, data_bucket=None, object_buckets=())
    without = HubConfig(
        home=tmp_path, allowed_dids=(did,), market_bucket=None, data_bucket=None, object_buckets=(), ledger_stream=None
    )
    assert HubProcess(with_ledger)._provisions_buckets
    assert not HubProcess(without)._provisions_buckets
