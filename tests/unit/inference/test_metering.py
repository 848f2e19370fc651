"""Metering records: each way a record can be wrong is refused (`metering_invalid`) and counted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.inference.metering import Expected, MeteringAudit
from agora.ucan import open_envelope, seal_envelope
from agora.wire.inference import METER_TAG, MeteringRecord, Quote, content_hash
from agora.wire.model_offer import ModelOffer

PROV, REQ, OTHER = Keypair.generate(), Keypair.generate(), Keypair.generate()
OFFER = ModelOffer("m", "chat", 100, price_in=10, price_out=20)
PH, OH = content_hash("prompt"), content_hash("output")


def quote(nonce: str = "n") -> Quote:
    return Quote.issue(PROV, requester=REQ.did, offer=OFFER, est_in=10, est_out=10, iat=0, ttl_s=60, nonce=nonce)


def record(q: Quote, **kw: Any) -> bytes:
    args = {"tokens_in": 7, "tokens_out": 5, "ttft_ms": 1, "duration_ms": 2, "prompt_hash": PH, "output_hash": OH}
    return MeteringRecord.issue(PROV, quote=q, **(args | kw)).raw


def tampered(raw: bytes, key: str, value: Any, signer: Keypair = PROV) -> bytes:
    payload = open_envelope(raw).payload
    payload[key] = value
    return seal_envelope(signer, METER_TAG, payload)


EXPECTED = Expected(PH, OH, tokens_in=7, tokens_out=5, max_tokens=8, context=100)


def test_a_good_record_verifies_and_is_counted() -> None:
    audit = MeteringAudit()
    q = quote()
    rec = audit.check(record(q), quote=q, expected=EXPECTED)
    assert rec.price == OFFER.price(7, 5) and audit.accepted[PROV.did] == 1 and not audit.refused


CASES: dict[str, Callable[[Quote], bytes]] = {
    "wrong token counts": lambda q: record(q, tokens_out=6),
    "over max_tokens": lambda q: record(q, tokens_out=9),
    "wrong prompt hash": lambda q: record(q, prompt_hash=content_hash("other")),
    "wrong output hash": lambda q: record(q, output_hash=content_hash("other")),
    "wrong signature": lambda q: tampered(record(q), "tout", 5, signer=OTHER),
    "tampered price": lambda q: tampered(record(q), "price", 1),
    "another quote": lambda q: record(quote("other-nonce")),
    "garbage": lambda q: b"\x00garbage",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_records_are_refused_and_counted(case: str) -> None:
    audit = MeteringAudit()
    q = quote()
    expected = EXPECTED if case != "over max_tokens" else Expected(PH, OH, max_tokens=8)
    with pytest.raises(AgoraError) as ei:
        audit.check(CASES[case](q), quote=q, expected=expected)
    assert ei.value.code == "metering_invalid"
    assert audit.refused[PROV.did] == 1 and not audit.accepted
