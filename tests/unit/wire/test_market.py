"""Market messages: round trips, forged / tampered / replayed ads refused with stable codes, the bid flow."""

from __future__ import annotations

from typing import Any

import pytest

from agora.codec import CID
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.models.capability import Capability, GiB
from agora.models.offer import ResourceOffer
from agora.ucan import delegate, seal_envelope
from agora.wire import MESSAGE_TYPES, Receipt
from agora.wire.market import (
    AD_TAG,
    MARKET_MESSAGES,
    Award,
    Bid,
    BidRequest,
    CapacityAd,
    Commit,
    Decline,
    DeclineReason,
    ExecutorState,
    Release,
    check_award,
    check_bid,
    check_newer,
)

PROV = Keypair.generate()
REQ = Keypair.generate()


def offer(provider: str = PROV.did) -> ResourceOffer:
    return ResourceOffer.from_dict(
        {
            "kind": "resources",
            "offer_id": "o-1",
            "provider": provider,
            "resources": {"cpu_millis": 4000, "memory_bytes": 8 * GiB, "executors": ["wasm", "docker"]},
            "price": {"base": {"cpu_second": 3}},
            "terms": {},
            "valid_from": 0,
            "valid_until": 10_000,
        }
    )


def ad(seq: int = 1, kp: Keypair = PROV, **over: Any) -> CapacityAd:
    kw: dict[str, Any] = {
        "seq": seq,
        "iat": 100,
        "ttl_s": 60,
        "offer": offer(kp.did),
        "free": Capability(cpu_millis=2000, memory_bytes=2 * GiB, labels={"zone": "a"}, location="eu-west"),
        "executors": {"wasm": ExecutorState(True), "docker": ExecutorState(False, "no engine answers")},
        "benchmark_score": 1200.0,
        "version": "0.1.0",
    }
    kw.update(over)
    return CapacityAd.issue(kp, **kw)


def request(**over: Any) -> BidRequest:
    kw: dict[str, Any] = {
        "provider": PROV.did,
        "request_id": "r-1",
        "job_id": "j-1",
        "task": "main",
        "offer_id": "o-1",
        "need": Capability(cpu_millis=1000, memory_bytes=GiB, executors=frozenset({"wasm"})),
        "engine": "wasm",
        "duration_s": 60,
        "max_price": 1000,
        "respond_by": 200,
        "iat": 100,
    }
    kw.update(over)
    return BidRequest.issue(REQ, **kw)


def test_ad_round_trip_and_executor_availability() -> None:
    a = ad()
    b = CapacityAd.open(a.raw, expected_signer=PROV.did)
    assert b == a and b.cid == a.cid
    assert b.available_executors == frozenset({"wasm"}) and b.free.executors == frozenset({"wasm"})
    assert b.executors["docker"].reason == "no engine answers"
    assert b.expires_at == 160 and b.free.labels == {"zone": "a"}
    assert MESSAGE_TYPES[AD_TAG].startswith("capacity ad")


def test_forged_ad_is_refused() -> None:
    """Signed by someone else than the provider it names: the signature does not verify."""
    mallory = Keypair.generate()
    good = ad()
    payload = good._payload()
    forged = seal_envelope(mallory, AD_TAG, payload)  # mallory signs an ad in PROV's name
    with pytest.raises(AgoraError) as raised:
        CapacityAd.open(forged)
    assert raised.value.code == "ad_invalid" and "signature" in raised.value.message


def test_tampered_ad_is_refused() -> None:
    raw = bytearray(ad().raw)
    idx = raw.find(b"0.1.0")
    raw[idx] = ord("9")  # change the version: bytes still decode, signature no longer matches
    with pytest.raises(AgoraError) as raised:
        CapacityAd.open(bytes(raw))
    assert raised.value.code == "ad_invalid"
    raw2 = bytearray(ad().raw)
    raw2[-1] ^= 0xFF
    with pytest.raises(AgoraError) as raised:
        CapacityAd.open(bytes(raw2))
    assert raised.value.code == "ad_invalid"


def test_ad_for_another_providers_offer_is_refused() -> None:
    other = offer(REQ.did)
    with pytest.raises(AgoraError) as raised:
        ad(offer=other)
    assert raised.value.code == "ad_invalid" and raised.value.details["field"] == "offer"


def test_replayed_older_ad_is_refused() -> None:
    first, second = ad(seq=1), ad(seq=2)
    assert check_newer(first, None) and check_newer(second, first)
    assert not check_newer(second, CapacityAd.open(second.raw))  # the same ad again: duplicate
    with pytest.raises(AgoraError) as raised:
        check_newer(first, second)
    assert raised.value.code == "ad_replayed" and raised.value.details == {
        "provider": PROV.did,
        "seq": 1,
        "last_seq": 2,
    }
    equivocation = ad(seq=2, version="0.2.0")
    with pytest.raises(AgoraError) as raised:
        check_newer(equivocation, second)
    assert raised.value.code == "ad_replayed"


def test_domain_separation_a_receipt_is_not_an_ad() -> None:
    r = Receipt.issue(PROV, CID.of(b"x"), ok=ad()._payload(), iat=1)
    with pytest.raises(AgoraError) as raised:
        CapacityAd.open(r.raw)
    assert raised.value.code == "ad_invalid"
    with pytest.raises(AgoraError) as raised:
        Bid.open(ad().raw)  # an ad is not a bid either
    assert raised.value.code == "market_message_invalid"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("seq", -1),
        ("ttl", 0),
        ("bench", "fast"),
        ("execs", {"wasm": True}),
        ("free", {"cpu_millis": -1}),
        ("free", {"cpu_millis": 1, "trust": 1.0}),
        ("free", {"cpu_millis": 1, "executors": ["docker"]}),
        ("ver", ""),
        ("offer", {"kind": "resources"}),
    ],
)
def test_malformed_ad_fields_are_named(key: str, value: Any) -> None:
    payload = ad()._payload()
    payload[key] = value
    with pytest.raises(AgoraError) as raised:
        CapacityAd.open(seal_envelope(PROV, AD_TAG, payload))
    assert raised.value.code == "ad_invalid" and raised.value.details["field"] == key


