import pytest
from hypothesis import given
from hypothesis import strategies as st

from agora.codec import CID, b58decode, b58encode, varint_decode, varint_encode
from agora.errors import AgoraError


@given(st.binary(max_size=64))
def test_base58_roundtrip(data: bytes) -> None:
    assert b58decode(b58encode(data)) == data


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_varint_roundtrip(n: int) -> None:
    raw = varint_encode(n)
    assert varint_decode(raw) == (n, len(raw))


def test_varint_rejects_non_minimal() -> None:
    with pytest.raises(ValueError):
        varint_decode(b"\x80\x00")


def test_cid_of_known_block() -> None:
    # the empty DAG-CBOR map {} (0xa0) has this well-known CIDv1
    assert str(CID.of(b"\xa0")) == "bafyreigbtj4x7ip5legnfznufuopl4sg4knzc2cof6duas4b3q2fy6swua"


@pytest.mark.parametrize("text", ["", "zabc", "b!!!", "bafy"])
def test_cid_parse_errors(text: str) -> None:
    with pytest.raises(AgoraError) as err:
        CID.parse(text)
    assert err.value.code == "cid_invalid"
