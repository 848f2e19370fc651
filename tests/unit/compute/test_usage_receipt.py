"""The usage receipt: signed by the provider, verified over the bytes received, domain-separated."""

from __future__ import annotations

import pytest

from agora.codec import CID
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.ucan import open_envelope, seal_envelope
from agora.wire import RECEIPT_TAG, OutputDigest, UsageReceipt

KP = Keypair.generate()


def issue(**kw: object) -> UsageReceipt:
    fields: dict[str, object] = {
        "alloc_id": "alloc-1",
        "requester": Keypair.generate().did,
        "job": "j",
        "task": "t",
        "engine": "wasm",
        "exit_code": 0,
        "reason": "exited",
        "error_code": None,
        "started_at": 10.0,
        "ended_at": 11.5,
        "wall_s": 1.5,
        "cpu_s": 0.25,
        "peak_memory_bytes": 65536,
        "outputs": [OutputDigest("out", "out/a.txt", "a" * 64, 12)],
        "invocation": CID.of(b"start"),
        "iat": 12,
    }
    fields.update(kw)
    return UsageReceipt.issue(KP, **fields)  # type: ignore[arg-type]


def test_round_trip_through_bytes_and_json() -> None:
    r = issue()
    assert UsageReceipt.open(r.raw, expected_provider=KP.did) == r
    assert UsageReceipt.from_dict(r.to_dict()) == r
    assert r.to_dict()["outputs"] == [{"name": "out", "path": "out/a.txt", "sha256": "a" * 64, "size": 12}]
    assert r.ok and not issue(exit_code=None, reason="timeout", error_code="task_timeout").ok


def test_every_flipped_byte_is_refused() -> None:
    raw = issue().raw
    for i in range(len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 0x01
        with pytest.raises(AgoraError) as err:
            UsageReceipt.open(bytes(bad))
        assert err.value.code == "receipt_invalid"


def test_wrong_provider_wrong_tag_and_wrong_shapes_are_refused() -> None:
    r = issue()
    with pytest.raises(AgoraError) as err:
        UsageReceipt.open(r.raw, expected_provider=Keypair.generate().did)
    assert err.value.code == "receipt_invalid"
    # the same payload signed as an RPC receipt must not pass for a usage receipt
    payload = dict(open_envelope(r.raw).payload)
    with pytest.raises(AgoraError):
        UsageReceipt.open(seal_envelope(KP, RECEIPT_TAG, payload))
    for key, value in (("mem", -1), ("exit", True), ("wall", -1.0), ("outs", [{"path": "x"}]), ("inv", "text")):
        broken = {**payload, key: value}
        with pytest.raises(AgoraError) as err:
            UsageReceipt.open(seal_envelope(KP, "agora/usage@1.0.0", broken))
        assert err.value.code == "receipt_invalid", key
    with pytest.raises(AgoraError) as err:
        UsageReceipt.from_dict({"alloc_id": "alloc-1"})
    assert err.value.code == "receipt_invalid"


def test_the_published_uri_is_signed_with_the_output() -> None:
    out = OutputDigest("out", "out/a.txt", "a" * 64, 12, uri="hub://agora-results/" + "a" * 64)
    r = issue(outputs=[out])
    back = UsageReceipt.open(r.raw, expected_provider=KP.did)
    assert back.outputs[0].uri == out.uri and back.to_dict()["outputs"][0]["uri"] == out.uri
    with pytest.raises(AgoraError) as err:
        OutputDigest.from_dict({**out.to_dict(), "uri": ""})
    assert err.value.code == "receipt_invalid"
    with pytest.raises(AgoraError):
        OutputDigest.from_dict({**out.to_dict(), "extra": 1})
