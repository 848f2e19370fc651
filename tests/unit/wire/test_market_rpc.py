"""The market RPC envelope: each side reads only what the other built, from the party it expects."""

from __future__ import annotations

import pytest

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.wire.market import Award, Bid, Commit, Decline, DeclineReason, Release
from agora.wire.market_rpc import (
    award_args,
    bid_reply,
    bid_request_args,
    commit_reply,
    read_award,
    read_bid_reply,
    read_bid_request,
    read_commit_reply,
    read_release,
    release_args,
)
from tests.unit.wire.test_market import PROV, REQ, request


def test_the_exchange_round_trips() -> None:
    req = request()
    assert read_bid_request(bid_request_args(req), provider=PROV.did) == req
    bid = Bid.issue(PROV, req, price=900, valid_until=150, iat=110)
    assert read_bid_reply(bid_reply(bid), provider=PROV.did) == bid
    decline = Decline.issue(PROV, req, [DeclineReason("busy", "no free slot")], iat=110)
    assert read_bid_reply(bid_reply(decline), provider=PROV.did) == decline
    award = Award.issue(REQ, bid, commit_by=140, iat=120)
    assert read_award(award_args(award), provider=PROV.did) == award
    commit = Commit.issue(PROV, award, start_by=170, iat=130)
    assert read_commit_reply(commit_reply(commit), provider=PROV.did, award=award) == commit
    rel = Release.issue(REQ, award, reason="lost", iat=135)
    assert read_release(release_args(rel)) == rel


def test_misaddressed_forged_or_mismatched_messages_are_refused() -> None:
    other = Keypair.generate()
    req = request()
    with pytest.raises(AgoraError) as info:  # a request for another provider
        read_bid_request(bid_request_args(req), provider=other.did)
    assert info.value.code == "market_message_invalid"
    bid = Bid.issue(PROV, req, price=900, valid_until=150, iat=110)
    with pytest.raises(AgoraError):  # a bid signed by someone else than the provider asked
        read_bid_reply(bid_reply(bid), provider=other.did)
    with pytest.raises(AgoraError):  # both, or neither
        read_bid_reply({"bid": bid.raw, "decline": bid.raw}, provider=PROV.did)
    award = Award.issue(REQ, bid, commit_by=140, iat=120)
    with pytest.raises(AgoraError):
        read_award(award_args(award), provider=other.did)
    bid2 = Bid.issue(PROV, request(request_id="r-2"), price=800, valid_until=150, iat=110)
    award2 = Award.issue(REQ, bid2, commit_by=140, iat=120)
    commit2 = Commit.issue(PROV, award2, start_by=170, iat=130)
    with pytest.raises(AgoraError):  # a commit of another award
        read_commit_reply(commit_reply(commit2), provider=PROV.did, award=award)
    with pytest.raises(AgoraError):
        read_award({"v": 2, "award": award.raw}, provider=PROV.did)
    with pytest.raises(AgoraError):
        read_release({"release": "not bytes"})
