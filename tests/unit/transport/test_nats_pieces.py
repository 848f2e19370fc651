"""The NATS transport's pure parts: backoff, URL parsing, error explanations."""

from __future__ import annotations

import random
import ssl

import pytest

from agora.errors import AgoraError
from agora.transport import ReconnectPolicy
from agora.transport.reachability import (
    HINT_AUTH,
    HINT_NO_ANSWER,
    HINT_NOT_STARTED,
    HINT_TLS_MISMATCH,
    HINT_TLS_REQUIRED,
    explain_connect_error,
    split_url,
)


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = ReconnectPolicy(min_wait=0.1, max_wait=2.0, jitter=0.0)
    rng = random.Random(1)
    assert [policy.delay(n, rng) for n in range(7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0])
    assert policy.delay(10_000, rng) == 2.0  # forever means forever: no overflow, still bounded


def test_backoff_jitter_stays_in_its_band() -> None:
    policy = ReconnectPolicy(min_wait=0.1, max_wait=1.0, jitter=0.2)
    rng = random.Random(7)
    delays = [policy.delay(20, rng) for _ in range(200)]
    assert all(0.8 <= d <= 1.2 for d in delays)
    assert len(set(delays)) > 100, "jitter spreads reconnect storms"


def test_split_url() -> None:
    assert split_url("nats://127.0.0.1:4222") == ("127.0.0.1", 4222)
    assert split_url("tls://hub.example:7422") == ("hub.example", 7422)
    assert split_url("127.0.0.1") == ("127.0.0.1", 4222)
    for bad in ("http://h:1", "nats://", "nats://h:99999", ""):
        with pytest.raises(AgoraError) as info:
            split_url(bad)
        assert info.value.code == "config_invalid"


def test_connect_errors_are_explained() -> None:
    url = "nats://127.0.0.1:1"
    assert explain_connect_error(ConnectionRefusedError(), url)[::2] == ("hub_unreachable", HINT_NOT_STARTED)
    assert explain_connect_error(TimeoutError(), url)[::2] == ("hub_unreachable", HINT_NO_ANSWER)
    assert explain_connect_error(ssl.SSLCertVerificationError("bad cert"), url)[::2] == (
        "hub_unreachable",
        HINT_TLS_MISMATCH,
    )
    auth = Exception("nats: 'Authorization Violation'")
    assert explain_connect_error(auth, url)[::2] == ("hub_auth_failed", HINT_AUTH)
    assert explain_connect_error(None, url)[0] == "hub_unreachable"


def test_tls_hints_name_the_flag_an_operator_has() -> None:
    assert "--tls-ca" in HINT_TLS_REQUIRED and "--tls-ca" in HINT_TLS_MISMATCH  # not only the field tls.ca_file
