"""The generic signed envelope: exact signed span, header and shape checks, domain separation."""

from __future__ import annotations

import pytest

from agora.codec import decode, decode_array_spans, encode
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.ucan import VARSIG_ED25519_DAG_CBOR, Delegation, Invocation, open_envelope, seal_envelope

ALICE = Keypair.from_seed(b"\x01" * 32)
BOB = Keypair.from_seed(b"\x02" * 32)


def test_seal_open_round_trip_and_signed_span() -> None:
    raw = seal_envelope(ALICE, "agora/test@1", {"n": 1, "s": "x"})
    env = open_envelope(raw)
    assert env.type_tag == "agora/test@1"
    assert env.payload == {"n": 1, "s": "x"}
    assert env.header == VARSIG_ED25519_DAG_CBOR == bytes.fromhex("3401ed01ed011371")
    start, end = decode_array_spans(raw)[1]
    assert env.signed_bytes == raw[start:end]
    assert raw == encode([env.signature, decode(env.signed_bytes)])  # the canonical encoding, byte for byte
    assert env.verify(ALICE.did)
    assert not env.verify(BOB.did)
    assert not env.verify("not a did")


def test_signature_covers_the_type_tag() -> None:
    """Domain separation: the same payload under another tag needs another signature."""
    payload = {"iss": ALICE.did}
    a = open_envelope(seal_envelope(ALICE, "agora/a@1", payload))
    b = open_envelope(seal_envelope(ALICE, "agora/b@1", payload))
    assert a.signature != b.signature
    forged = encode([a.signature, {"h": VARSIG_ED25519_DAG_CBOR, "agora/b@1": payload}])
    assert not open_envelope(forged).verify(ALICE.did)


def test_delegation_bytes_are_not_an_invocation(chain) -> None:
    with pytest.raises(AgoraError) as err:
        Invocation.decode(chain.root.raw)
    assert err.value.code == "ucan_malformed"
    inv_raw = seal_envelope(ALICE, "ucan/inv@1.0.0", {"iss": ALICE.did})
    with pytest.raises(AgoraError) as err:
        Delegation.decode(inv_raw)
    assert err.value.code == "ucan_malformed"


@pytest.mark.parametrize(
    "value",
    [
        [b"s" * 64],
        [b"s" * 64, {"h": VARSIG_ED25519_DAG_CBOR, "t": {}}, 1],
        ["sig", {"h": VARSIG_ED25519_DAG_CBOR, "t": {}}],
        [b"s" * 64, [1, 2]],
        [b"s" * 64, {"h": VARSIG_ED25519_DAG_CBOR}],
        [b"s" * 64, {"h": VARSIG_ED25519_DAG_CBOR, "a": {}, "b": {}}],
        [b"s" * 64, {"h": bytes.fromhex("3401ed01ed0113"), "t": {}}],  # 7-byte header (no payload codec)
        [b"s" * 64, {"h": bytes.fromhex("3401ed01ed011370"), "t": {}}],  # dag-pb payload codec
        [b"s" * 64, {"h": "3401ed01ed011371", "t": {}}],
        [b"s" * 64, {"h": VARSIG_ED25519_DAG_CBOR, "t": [1]}],
        {"sig": b"s" * 64},
        b"just bytes",
    ],
)
def test_wrong_shapes_are_malformed(value: object) -> None:
    with pytest.raises(AgoraError) as err:
        open_envelope(encode(value))
    assert err.value.code == "ucan_malformed"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "cbor_malformed"),
        (b"\x82", "cbor_malformed"),
        (b"\xff\x00", "cbor_non_canonical"),
        (b"\x82\x58\x40" + b"s" * 10, "cbor_malformed"),
        (b"\x98\x02\x40\xa0", "cbor_non_canonical"),  # array length not in shortest form
    ],
)
def test_bad_cbor_keeps_the_codec_code(data: bytes, code: str) -> None:
    with pytest.raises(AgoraError) as err:
        open_envelope(data)
    assert err.value.code == code


def test_non_canonical_signed_element_is_rejected_not_reencoded() -> None:
    raw = seal_envelope(ALICE, "agora/t@1", {"b": 1, "aa": 2})
    env = open_envelope(raw)
    # same map, keys in non-canonical order: must be refused rather than silently re-sorted
    body = b"\xa2ah" + encode(VARSIG_ED25519_DAG_CBOR) + b"iagora/t@1" + b"\xa2baa\x02ab\x01"
    assert decode(env.signed_bytes) == {"h": VARSIG_ED25519_DAG_CBOR, "agora/t@1": {"b": 1, "aa": 2}}
    with pytest.raises(AgoraError) as err:
        open_envelope(b"\x82\x58\x40" + env.signature + body)
    assert err.value.code == "cbor_non_canonical"


def test_seal_refuses_bad_arguments() -> None:
    for tag in ("", "h", 3):
        with pytest.raises(AgoraError) as err:
            seal_envelope(ALICE, tag, {})  # type: ignore[arg-type]
        assert err.value.code == "invalid_argument"
    with pytest.raises(AgoraError) as err:
        seal_envelope(ALICE, "t", {"x": object()})
    assert err.value.code == "invalid_argument"
    with pytest.raises(AgoraError):
        seal_envelope(ALICE, "t", [1])  # type: ignore[arg-type]


def test_open_accepts_bytearray_and_memoryview() -> None:
    raw = seal_envelope(ALICE, "t", {"a": 1})
    assert open_envelope(bytearray(raw)).verify(ALICE.did)
    assert open_envelope(memoryview(raw)).payload == {"a": 1}
    with pytest.raises(AgoraError) as err:
        open_envelope("text")  # type: ignore[arg-type]
    assert err.value.code == "ucan_malformed"
