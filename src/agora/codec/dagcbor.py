"""A strict DAG-CBOR codec (https://ipld.io/specs/codecs/dag-cbor/spec/).

Strict in both directions, because signatures are checked over bytes and two encodings of one value
would let an attacker present the same signed content twice or smuggle fields past a check:
- integers use their shortest form; floats are always 64-bit and never NaN or infinite;
- maps have text keys only, unique, sorted by encoded length then bytewise;
- the only tag is 42 (a CID, bytes with a leading 0x00); no indefinite lengths, no `undefined`;
- text is valid UTF-8; the input is consumed exactly.
`decode` raises `AgoraError("cbor_malformed" | "cbor_non_canonical")` and nothing else.

Python mapping: None, bool, int, float, str, bytes, list (tuples encode as lists), dict, CID.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from agora.codec.multiformats import CID
from agora.errors import AgoraError

MAX_DEPTH = 64
_F64 = struct.Struct(">d")


def _head(major: int, n: int, out: bytearray) -> None:
    m = major << 5
    if n < 24:
        out.append(m | n)
    elif n < 0x100:
        out.append(m | 24)
        out.append(n)
    elif n < 0x10000:
        out.append(m | 25)
        out += n.to_bytes(2, "big")
    elif n < 0x100000000:
        out.append(m | 26)
        out += n.to_bytes(4, "big")
    elif n < 0x10000000000000000:
        out.append(m | 27)
        out += n.to_bytes(8, "big")
    else:
        raise ValueError("integer out of the 64-bit range of DAG-CBOR")


_KEYS: dict[str, bytes] = {}
"""Encoded map keys (head + UTF-8), cached: the same few keys appear in every message."""


def _encode_key(k: object) -> bytes:
    if type(k) is not str:
        raise ValueError(f"DAG-CBOR map keys must be strings, got {type(k).__name__}")
    raw = k.encode("utf-8")
    head = bytearray()
    _head(3, len(raw), head)
    kb = bytes(head) + raw
    if len(raw) <= 32 and len(_KEYS) < 4096:
        _KEYS[k] = kb
    return kb


def _key_sort(item: tuple[bytes, Any]) -> tuple[int, bytes]:
    return (len(item[0]), item[0])


def _enc(value: Any, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    t = type(value)
    if t is str:
        b = value.encode("utf-8")
        _head(3, len(b), out)
        out += b
    elif t is int:
        if value >= 0:
            _head(0, value, out)
        else:
            _head(1, -1 - value, out)
    elif t is dict:
        items = []
        for k, v in value.items():
            kb = _KEYS.get(k) if type(k) is str else None
            if kb is None:
                kb = _encode_key(k)
            items.append((kb, v))
        items.sort(key=_key_sort)  # encoded keys sort length-first then bytewise, as DAG-CBOR requires
        _head(5, len(items), out)
        for kb, v in items:
            out += kb
            _enc(v, out, depth + 1)
    elif t is bytes or t is bytearray or t is memoryview:
        b = bytes(value)
        _head(2, len(b), out)
        out += b
    elif t is list or t is tuple:
        _head(4, len(value), out)
        for v in value:
            _enc(v, out, depth + 1)
    elif value is None:
        out.append(0xF6)
    elif value is True:
        out.append(0xF5)
    elif value is False:
        out.append(0xF4)
    elif t is float:
        if math.isnan(value) or math.isinf(value):
            raise ValueError("DAG-CBOR forbids NaN and infinities")
        out.append(0xFB)
        out += _F64.pack(value)
    elif t is CID:
        raw = b"\x00" + bytes(value)
        out += b"\xd8\x2a"
        _head(2, len(raw), out)
        out += raw
    elif isinstance(value, bool):  # subclasses are not expected; keep bool before int
        out.append(0xF5 if value else 0xF4)
    elif isinstance(value, int):
        _enc(int(value), out, depth)
    elif isinstance(value, str):
        _enc(str(value), out, depth)
    elif isinstance(value, dict):
        _enc(dict(value), out, depth)
    else:
        raise ValueError(f"cannot encode {t.__name__} as DAG-CBOR")


def encode(value: Any) -> bytes:
    """Encode a value canonically; raises ValueError for values DAG-CBOR cannot hold."""
    out = bytearray()
    _enc(value, out, 0)
    return bytes(out)


class _Decoder:
    __slots__ = ("data", "n", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.n = len(data)
        self.pos = 0

    def fail(self, msg: str) -> AgoraError:
        return AgoraError("cbor_malformed", f"{msg} at byte {self.pos}")

    def noncanon(self, msg: str) -> AgoraError:
        return AgoraError("cbor_non_canonical", f"{msg} at byte {self.pos}")

    def take(self, k: int) -> bytes:
        end = self.pos + k
        if end > self.n:
            raise self.fail("truncated input")
        b = self.data[self.pos : end]
        self.pos = end
        return b

    def head(self) -> tuple[int, int, int]:
        if self.pos >= self.n:
            raise self.fail("truncated input")
        ib = self.data[self.pos]
        self.pos += 1
        major, info = ib >> 5, ib & 0x1F
        if info < 24:
            return major, info, info
        if info == 24:
            v = self.take(1)[0]
            if v < 24 and major != 7:
                raise self.noncanon("integer not in shortest form")
            return major, info, v
        if info == 25:
            v = int.from_bytes(self.take(2), "big")
            if v < 0x100 and major != 7:
                raise self.noncanon("integer not in shortest form")
            return major, info, v
        if info == 26:
            v = int.from_bytes(self.take(4), "big")
            if v < 0x10000 and major != 7:
                raise self.noncanon("integer not in shortest form")
            return major, info, v
        if info == 27:
            raw = self.take(8)
            v = int.from_bytes(raw, "big")
            if v < 0x100000000 and major != 7:
                raise self.noncanon("integer not in shortest form")
            return major, info, v
        if info == 31:
            raise self.noncanon("indefinite lengths are not allowed")
        raise self.fail(f"reserved additional info {info}")

    def item(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise self.fail("nesting too deep")
        data, n = self.data, self.n
        start = pos = self.pos
        if pos >= n:
            raise self.fail("truncated input")
        ib = data[pos]
        if ib & 0x1F < 24:  # fast path: the value is in the initial byte
            pos += 1
            self.pos = pos
            major, info, v = ib >> 5, ib & 0x1F, ib & 0x1F
        elif (ib == 0x78 or ib == 0x58) and pos + 1 < n and data[pos + 1] >= 24:
            # fast path: text or bytes of 24..255 (DIDs, signatures), one length byte, canonical
            v = data[pos + 1]
            pos += 2
            end = pos + v
            if end > n:
                raise self.fail("truncated input")
            self.pos = end
            if ib == 0x58:
                return data[pos:end]
            try:
                return data[pos:end].decode("utf-8")
            except UnicodeDecodeError:
                self.pos = start
                raise self.fail("text is not valid UTF-8") from None
        else:
            major, info, v = self.head()
            pos = self.pos
        if major == 3:
            end = pos + v
            if end > n:
                raise self.fail("truncated input")
            self.pos = end
            try:
                return data[pos:end].decode("utf-8")
            except UnicodeDecodeError:
                self.pos = start
                raise self.fail("text is not valid UTF-8") from None
        if major == 5:
            return self._map(v, depth)
        if major == 0:
            return v
        if major == 2:
            end = pos + v
            if end > n:
                raise self.fail("truncated input")
            self.pos = end
            return data[pos:end]
        if major == 4:
            if v > n - pos:  # each element takes at least one byte
                raise self.fail("array longer than the input")
            return [self.item(depth + 1) for _ in range(v)]
        if major == 1:
            return -1 - v
        if major == 6:
            return self._tag(v)
        return self._simple(info, v)

    def _map(self, count: int, depth: int) -> dict[str, Any]:
        data, n = self.data, self.n
        if count * 2 > n - self.pos:
            raise self.fail("map longer than the input")
        out: dict[str, Any] = {}
        prev: tuple[int, bytes] | None = None
        for _ in range(count):
            kstart = self.pos
            kb0 = data[kstart] if kstart < n else 0
            if 0x60 <= kb0 < 0x78:  # fast path: a short text key
                kend = kstart + 1 + (kb0 - 0x60)
                if kend > n:
                    raise self.fail("truncated input")
                kb = data[kstart + 1 : kend]
                self.pos = kend
            else:
                kmajor, _ki, klen = self.head()
                if kmajor != 3:
                    self.pos = kstart
                    raise self.fail("map keys must be text strings")
                kb = self.take(klen)
            sort_key = (len(kb), kb)
            if prev is not None and sort_key <= prev:
                if sort_key == prev:
                    raise self.fail("duplicate map key")
                raise self.noncanon("map keys out of canonical order")
            prev = sort_key
            try:
                key = kb.decode("utf-8")
            except UnicodeDecodeError:
                raise self.fail("map key is not valid UTF-8") from None
            vpos = self.pos
            vb = data[vpos] if vpos < n else 0xFF
            if vb < 0x18:  # fast path: a small unsigned integer value
                self.pos = vpos + 1
                out[key] = vb
            else:
                out[key] = self.item(depth + 1)
        return out

    def _tag(self, tag: int) -> CID:
        if tag != 42:
            raise self.fail(f"tag {tag} is not allowed in DAG-CBOR (only 42)")
        bmajor, _bi, blen = self.head()
        if bmajor != 2:
            raise self.fail("tag 42 must wrap a byte string")
        raw = self.take(blen)
        if not raw or raw[0] != 0:
            raise self.fail("CID bytes must start with the 0x00 multibase prefix")
        try:
            return CID(raw[1:])
        except AgoraError as exc:
            raise self.fail(f"bad CID: {exc.message}") from None

    def _simple(self, info: int, v: int) -> Any:
        if info == 20:
            return False
        if info == 21:
            return True
        if info == 22:
            return None
        if info == 27:
            f = _F64.unpack(v.to_bytes(8, "big"))[0]
            if math.isnan(f) or math.isinf(f):
                raise self.fail("NaN and infinities are not allowed")
            return f
        if info in (25, 26):
            raise self.noncanon("floats must be 64-bit")
        raise self.fail(f"simple value {info} is not allowed")


def decode(data: bytes) -> Any:
    """Decode exactly one canonical DAG-CBOR value that spans all of `data`."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise AgoraError("cbor_malformed", f"expected bytes, got {type(data).__name__}")
    dec = _Decoder(bytes(data))
    try:
        value = dec.item(0)
    except RecursionError:
        raise AgoraError("cbor_malformed", "nesting too deep") from None
    if dec.pos != dec.n:
        raise AgoraError("cbor_malformed", f"{dec.n - dec.pos} trailing bytes after the value")
    return value


def decode_array_spans(data: bytes) -> list[tuple[int, int]]:
    """For a top-level array, return each element's (start, end) byte span, validating each element.

    Signatures are verified over the raw bytes received, so a verifier needs the exact span of the
    signed element rather than a re-encoding of what it decoded.
    """
    dec = _Decoder(bytes(data))
    major, _info, count = dec.head()
    if major != 4:
        raise AgoraError("cbor_malformed", "expected an array")
    spans = []
    for _ in range(count):
        start = dec.pos
        dec.item(1)
        spans.append((start, dec.pos))
    if dec.pos != dec.n:
        raise AgoraError("cbor_malformed", f"{dec.n - dec.pos} trailing bytes after the value")
    return spans


__all__ = ["MAX_DEPTH", "decode", "decode_array_spans", "encode"]
