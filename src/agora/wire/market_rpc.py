"""The market's RPC envelope: which command carries which signed message, and what each replies.

The messages themselves (and their signatures) are `agora.wire.market`; this module fixes only how they ride
on the node-to-node RPC, so the provider (`compute`) and the requester (`orchestrator`) build and read the
same shapes. All three commands are public behaviors (a requester holds no grant before it is awarded):
their authority is the signed message they carry, checked by the provider.

    /agora/market/bid_request  {"v": 1, "request": <BidRequest bytes>}  ->  {"bid": <bytes>} | {"decline": <bytes>}
    /agora/market/award        {"v": 1, "award": <Award bytes>}         ->  {"commit": <Commit bytes>}
    /agora/market/release      {"v": 1, "release": <Release bytes>}     ->  {"released": bool}

A bid may carry the provider's delegation to the requester for `/agora/alloc`, scoped to the job; the
requester cites it as the proof of its `/agora/alloc/start`, whose `StartArgs.reservation` names the
committed request id so the allocation takes the capacity the commit reserved.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agora.errors import AgoraError
from agora.wire.market import Award, Bid, BidRequest, Commit, Decline, Release

MARKET_RPC_VERSION = 1
BID_REQUEST_CMD = "/agora/market/bid_request"
AWARD_CMD = "/agora/market/award"
RELEASE_CMD = "/agora/market/release"


def _check(args: Mapping[str, Any], key: str) -> bytes:
    v = args.get("v", MARKET_RPC_VERSION)
    if v != MARKET_RPC_VERSION:
        raise AgoraError("market_message_invalid", f"market RPC version {v!r} is not {MARKET_RPC_VERSION}")
    raw = args.get(key)
    if not isinstance(raw, bytes):
        raise AgoraError("market_message_invalid", f"args.{key} must be the signed message's bytes")
    return raw


def bid_request_args(request: BidRequest) -> dict[str, Any]:
    return {"v": MARKET_RPC_VERSION, "request": request.raw}


def read_bid_request(args: Mapping[str, Any], *, provider: str) -> BidRequest:
    """The provider's reading: signed by its requester, addressed to this provider."""
    req = BidRequest.open(_check(args, "request"))
    if req.provider != provider:
        raise AgoraError("market_message_invalid", f"the bid request is addressed to {req.provider}")
    return req


def bid_reply(answer: Bid | Decline) -> dict[str, Any]:
    return {"bid": answer.raw} if isinstance(answer, Bid) else {"decline": answer.raw}


def read_bid_reply(reply: Mapping[str, Any], *, provider: str) -> Bid | Decline:
    """The requester's reading: exactly one of bid / decline, signed by the provider it asked."""
    if set(reply) == {"bid"} and isinstance(reply["bid"], bytes):
        return Bid.open(reply["bid"], expected_signer=provider)
    if set(reply) == {"decline"} and isinstance(reply["decline"], bytes):
        return Decline.open(reply["decline"], expected_signer=provider)
    raise AgoraError("market_message_invalid", "a bid reply is {bid: bytes} or {decline: bytes}")


def award_args(award: Award) -> dict[str, Any]:
    return {"v": MARKET_RPC_VERSION, "award": award.raw}


def read_award(args: Mapping[str, Any], *, provider: str) -> Award:
    award = Award.open(_check(args, "award"))
    if award.provider != provider:
        raise AgoraError("market_message_invalid", f"the award is addressed to {award.provider}")
    return award


def commit_reply(commit: Commit) -> dict[str, Any]:
    return {"commit": commit.raw}


def read_commit_reply(reply: Mapping[str, Any], *, provider: str, award: Award) -> Commit:
    raw = reply.get("commit")
    if set(reply) != {"commit"} or not isinstance(raw, bytes):
        raise AgoraError("market_message_invalid", "a commit reply is {commit: bytes}")
    commit = Commit.open(raw, expected_signer=provider)
    if commit.award != award.cid or commit.request_id != award.request_id:
        raise AgoraError("market_message_invalid", "the commit does not name this award")
    return commit


def release_args(release: Release) -> dict[str, Any]:
    return {"v": MARKET_RPC_VERSION, "release": release.raw}


def read_release(args: Mapping[str, Any]) -> Release:
    return Release.open(_check(args, "release"))


__all__ = [
    "AWARD_CMD",
    "BID_REQUEST_CMD",
    "MARKET_RPC_VERSION",
    "RELEASE_CMD",
    "award_args",
    "bid_reply",
    "bid_request_args",
    "commit_reply",
    "read_award",
    "read_bid_reply",
    "read_bid_request",
    "read_commit_reply",
    "read_release",
    "release_args",
]