def test_not_bytes_and_garbage() -> None:
    for bad in (b"", b"\x00garbage", "text"):
        with pytest.raises(AgoraError) as raised:
            CapacityAd.open(bad)  # type: ignore[arg-type]
        assert raised.value.code == "ad_invalid"


def test_bid_flow_round_trips_and_checks() -> None:
    req = request()
    assert BidRequest.open(req.raw, expected_signer=REQ.did) == req
    dlg = delegate(PROV, aud=REQ.did, sub=PROV.did, cmd="/agora/alloc", exp=500)
    bid = Bid.issue(PROV, req, price=900, valid_until=150, iat=110, delegation=dlg.raw)
    opened = Bid.open(bid.raw, expected_signer=PROV.did)
    assert opened == bid and opened.request == req.cid
    token = opened.delegation_token()
    assert token is not None and token.aud == REQ.did
    check_bid(opened, req, now=120)
    award = Award.issue(REQ, opened, commit_by=140, iat=120)
    assert Award.open(award.raw) == award and award.bid == bid.cid
    check_award(award, bid, now=130)
    commit = Commit.issue(PROV, award, start_by=170, iat=130)
    assert Commit.open(commit.raw).award == award.cid
    rel = Release.issue(REQ, award, reason="cancelled", iat=135)
    assert Release.open(rel.raw).issuer == REQ.did
    for msg in (req, bid, award, commit, rel):
        assert MARKET_MESSAGES[msg.TAG](msg.raw) == msg


def test_bid_over_max_price_is_never_signed_nor_accepted() -> None:
    req = request(max_price=500)
    with pytest.raises(AgoraError) as raised:
        Bid.issue(PROV, req, price=501, valid_until=150, iat=110)
    assert raised.value.code == "bid_over_max_price"
    # a hostile provider signs one anyway by hand: the requester's check refuses it
    over = Bid(PROV.did, REQ.did, req.cid, "r-1", "j-1", "o-1", 501, 150, None, 110)
    sealed = Bid.open(seal_envelope(PROV, Bid.TAG, over._payload()))
    with pytest.raises(AgoraError) as raised:
        check_bid(sealed, req, now=120)
    assert raised.value.code == "bid_over_max_price"


def test_expired_bid_and_award() -> None:
    req = request()
    bid = Bid.issue(PROV, req, price=10, valid_until=150, iat=110)
    with pytest.raises(AgoraError) as raised:
        check_bid(bid, req, now=151)
    assert raised.value.code == "bid_expired"
    with pytest.raises(AgoraError) as raised:
        Award.issue(REQ, bid, commit_by=200, iat=151)
    assert raised.value.code == "bid_expired"
    award = Award.issue(REQ, bid, commit_by=140, iat=120)
    with pytest.raises(AgoraError) as raised:
        check_award(award, bid, now=141)
    assert raised.value.code == "bid_expired"


def test_award_must_name_the_bid_and_keep_its_price() -> None:
    req = request()
    bid = Bid.issue(PROV, req, price=10, valid_until=150, iat=110)
    other = Bid.issue(PROV, req, price=11, valid_until=150, iat=111)
    award = Award.issue(REQ, bid, commit_by=140, iat=120)
    with pytest.raises(AgoraError) as raised:
        check_award(award, other, now=121)
    assert raised.value.code == "market_message_invalid"
    cheaper = Award(REQ.did, PROV.did, bid.cid, "r-1", "j-1", 5, 140, 120)
    with pytest.raises(AgoraError) as raised:
        check_award(Award.open(seal_envelope(REQ, Award.TAG, cheaper._payload())), bid, now=121)
    assert raised.value.code == "market_message_invalid"


def test_decline_codes() -> None:
    req = request()
    d = Decline.issue(PROV, req, [DeclineReason("busy", "no free memory"), DeclineReason("draining", "")], iat=1)
    assert Decline.open(d.raw).codes == ["busy", "draining"]
    bad = Decline(PROV.did, req.cid, "r-1", (DeclineReason("bored", "x"),), 1)
    with pytest.raises(AgoraError) as raised:
        Decline.open(seal_envelope(PROV, Decline.TAG, bad._payload()))
    assert raised.value.code == "market_message_invalid" and raised.value.details["field"] == "reasons"


def test_only_the_named_signer_can_issue() -> None:
    with pytest.raises(AgoraError) as raised:
        CapacityAd.issue(
            REQ,
            seq=1,
            iat=1,
            ttl_s=1,
            offer=offer(),
            free=Capability(),
            executors={},
            benchmark_score=None,
            version="x",
        )
    assert raised.value.code == "ad_invalid"  # the offer is PROV's, REQ cannot advertise it
    with pytest.raises(AgoraError) as raised:
        BidRequest.open(request().raw, expected_signer=PROV.did)
    assert raised.value.code == "market_message_invalid"
    bid = Bid.issue(PROV, request(), price=1, valid_until=150, iat=110)
    with pytest.raises(AgoraError):
        Award.issue(Keypair.generate(), bid, commit_by=140, iat=120)
    award = Award.issue(REQ, bid, commit_by=140, iat=120)
    with pytest.raises(AgoraError):
        Release.issue(Keypair.generate(), award, reason="x", iat=1)
