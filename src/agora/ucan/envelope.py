"""The UCAN 1.0 signed envelope: `[signature, {"h": varsig_header, "<type tag>": payload}]` in DAG-CBOR.

The signature covers the exact bytes of the second array element *as received*. A verifier never
re-encodes what it decoded: two encoders that disagree on one byte would otherwise turn a valid
token invalid (or, worse, let a re-encoding hide bytes the signer never saw). The codec rejects
non-canonical CBOR, so the received bytes are also the only encoding of the decoded value.

The type tag is the domain separator: a delegation, an invocation, a receipt and an announcement are
signed under different tags, so a signature made for one can never be presented as another. That is
why agora.wire reuses `seal_envelope`/`open_envelope` for its own signed messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agora.codec import decode, encode
from agora.errors import AgoraError
from agora.identity import Keypair, verify

# varsig v1: 0x34 varsig prefix, 0x01 version, 0xed01 Ed25519 key, 0xed01 EdDSA, 0x13 SHA2-512,
# 0x71 payload encoded as DAG-CBOR. The shared fixtures and the spec's examples carry all 8 bytes.
VARSIG_ED25519_DAG_CBOR = bytes.fromhex("3401ed01ed011371")
SIGNATURE_SIZE = 64
_SIG_HEAD = b"\x58\x40"  # CBOR byte string of length 64


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded envelope; `signed_bytes` is the slice of the raw token the signature covers."""

    signature: bytes
    header: bytes
    type_tag: str
    payload: dict[str, Any]
    signed_bytes: bytes

    def verify(self, did: str) -> bool:
        """True when the signature over `signed_bytes` verifies with the key of `did`."""
        try:
            return verify(did, self.signed_bytes, self.signature)
        except AgoraError:  # not a usable did:key: nothing can verify against it
            return False


def _bad(message: str) -> AgoraError:
    return AgoraError("ucan_malformed", message)


def check_type_tag(type_tag: object) -> str:
    if not isinstance(type_tag, str) or not type_tag or type_tag == "h":
        raise AgoraError("invalid_argument", f"an envelope type tag is a non-empty string other than 'h': {type_tag!r}")
    return type_tag


def seal_envelope(keypair: Keypair, type_tag: str, payload: dict[str, Any]) -> bytes:
    """Sign `payload` under `type_tag` and return the raw envelope bytes."""
    check_type_tag(type_tag)
    if not isinstance(payload, dict):
        raise AgoraError("invalid_argument", "an envelope payload is a map")
    try:
        signed = encode({"h": VARSIG_ED25519_DAG_CBOR, type_tag: payload})
    except ValueError as exc:
        raise AgoraError("invalid_argument", f"payload is not DAG-CBOR encodable: {exc}") from None
    signature = keypair.sign(signed)
    # The array head (2 items) + the signature + the signed element, byte for byte what encode() of the
    # array would give, assembled so the signed element is provably the bytes that were signed.
    return b"\x82" + _SIG_HEAD + signature + signed


def _head_size(n: int) -> int:
    if n < 24:
        return 1
    if n < 0x100:
        return 2
    if n < 0x10000:
        return 3
    if n < 0x100000000:
        return 5
    return 9


def open_parts(raw: bytes) -> tuple[bytes, str, dict[str, Any], bytes]:
    """Decode an envelope into (signature, type tag, payload, signed bytes); the hot path of `open_envelope`.

    One strict decode of the whole token, then the signed element's span is computed from the
    signature's length: canonical CBOR has exactly one head size per length, so the span is exact
    without decoding the payload a second time.
    """
    if type(raw) is not bytes:
        if not isinstance(raw, bytes | bytearray | memoryview):
            raise _bad(f"expected bytes, got {type(raw).__name__}")
        raw = bytes(raw)
    value = decode(raw)
    if type(value) is not list or len(value) != 2:
        raise _bad("an envelope is a 2-element array [signature, signed payload]")
    signature, body = value
    if type(signature) is not bytes or type(body) is not dict:
        raise _bad("an envelope is [bytes, map]")
    # A signature of the wrong length is not malformed but invalid: it simply never verifies
    # (the shared fixtures expect `InvalidSignature` for a 3-byte signature).
    if len(body) != 2:
        raise _bad('the signed element holds exactly "h" and one type tag')
    header = body.get("h")
    if header != VARSIG_ED25519_DAG_CBOR or type(header) is not bytes:
        raise _bad("unsupported varsig header (only Ed25519 over DAG-CBOR is accepted)")
    first, second = body
    key = second if first == "h" else first
    payload = body[key]
    if type(payload) is not dict:
        raise _bad(f"the {key!r} payload must be a map")
    start = 1 + _head_size(len(signature)) + len(signature)
    return signature, key, payload, raw[start:]


def open_envelope(raw: bytes) -> Envelope:
    """Decode and shape-check an envelope (the signature is not checked here: call `verify`)."""
    signature, type_tag, payload, signed = open_parts(raw)
    return Envelope(signature, VARSIG_ED25519_DAG_CBOR, type_tag, payload, signed)


__all__ = [
    "SIGNATURE_SIZE",
    "VARSIG_ED25519_DAG_CBOR",
    "Envelope",
    "check_type_tag",
    "open_envelope",
    "open_parts",
    "seal_envelope",
]
