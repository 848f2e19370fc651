"""ContentRef parsing and validation, inline decoding, verified writes (no servers)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from agora.errors import AgoraError
from agora.storage import ContentRef, decode_inline, encode_inline
from agora.storage.integrity import VerifiedFileWriter, sha256_file, verify_bytes
from agora.storage.interfaces import check_sha256_hex

H = hashlib.sha256(b"x").hexdigest()


def test_ref_round_trips_through_dict() -> None:
    ref = ContentRef(H, 1, f"cas://sha256/{H}")
    assert ContentRef.from_dict(ref.to_dict()) == ref
    assert ref.scheme == "cas"


@pytest.mark.parametrize(
    "uri",
    [f"cas://sha256/{H}", f"hub://agora-results/{H}", f"s3://bucket/prefix/sha256/{H}", f"s3://b/{H.upper()}"],
)
def test_parse_content_addressed_uris(uri: str) -> None:
    ref = ContentRef.parse(uri)
    assert ref.sha256 == H
    assert ref.size is None
    assert ref.uri == uri


@pytest.mark.parametrize(
    "uri", ["", "cas:/sha256/" + H, f"http://x/{H}", "cas://sha256/abc", "s3://bucket/key.csv", f"cas://{H}"]
)
def test_parse_rejects_non_content_addressed(uri: str) -> None:
    with pytest.raises(AgoraError) as info:
        ContentRef.parse(uri)
    assert info.value.code == "invalid_argument"


@pytest.mark.parametrize(
    ("sha", "size", "uri"),
    [("ABC", 1, "cas://x"), (H.upper(), 1, "cas://x"), (H, -1, "cas://x"), (H, True, "cas://x"), (H, 1, "nouri")],
)
def test_ref_fields_are_validated(sha: str, size: int, uri: str) -> None:
    with pytest.raises(AgoraError) as info:
        ContentRef(sha, size, uri)
    assert info.value.code == "invalid_argument"


def test_from_dict_names_the_missing_field() -> None:
    with pytest.raises(AgoraError) as info:
        ContentRef.from_dict({"sha256": H})
    assert "uri" in info.value.message


def test_check_sha256_hex_normalises_case() -> None:
    assert check_sha256_hex(H.upper()) == H
    with pytest.raises(AgoraError):
        check_sha256_hex("g" * 64)


# -- inline --------------------------------------------------------------------------------------


def test_inline_text_and_base64() -> None:
    assert decode_inline("héllo") == "héllo".encode()
    assert decode_inline(base64.b64encode(b"\x00\xff").decode(), "base64") == b"\x00\xff"
    assert encode_inline(b"plain") == ("plain", "text")
    assert encode_inline(b"\xff\xfe") == (base64.b64encode(b"\xff\xfe").decode(), "base64")


@pytest.mark.parametrize("bad", ["not base64!", "YWJ", "YW Jj"])
def test_inline_base64_is_strict(bad: str) -> None:
    with pytest.raises(AgoraError) as info:
        decode_inline(bad, "base64")
    assert info.value.code == "invalid_argument"


def test_inline_cap_and_encoding() -> None:
    assert decode_inline("x" * 10, max_bytes=10) == b"x" * 10
    for content, enc in [("x" * 11, "text"), (base64.b64encode(b"y" * 11).decode(), "base64")]:
        with pytest.raises(AgoraError) as info:
            decode_inline(content, enc, max_bytes=10)  # type: ignore[arg-type]
        assert info.value.code == "input_too_large"
    with pytest.raises(AgoraError) as info:
        decode_inline("x", "hex")  # type: ignore[arg-type]
    assert info.value.code == "invalid_argument"


# -- integrity -----------------------------------------------------------------------------------


def test_verified_writer_commits_only_matching_content(tmp_path: Path) -> None:
    good = tmp_path / "good"
    with VerifiedFileWriter(good, expected_sha256=H, expected_size=1) as w:
        w.write(b"x")
        assert not good.exists(), "nothing at the destination before commit"
        assert w.commit() == (H, 1)
    assert good.read_bytes() == b"x"

    bad = tmp_path / "bad"
    with pytest.raises(AgoraError) as info, VerifiedFileWriter(bad, expected_sha256=H) as w:
        w.write(b"y")
        w.commit()
    assert info.value.code == "storage_integrity"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good"]


def test_verified_writer_caps_and_size(tmp_path: Path) -> None:
    with pytest.raises(AgoraError) as info, VerifiedFileWriter(tmp_path / "a", max_bytes=3) as w:
        w.write(b"12")
        w.write(b"34")
    assert info.value.code == "input_too_large"
    with pytest.raises(AgoraError) as info, VerifiedFileWriter(tmp_path / "b", expected_size=3) as w:
        w.write(b"12")
        w.commit()
    assert info.value.code == "storage_integrity"
    with pytest.raises(AgoraError) as info, VerifiedFileWriter(tmp_path / "c", expected_size=1) as w:
        w.write(b"12")
    assert info.value.code == "storage_integrity"
    assert list(tmp_path.iterdir()) == []


def test_an_exception_in_the_block_removes_the_temp_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), VerifiedFileWriter(tmp_path / "f") as w:
        w.write(b"partial")
        raise RuntimeError("network died")
    assert list(tmp_path.iterdir()) == []


def test_verify_bytes_and_sha256_file(tmp_path: Path) -> None:
    verify_bytes(b"x", H, 1, "obj")
    verify_bytes(b"x", H, None, "obj")
    with pytest.raises(AgoraError):
        verify_bytes(b"x", H, 2, "obj")
    with pytest.raises(AgoraError):
        verify_bytes(b"y", H, None, "obj")
    (tmp_path / "f").write_bytes(b"x")
    assert sha256_file(tmp_path / "f") == (H, 1)


def test_writer_into_a_missing_directory_is_invalid_argument(tmp_path: Path) -> None:
    with pytest.raises(AgoraError) as info:
        VerifiedFileWriter(tmp_path / "absent" / "f")
    assert info.value.code == "invalid_argument"
