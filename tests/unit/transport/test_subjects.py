"""Subject naming and validation: what may become a NATS subject, and what never may."""

from __future__ import annotations

import pytest

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.transport.subjects import (
    check_size,
    inbox_subject,
    reply_inbox_prefix,
    topic_matches,
    validate_public_topic,
    validate_topic,
)


def test_inbox_subject_of_a_did_key() -> None:
    did = Keypair.generate().did
    assert inbox_subject(did) == f"agora.node.{did}"
    assert inbox_subject("did:web:example_host:alice") == "agora.node.did:web:example_host:alice"


@pytest.mark.parametrize(
    "did",
    ["", "node", "did:key:", "did:key:z6Mk.x", "did:key:*", "did:key:z>", "did:key:a b", "did:key:a\tb",
     "did:key:a\r\nPUB x 1", "DID:key:abc", "did:key:" + "z" * 300, "did:KEY:abc", 42],
)  # fmt: skip
def test_unsafe_dids_are_did_invalid(did: object) -> None:
    with pytest.raises(AgoraError) as info:
        inbox_subject(did)  # type: ignore[arg-type]
    assert info.value.code == "did_invalid"


@pytest.mark.parametrize("topic", ["agora.announce", "agora.offers.gpu", "a", "x-y_z.1"])
def test_good_topics(topic: str) -> None:
    assert validate_topic(topic) == topic


@pytest.mark.parametrize(
    "topic",
    ["", ".", "a..b", ".a", "a.", "a b", "a.*", "a.>", "*", ">", "agora.node", "agora.node.x",
     "_INBOX.abc", "$JS.API.INFO", "a\r\nb", "ä.b", "a" * 257],
)  # fmt: skip
def test_bad_topics(topic: str) -> None:
    with pytest.raises(AgoraError) as info:
        validate_topic(topic)
    assert info.value.code == "topic_invalid"


def test_wildcards_only_in_subscription_patterns() -> None:
    assert validate_topic("agora.*.x", wildcards=True) == "agora.*.x"
    assert validate_topic("agora.>", wildcards=True) == "agora.>"
    for bad in ("agora.>.x", "agora.**", "agora.node.*", "a..*"):
        with pytest.raises(AgoraError):
            validate_topic(bad, wildcards=True)


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("a.b", "a.b", True),
        ("a.b", "a.c", False),
        ("a.b", "a.b.c", False),
        ("a.*", "a.b", True),
        ("a.*", "a.b.c", False),
        ("a.*", "a", False),
        ("a.>", "a.b", True),
        ("a.>", "a.b.c", True),
        ("a.>", "a", False),
        ("*.b", "a.b", True),
        (">", "a.b.c", True),
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.b.d", False),
    ],
)
def test_topic_matches_like_nats(pattern: str, topic: str, expected: bool) -> None:
    assert topic_matches(pattern, topic) is expected


def test_check_size() -> None:
    check_size(b"x" * 10, 10, "message")
    with pytest.raises(AgoraError) as info:
        check_size(b"x" * 11, 10, "message")
    assert info.value.code == "message_too_large"
    assert info.value.details == {"size": 11, "limit": 10}
    with pytest.raises(AgoraError) as info:
        check_size("text", 10, "message")  # type: ignore[arg-type]
    assert info.value.code == "invalid_argument"


def test_reply_inbox_prefix_is_one_stable_token_per_did() -> None:
    a, b = Keypair.generate().did, Keypair.generate().did
    prefix = reply_inbox_prefix(a)
    root, token = prefix.split(".")
    assert root == "_INBOX" and len(token) == 26 and token.isalnum() and token == token.lower()
    assert reply_inbox_prefix(a) == prefix and reply_inbox_prefix(b) != prefix
    # a reply subject of a (prefix + "." + nuid + "." + token) is never matched by b's permission
    assert topic_matches(prefix + ".>", prefix + ".NUID.tok")
    assert not topic_matches(reply_inbox_prefix(b) + ".>", prefix + ".NUID.tok")
    with pytest.raises(AgoraError) as info:
        reply_inbox_prefix("did:key:a.b")
    assert info.value.code == "did_invalid"


@pytest.mark.parametrize("pattern", ["agora.announce", "agora.announce.>", "agora.*", "jobs.*.done", "agora.x.*"])
def test_public_topics_that_cannot_reach_an_inbox(pattern: str) -> None:
    assert validate_public_topic(pattern) == pattern
    assert not topic_matches(pattern, "agora.node.did:key:z6Mkabc")


@pytest.mark.parametrize("pattern", [">", "*", "*.x", "agora.>", "agora.*.>", "agora.*.x", "agora.node.>", "_INBOX.>"])
def test_public_topics_that_could_reach_an_inbox_are_refused(pattern: str) -> None:
    with pytest.raises(AgoraError) as info:
        validate_public_topic(pattern)
    assert info.value.code == "topic_invalid"
