"""The address rules that keep a provider from fetching a requester's URL inside its own network (SSRF)."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from agora.errors import CATALOG, AgoraError
from agora.storage.http import HttpFetcher, allow_any, forbidden_reason


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.254.3.2", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("198.18.0.1", "reserved"),
        ("192.0.2.1", "reserved"),  # documentation (Python's own flags)
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fc00::1", "unique local"),
        ("fd12:3456::1", "unique local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("::127.0.0.1", "reserved"),  # IPv4-compatible
        ("2001:db8::1", "reserved"),
        ("::ffff:127.0.0.1", "loopback address, in IPv4-mapped form"),
        ("::ffff:10.1.2.3", "private address (RFC 1918), in IPv4-mapped form"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:100.64.0.1", "carrier-grade NAT"),
        ("64:ff9b::a9fe:a9fe", "in NAT64 form"),  # 169.254.169.254 through a NAT64 gateway
        ("2002:7f00:1::", "loopback address, in 6to4 form"),
    ],
)
def test_private_and_local_addresses_are_refused_with_a_reason(address: str, reason: str) -> None:
    got = forbidden_reason(ip_address(address))
    assert got is not None and reason in got, got


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.215.14",
        "100.63.255.255",  # just below CGNAT
        "100.128.0.0",  # just above
        "172.15.255.255",  # just below 172.16/12
        "172.32.0.0",  # just above
        "169.253.255.255",
        "2606:4700:4700::1111",
        "2a00:1450:4001:80b::200e",
        "::ffff:8.8.8.8",  # a public address in mapped form is that public address
        "64:ff9b::808:808",
        "2002:808:808::",
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert forbidden_reason(ip_address(address)) is None


def test_the_opt_in_policy_allows_everything() -> None:
    assert allow_any(ip_address("127.0.0.1")) is None
    assert allow_any(ip_address("169.254.169.254")) is None


def test_fetcher_picks_the_policy_from_the_opt_in() -> None:
    assert HttpFetcher().allow_private_inputs is False
    assert HttpFetcher()._policy is forbidden_reason
    assert HttpFetcher(allow_private_inputs=True)._policy is allow_any

    def custom(ip: object) -> str | None:
        return "nope"

    assert HttpFetcher(allow_private_inputs=True, address_policy=custom)._policy is custom


def test_input_forbidden_is_a_stable_403_that_is_not_retried() -> None:
    kind = CATALOG["input_forbidden"]
    assert kind.http_status == 403 and not kind.retryable
    err = AgoraError("input_forbidden", "x")
    assert "--allow-private-inputs" in err.hint and "private or local" in err.hint
