"""Unsigned varints, multibase (base58btc, base32, base64) and CIDv1, as the multiformats specs define them.

Small and dependency-free on purpose: these few functions are on every message's hot path and the
PyPI `multiformats` package pulls in a large registry we do not need.
"""

from __future__ import annotations

import base64
import hashlib

from agora.errors import AgoraError

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}

DAG_CBOR = 0x71
RAW = 0x55
SHA2_256 = 0x12


def varint_encode(n: int) -> bytes:
    if n < 0:
        raise ValueError("varints are unsigned")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint_decode(data: bytes, offset: int = 0) -> tuple[int, int]:
    """Return (value, next offset); rejects non-minimal and over-long (> 9 bytes) varints."""
    value = 0
    shift = 0
    i = offset
    while True:
        if i >= len(data) or i - offset >= 9:
            raise ValueError("truncated or over-long varint")
        b = data[i]
        value |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            if b == 0 and i - offset > 1:
                raise ValueError("non-minimal varint")
            return value, i
        shift += 7


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    n = 0
    for c in text:
        try:
            n = n * 58 + _B58_INDEX[c]
        except KeyError:
            raise ValueError(f"invalid base58 character {c!r}") from None
    pad = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * pad + body


def b32encode(data: bytes) -> str:
    return base64.b32encode(data).decode().lower().rstrip("=")


def b32decode(text: str) -> bytes:
    pad = "=" * (-len(text) % 8)
    return base64.b32decode(text.upper() + pad)


def b64decode_any(text: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not (fixtures use all of these)."""
    t = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(t + "=" * (-len(t) % 4), validate=True)


_V1_PREFIXES = (b"\x01\x71", b"\x01\x55")  # CIDv1 + dag-cbor / raw: one-byte varints


class CID:
    """A CIDv1 (or v0 on parse). Compared and hashed by its bytes."""

    __slots__ = ("_bytes", "codec", "digest", "hash_code")

    def __init__(self, raw: bytes) -> None:
        if len(raw) == 36 and raw[2:4] == b"\x12\x20" and raw[:2] in _V1_PREFIXES:  # fast path: v1, sha2-256
            self.codec, self.hash_code, self.digest = raw[1], 0x12, raw[4:]
            self._bytes = bytes(raw)
            return
        try:
            if len(raw) == 34 and raw[0] == 0x12 and raw[1] == 0x20:  # CIDv0: a bare sha2-256 multihash
                self.codec, self.hash_code, self.digest = 0x70, 0x12, raw[2:]
            else:
                version, i = varint_decode(raw, 0)
                if version != 1:
                    raise ValueError(f"unsupported CID version {version}")
                self.codec, i = varint_decode(raw, i)
                self.hash_code, i = varint_decode(raw, i)
                size, i = varint_decode(raw, i)
                self.digest = raw[i:]
                if len(self.digest) != size:
                    raise ValueError("multihash length mismatch")
        except ValueError as exc:
            raise AgoraError("cid_invalid", str(exc)) from exc
        self._bytes = bytes(raw)

    @classmethod
    def of(cls, data: bytes, codec: int = DAG_CBOR) -> CID:
        digest = hashlib.sha256(data).digest()
        return cls(b"\x01" + varint_encode(codec) + b"\x12\x20" + digest)

    @classmethod
    def parse(cls, text: str) -> CID:
        if not text or text[0] != "b":
            raise AgoraError("cid_invalid", "expected a base32 (b...) CIDv1 string")
        try:
            return cls(b32decode(text[1:]))
        except (ValueError, TypeError) as exc:
            raise AgoraError("cid_invalid", f"not base32: {exc}") from exc

    def __bytes__(self) -> bytes:
        return self._bytes

    def __str__(self) -> str:
        return "b" + b32encode(self._bytes)

    def __repr__(self) -> str:
        return f"CID({self})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CID) and other._bytes == self._bytes

    def __hash__(self) -> int:
        return hash(self._bytes)


__all__ = [
    "CID",
    "DAG_CBOR",
    "RAW",
    "SHA2_256",
    "b32decode",
    "b32encode",
    "b58decode",
    "b58encode",
    "b64decode_any",
    "varint_decode",
    "varint_encode",
]
