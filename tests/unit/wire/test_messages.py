from __future__ import annotations

import pytest

from agora.codec import CID, encode
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.ucan import invoke, seal_envelope
from agora.wire import RECEIPT_TAG, Receipt, Request


def test_receipt_roundtrip_ok_and_error() -> None:
    kp = Keypair.generate()
    ran = CID.of(b"inv")
    ok = Receipt.decode(Receipt.issue(kp, ran, ok={"x": 1}, iat=5).raw, expected_issuer=kp.did)
    assert ok.result() == {"x": 1} and ok.ran == ran
    err = Receipt.decode(Receipt.issue(kp, ran, error=AgoraError("timeout", "slow"), iat=5).raw)
    assert err.error is not None and err.error.code == "timeout" and err.error.retryable
    with pytest.raises(AgoraError) as raised:
        err.result()
    assert raised.value.code == "timeout"


def test_receipt_tampering_and_wrong_issuer() -> None:
    kp = Keypair.generate()
    raw = bytearray(Receipt.issue(kp, CID.of(b"x"), ok=1, iat=1).raw)
    raw[-1] ^= 1
    with pytest.raises(AgoraError) as err:
        Receipt.decode(bytes(raw))
    assert err.value.code == "receipt_invalid"
    good = Receipt.issue(kp, CID.of(b"x"), ok=1, iat=1).raw
    with pytest.raises(AgoraError) as err:
        Receipt.decode(good, expected_issuer=Keypair.generate().did)
    assert err.value.code == "receipt_invalid"


def test_domain_separation_an_invocation_is_not_a_receipt() -> None:
    kp = Keypair.generate()
    inv = invoke(kp, sub=kp.did, cmd="/agora/x", args={}, exp=None)
    with pytest.raises(AgoraError) as err:
        Receipt.decode(inv.raw)
    assert err.value.code == "receipt_invalid"
    # the same payload sealed under another type tag is refused, too
    fake = seal_envelope(kp, "agora/other@1", {"iss": kp.did, "ran": CID.of(b"x"), "out": {"ok": 1}, "iat": 1})
    with pytest.raises(AgoraError):
        Receipt.decode(fake)
    assert RECEIPT_TAG == "agora/rcpt@1.0.0"


@pytest.mark.parametrize(
    "body",
    [
        {"t": "agora/req@1", "inv": "not bytes", "dlg": []},
        {"t": "agora/req@2", "inv": b"", "dlg": []},
        {"t": "agora/req@1", "inv": b"", "dlg": [], "extra": 1},
        [1, 2, 3],
    ],
)
def test_request_shape_errors(body: object) -> None:
    with pytest.raises(AgoraError) as err:
        Request.decode(encode(body))
    assert err.value.code == "message_malformed"


def test_request_size_limit() -> None:
    with pytest.raises(AgoraError) as err:
        Request.decode(b"\x00" * 2000, max_bytes=1000)
    assert err.value.code == "message_too_large"
