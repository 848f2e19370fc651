import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agora.codec import CID, decode, decode_array_spans, encode
from agora.errors import AgoraError

# Canonical encodings from RFC 8949 appendix A that DAG-CBOR shares.
KNOWN = [
    (0, "00"),
    (23, "17"),
    (24, "1818"),
    (1000, "1903e8"),
    (1000000, "1a000f4240"),
    (18446744073709551615, "1bffffffffffffffff"),
    (-1, "20"),
    (-1000, "3903e7"),
    (-18446744073709551616, "3bffffffffffffffff"),
    (1.1, "fb3ff199999999999a"),
    (0.0, "fb0000000000000000"),
    (False, "f4"),
    (True, "f5"),
    (None, "f6"),
    (b"\x01\x02\x03\x04", "4401020304"),
    ("IETF", "6449455446"),
    ("ü", "62c3bc"),
    ([1, [2, 3]], "8201820203"),
    ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
    # keys sort by length first, then bytewise
    ({"bb": 1, "a": 2, "c": 3}, "a3616102616303626262" + "01"),
]


@pytest.mark.parametrize(("value", "hexstr"), KNOWN)
def test_known_encodings(value: object, hexstr: str) -> None:
    assert encode(value).hex() == hexstr
    decoded = decode(bytes.fromhex(hexstr))
    assert decoded == value
    assert type(decoded) is type(value)


def test_bool_is_not_int() -> None:
    assert encode(True) != encode(1)
    assert decode(encode(True)) is True
    assert type(decode(encode(1))) is int


def test_cid_tag_roundtrip() -> None:
    cid = CID.of(b"hello")
    assert decode(encode({"link": cid})) == {"link": cid}
    assert str(CID.parse(str(cid))) == str(cid)
    assert str(cid).startswith("bafyrei")


@pytest.mark.parametrize(
    ("hexstr", "code"),
    [
        ("1817", "cbor_non_canonical"),  # 23 in two bytes
        ("190017", "cbor_non_canonical"),
        ("780161", "cbor_non_canonical"),  # 1-char text with a length byte
        ("5801ff", "cbor_non_canonical"),  # 1-byte bytes with a length byte
        ("7818" + "61" * 23, "cbor_malformed"),  # text of 24 announced, 23 given
        ("f93c00", "cbor_non_canonical"),  # half float
        ("fa3f800000", "cbor_non_canonical"),  # single float
        ("5f4101ff", "cbor_non_canonical"),  # indefinite bytes
        ("a2616201616102", "cbor_non_canonical"),  # keys out of order
        ("a2616101616102", "cbor_malformed"),  # duplicate key
        ("a10101", "cbor_malformed"),  # integer key
        ("fb7ff8000000000000", "cbor_malformed"),  # NaN
        ("fb7ff0000000000000", "cbor_malformed"),  # infinity
        ("f7", "cbor_malformed"),  # undefined
        ("c11a514b67b0", "cbor_malformed"),  # tag 1
        ("62c3", "cbor_malformed"),  # truncated text
        ("62ff00", "cbor_malformed"),  # invalid utf-8
        ("0000", "cbor_malformed"),  # trailing bytes
        ("", "cbor_malformed"),
        ("9bffffffffffffffff", "cbor_malformed"),  # absurd length
        ("d82a4401020304", "cbor_malformed"),  # CID without 0x00 prefix
    ],
)
def test_rejects_non_canonical_and_malformed(hexstr: str, code: str) -> None:
    with pytest.raises(AgoraError) as err:
        decode(bytes.fromhex(hexstr))
    assert err.value.code == code


def test_deep_nesting_is_rejected_not_crashing() -> None:
    with pytest.raises(AgoraError) as err:
        decode(b"\x81" * 10_000 + b"\x00")
    assert err.value.code == "cbor_malformed"


@pytest.mark.parametrize("bad", [float("nan"), math.inf, {1: 2}, {"a": object()}, 2**64])
def test_encode_rejects_what_dag_cbor_cannot_hold(bad: object) -> None:
    with pytest.raises(ValueError):
        encode(bad)


def test_array_spans_point_at_raw_elements() -> None:
    raw = encode([b"sig", {"h": b"x", "p": 1}])
    spans = decode_array_spans(raw)
    assert [decode(raw[a:b]) for a, b in spans] == [b"sig", {"h": b"x", "p": 1}]


ipld = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.binary(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


@given(ipld)
def test_roundtrip_is_identity_and_canonical(value: object) -> None:
    raw = encode(value)
    back = decode(raw)
    assert encode(back) == raw


@given(st.binary(max_size=200))
def test_random_bytes_only_raise_agora_errors(data: bytes) -> None:
    try:
        value = decode(data)
    except AgoraError as exc:
        assert exc.code in {"cbor_malformed", "cbor_non_canonical"}
    else:
        assert encode(value) == data  # anything accepted is canonical
