"""Subject naming and validation shared by every transport (pure, no I/O).

A node's inbox is the subject `agora.node.<did>`. A DID becomes one subject token, so it must not
contain `.` (token separator), `*`/`>` (wildcards) or whitespace (protocol framing); did:key is
base58btc and always passes. Topics are dotted names outside the inbox namespace, so a publish can
never land in somebody's inbox by accident.

Replies come back on a per-node reply inbox, `_INBOX.<26 base32 chars of sha256(did)>.…`, so an
allowlisted hub can let each node subscribe to its own replies only (see `hub_config.py`). A hash
instead of the DID keeps the reply subject short (it travels with every request) and is one token
that no other node's prefix can match.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache

from agora.errors import AgoraError

INBOX_PREFIX = "agora.node."
ERROR_HEADER = "Agora-Error"
"""Header of a reply that carries a transport-level failure instead of the handler's bytes."""

_DID_RE = re.compile(r"did:[a-z0-9]+:[A-Za-z0-9_:%-]+")
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+")
_MAX_DID = 256
_MAX_TOPIC = 256
REPLY_INBOX_ROOT = "_INBOX"
_RESERVED_TOPIC_PREFIXES = (INBOX_PREFIX, REPLY_INBOX_ROOT + ".", "$")
PUBLIC_TOPICS: tuple[str, ...] = ("agora.announce", "agora.announce.>")
"""Topic patterns agora itself uses (discovery); an allowlisted hub permits these by default."""


@lru_cache(maxsize=8192)
def inbox_subject(did: str) -> str:
    """The subject of `did`'s inbox; raises `did_invalid` for a DID that is unsafe as a token."""
    if not isinstance(did, str) or len(did) > _MAX_DID or _DID_RE.fullmatch(did) is None:
        shown = str(did)[:80]
        raise AgoraError(
            "did_invalid",
            f"{shown!r} cannot name an inbox: a DID is did:<method>:<id> without '.', '*', '>' or spaces",
        )
    return INBOX_PREFIX + did


@lru_cache(maxsize=8192)
def reply_inbox_prefix(did: str) -> str:
    """The prefix of `did`'s reply inboxes (nats-py `inbox_prefix`): `_INBOX.<hash of the DID>`."""
    inbox_subject(did)  # the same DID rules: did_invalid before anything is derived from it
    digest = hashlib.sha256(did.encode()).digest()[:16]
    return REPLY_INBOX_ROOT + "." + base64.b32encode(digest).decode().rstrip("=").lower()


def validate_topic(topic: str, *, wildcards: bool = False) -> str:
    """Check a topic (or a subscription pattern when `wildcards`) and return it unchanged."""
    if not isinstance(topic, str) or not topic or len(topic) > _MAX_TOPIC:
        raise AgoraError("topic_invalid", f"topic must be 1..{_MAX_TOPIC} characters, got {str(topic)[:80]!r}")
    if topic.startswith(_RESERVED_TOPIC_PREFIXES) or topic + "." == INBOX_PREFIX:
        raise AgoraError("topic_invalid", f"{topic!r} is reserved for node inboxes and replies")
    tokens = topic.split(".")
    for i, token in enumerate(tokens):
        if wildcards and token == "*":
            continue
        if wildcards and token == ">" and i == len(tokens) - 1:
            continue
        if _TOKEN_RE.fullmatch(token) is None:
            what = "wildcards" if not wildcards and token in ("*", ">") else "token"
            raise AgoraError("topic_invalid", f"bad {what} {token!r} in topic {topic!r}")
    return topic


def validate_public_topic(pattern: str) -> str:
    """Check a topic pattern a hub may open to every allowlisted node: it must not reach an inbox.

    An inbox is `agora.node.<did>` (three tokens) and a reply inbox starts with `_INBOX.`, so a
    pattern may not start with a wildcard, and under `agora.` its second token must be literal
    unless the pattern has exactly two tokens (`agora.*` cannot match three tokens).
    """
    validate_topic(pattern, wildcards=True)
    tokens = pattern.split(".")
    reaches_inboxes = tokens[0] in ("*", ">") or (
        tokens[0] == "agora" and len(tokens) > 1 and (tokens[1] == ">" or (tokens[1] == "*" and len(tokens) > 2))
    )
    if reaches_inboxes:
        raise AgoraError(
            "topic_invalid",
            f"topic pattern {pattern!r} would also match node inboxes",
            hint="Name the topics (e.g. agora.announce.>) instead of a wildcard over agora.* or everything.",
        )
    return pattern


def topic_matches(pattern: str, topic: str) -> bool:
    """NATS wildcard matching: `*` matches one token, a final `>` matches one or more."""
    p_tokens = pattern.split(".")
    t_tokens = topic.split(".")
    for i, p in enumerate(p_tokens):
        if p == ">":
            return len(t_tokens) > i
        if i >= len(t_tokens):
            return False
        if p != "*" and p != t_tokens[i]:
            return False
    return len(p_tokens) == len(t_tokens)


def check_size(data: bytes, limit: int, what: str) -> None:
    """Refuse non-bytes and anything over `limit` before it costs a network hop."""
    if not isinstance(data, bytes | bytearray):
        raise AgoraError("invalid_argument", f"{what} must be bytes, got {type(data).__name__}")
    if len(data) > limit:
        raise AgoraError(
            "message_too_large",
            f"{what} of {len(data)} bytes is over the limit of {limit} bytes",
            details={"size": len(data), "limit": limit},
        )


__all__ = [
    "ERROR_HEADER",
    "INBOX_PREFIX",
    "PUBLIC_TOPICS",
    "REPLY_INBOX_ROOT",
    "check_size",
    "inbox_subject",
    "reply_inbox_prefix",
    "topic_matches",
    "validate_public_topic",
    "validate_topic",
]
