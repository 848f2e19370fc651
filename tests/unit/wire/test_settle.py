"""The metering receipt signed by both parties: each check of `open_metering` on its own."""

from __future__ import annotations

from typing import Any

import pytest

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.ucan import seal_envelope
from agora.wire import MESSAGE_TYPES, METERING_TAG
from agora.wire.settle import (
    INFERENCE_SETTLE_TAG,
    InferenceSettlement,
    countersign,
    countersign_record,
    inference_contract,
    open_metering,
    open_release,
)
from tests.unit.ledger.receipts import inference_record, usage

PROVIDER, REQUESTER, OTHER = Keypair.generate(), Keypair.generate(), Keypair.generate()


def _refused(raw: bytes, fragment: str, **expect: Any) -> None:
    with pytest.raises(AgoraError) as raised:
        open_metering(raw, **expect)
    assert raised.value.code == "receipt_invalid"
    assert fragment in raised.value.message, raised.value.message


def test_a_countersigned_receipt_opens_with_both_signatures_and_names_its_parts() -> None:
    u = usage(PROVIDER, REQUESTER.did)
    raw = countersign(REQUESTER, u, contract="c1", units=3, total=4, amount=75, iat=9)
    m = open_metering(raw, contract="c1", payer=REQUESTER.did, payee=PROVIDER.did)
    assert (m.contract, m.units, m.total, m.amount, m.iat) == ("c1", 3, 4, 75, 9)
    assert (m.provider, m.requester, m.usage_cid, m.usage.raw) == (PROVIDER.did, REQUESTER.did, u.cid, u.raw)
    assert not m.complete and m.raw == raw and m.to_dict()["cid"] == str(m.cid)
    assert METERING_TAG in MESSAGE_TYPES


def test_the_parties_and_the_contract_must_match() -> None:
    raw = countersign(REQUESTER, usage(PROVIDER, REQUESTER.did), contract="c1", units=1, total=1, amount=5, iat=1)
    _refused(raw, "not 'c2'", contract="c2")
    _refused(raw, "contract's payer", payer=OTHER.did)
    _refused(raw, "contract's payee", payee=OTHER.did)


def test_a_countersignature_by_someone_else_than_the_usage_receipts_requester_is_refused() -> None:
    u = usage(PROVIDER, REQUESTER.did)
    payload = {
        "usage": u.raw,
        "ucid": u.cid,
        "contract": "c1",
        "units": 1,
        "total": 1,
        "amount": 5,
        "req": OTHER.did,
        "iat": 1,
    }
    _refused(seal_envelope(OTHER, METERING_TAG, payload), "usage receipt is for requester")
    # a requester claiming another's DID: its signature does not verify under that DID
    _refused(seal_envelope(OTHER, METERING_TAG, {**payload, "req": REQUESTER.did}), "countersignature does not verify")


def test_a_forged_usage_receipt_inside_or_a_wrong_usage_cid_is_refused() -> None:
    u = usage(PROVIDER, REQUESTER.did)
    forged = bytearray(u.raw)
    forged[-3] ^= 1
    base = {"ucid": u.cid, "contract": "c1", "units": 1, "total": 1, "amount": 5, "req": REQUESTER.did, "iat": 1}
    _refused(seal_envelope(REQUESTER, METERING_TAG, {**base, "usage": bytes(forged)}), "usage receipt is invalid")
    other = usage(PROVIDER, REQUESTER.did, alloc="alloc-2")
    _refused(seal_envelope(REQUESTER, METERING_TAG, {**base, "usage": other.raw}), "does not name the enclosed")


def test_bad_shapes_and_terms_are_refused_and_never_signed() -> None:
    u = usage(PROVIDER, REQUESTER.did)
    _refused(b"\x00garbage", "undecodable")
    _refused(u.raw, "type tag")  # a bare usage receipt is not a metering receipt
    base = {"usage": u.raw, "ucid": u.cid, "contract": "c1", "units": 1, "total": 1, "amount": 5, "req": REQUESTER.did}
    _refused(seal_envelope(REQUESTER, METERING_TAG, base), "fields must be exactly")
    for bad, fragment in (
        ({"units": 3, "total": 2}, "within 0..total"),
        ({"amount": -1}, "amount"),
        ({"contract": ""}, "contract id"),
        ({"units": True}, "wrong type"),
    ):
        _refused(seal_envelope(REQUESTER, METERING_TAG, {**base, "iat": 1, **bad}), fragment)
    for kwargs in ({"units": 2, "total": 1}, {"amount": -5}, {"contract": ""}):
        args: dict[str, Any] = {"contract": "c1", "units": 1, "total": 1, "amount": 5, **kwargs}
        with pytest.raises(AgoraError) as raised:
            countersign(REQUESTER, u, iat=1, **args)
        assert raised.value.code == "invalid_argument"
    with pytest.raises(AgoraError) as raised:
        countersign(OTHER, u, contract="c1", units=1, total=1, amount=1, iat=1)
    assert raised.value.code == "invalid_argument"


def test_an_inference_record_countersigned_opens_as_release_evidence_and_a_job_receipt_still_does() -> None:
    rec = inference_record(PROVIDER, REQUESTER.did)
    raw = countersign_record(REQUESTER, rec, iat=3)
    ev = open_release(raw, contract=inference_contract(rec.quote), payer=REQUESTER.did, payee=PROVIDER.did)
    assert isinstance(ev, InferenceSettlement) and INFERENCE_SETTLE_TAG in MESSAGE_TYPES
    assert (ev.amount, ev.provider, ev.requester, ev.evidence_cid) == (rec.price, PROVIDER.did, REQUESTER.did, rec.cid)
    job = countersign(REQUESTER, usage(PROVIDER, REQUESTER.did), contract="c1", units=1, total=1, amount=5, iat=9)
    assert open_release(job, contract="c1").amount == 5
    for expect in ({"contract": "c1"}, {"payer": OTHER.did}, {"payee": OTHER.did}):
        with pytest.raises(AgoraError) as raised:
            open_release(raw, **expect)  # type: ignore[arg-type]
        assert raised.value.code == "receipt_invalid"
    with pytest.raises(AgoraError) as raised:
        countersign_record(OTHER, rec, iat=3)  # only the record's requester countersigns it
    assert raised.value.code == "invalid_argument"
