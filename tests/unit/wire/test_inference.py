"""The inference messages: model offers in ads, signed quotes, signed metering records."""

from __future__ import annotations

import pytest

from agora.codec import CID
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.models.capability import Capability, GiB
from agora.ucan import open_envelope, seal_envelope
from agora.wire.inference import MeteringRecord, Quote, content_hash, price_of
from agora.wire.market import CapacityAd, ExecutorState
from agora.wire.model_offer import ModelOffer
from tests.unit.market.ads import offer

PROV = Keypair.generate()
REQ = Keypair.generate()
CHAT = ModelOffer("smollm2-135m", "chat", 2048, price_in=10, price_out=30, max_concurrency=2)


def ad(models: tuple[ModelOffer, ...] = ()) -> CapacityAd:
    return CapacityAd.issue(
        PROV,
        seq=1,
        iat=1000,
        ttl_s=120,
        offer=offer(PROV.did),
        free=Capability(cpu_millis=1000, memory_bytes=GiB),
        executors={"wasm": ExecutorState(True)},
        benchmark_score=None,
        version="0.1.0",
        models=models,
    )


def quote(**kw: object) -> Quote:
    args: dict[str, object] = {
        "requester": REQ.did,
        "offer": CHAT,
        "est_in": 100,
        "est_out": 50,
        "iat": 1000,
        "ttl_s": 60,
        "nonce": "n1",
    }
    return Quote.issue(PROV, **(args | kw))  # type: ignore[arg-type]


def test_price_rounds_up_per_direction() -> None:
    assert price_of(1, 1, 10, 30) == 2
    assert price_of(1000, 2000, 10, 30) == 70
    assert price_of(0, 0, 10, 30) == 0


@pytest.mark.parametrize(
    "bad",
    [
        {"model": "", "kind": "chat", "context": 10},
        {"model": "m", "kind": "image", "context": 10},
        {"model": "m", "kind": "chat", "context": 0},
        {"model": "m", "kind": "chat", "context": 10, "price_in": -1},
        {"model": "m", "kind": "chat", "context": 10, "max_concurrency": 0},
        {"model": "m", "kind": "chat", "context": 10, "extra": 1},
        ["m"],
    ],
)
def test_bad_model_offers_are_refused(bad: object) -> None:
    with pytest.raises(AgoraError) as ei:
        ModelOffer.from_dict(bad)
    assert ei.value.code == "model_offer_invalid"


def test_ad_carries_model_offers_and_an_ad_without_them_is_unchanged() -> None:
    with_models = CapacityAd.open(ad((CHAT,)).raw)
    assert with_models.models == (CHAT,)
    plain = ad()
    assert "models" not in open_envelope(plain.raw).payload  # old readers' bytes are what they were
    assert CapacityAd.open(plain.raw).models == ()


def test_ad_with_a_bad_model_offer_is_ad_invalid() -> None:
    payload = open_envelope(ad((CHAT,)).raw).payload
    payload["models"] = [CHAT.to_dict() | {"kind": "video"}]
    raw = seal_envelope(PROV, "agora/market/ad@1.0.0", payload)
    with pytest.raises(AgoraError) as ei:
        CapacityAd.open(raw)
    assert ei.value.code == "ad_invalid"


def test_quote_round_trip_and_validity() -> None:
    q = quote()
    back = Quote.open(q.raw, expected_signer=PROV.did)
    assert back == q and back.max_total == CHAT.price(100, 50) and back.valid_until == 1060
    back.check_valid(1060, requester=REQ.did, model=CHAT.model)
    with pytest.raises(AgoraError) as ei:
        back.check_valid(1061)
    assert ei.value.code == "quote_expired"
    with pytest.raises(AgoraError) as ei:
        back.check_valid(1000, requester=PROV.did)
    assert ei.value.code == "quote_invalid"


def test_forged_quote_is_refused() -> None:
    payload = open_envelope(quote().raw).payload
    payload["pout"] = 0
    payload["max"] = CHAT.price_in * 100 // 1000  # consistent, but signed by someone else
    forged = seal_envelope(REQ, "agora/inference/quote@1.0.0", payload)
    with pytest.raises(AgoraError) as ei:
        Quote.open(forged, expected_signer=PROV.did)
    assert ei.value.code == "quote_invalid"


def test_metering_record_round_trip_carries_hashes_only() -> None:
    q = quote()
    rec = MeteringRecord.issue(
        PROV,
        quote=q,
        tokens_in=90,
        tokens_out=40,
        ttft_ms=12,
        duration_ms=300,
        prompt_hash=content_hash("the prompt"),
        output_hash=content_hash("the output"),
    )
    back = MeteringRecord.open(rec.raw, expected_signer=PROV.did)
    assert back.quote == q.cid and isinstance(back.quote, CID)
    assert back.price == CHAT.price(90, 40)
    assert b"the prompt" not in rec.raw and b"the output" not in rec.raw
