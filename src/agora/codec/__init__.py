"""Byte-level encodings shared by every layer (pure, no I/O).

- `dagcbor.py`: strict canonical DAG-CBOR encode/decode (`encode`, `decode`, `decode_array_spans`).
- `multiformats.py`: unsigned varints, base58btc/base32/base64, `CID` (v1, sha2-256).
"""

from agora.codec.dagcbor import decode, decode_array_spans, encode
from agora.codec.multiformats import (
    CID,
    DAG_CBOR,
    RAW,
    b32decode,
    b32encode,
    b58decode,
    b58encode,
    b64decode_any,
    varint_decode,
    varint_encode,
)

__all__ = [
    "CID",
    "DAG_CBOR",
    "RAW",
    "b32decode",
    "b32encode",
    "b58decode",
    "b58encode",
    "b64decode_any",
    "decode",
    "decode_array_spans",
    "encode",
    "varint_decode",
    "varint_encode",
]
