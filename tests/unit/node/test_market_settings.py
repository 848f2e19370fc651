"""The provider's market settings: `sell` and the `bidder` section are flags and environment names, checked at
start."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agora.daemon.main import build_config, parse_args
from agora.errors import AgoraError
from agora.node import NodeConfig


def test_sell_and_the_bidder_section_are_settings() -> None:
    refused = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
    argv = ["--hub-url", "nats://127.0.0.1:4222", "--sell", "--bidder-start-window-s", "90"]
    c = build_config(parse_args(argv), {"AGORA_BIDDER_RATE_PER_MIN": "5", "AGORA_BIDDER_REFUSE": refused})
    assert c.sell is True
    assert (c.bidder.start_window_s, c.bidder.rate_per_min, c.bidder.refuse) == (90, 5, (refused,))
    assert build_config(parse_args(["--hub-url", "nats://127.0.0.1:4222"]), {}).sell is False


@pytest.mark.parametrize(
    ("kw", "says"),
    [
        ({"bid_valid_s": 0}, "bidder.bid_valid_s"),
        ({"start_window_s": -1}, "bidder.start_window_s"),
        ({"rate_per_min": -1}, "bidder.rate_per_min"),
        ({"refuse": ("alice",)}, "bidder.refuse"),
    ],
)
def test_bad_bidder_settings_fail_at_start(tmp_path: Path, kw: dict[str, object], says: str) -> None:
    c = NodeConfig(home=tmp_path, hubs=["nats://127.0.0.1:4222"])
    c.bidder = dataclasses.replace(c.bidder, **kw)  # type: ignore[arg-type]
    with pytest.raises(AgoraError) as err:
        c.validate()
    assert err.value.code == "config_invalid" and says in err.value.message
