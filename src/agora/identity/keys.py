"""Ed25519 key pairs and the identifiers derived from one key: did:key, libp2p PeerID, NATS nkey."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import cached_property, lru_cache

import nacl.exceptions
import nacl.signing

from agora.codec.multiformats import b58decode, b58encode, varint_decode, varint_encode
from agora.errors import AgoraError

ED25519_PUB = 0xED
_ED_PREFIX = varint_encode(ED25519_PUB)  # b"\xed\x01"
DID_KEY_PREFIX = "did:key:z"
# secp256k1, x25519, bls12-381 g1/g2, p256, p384, p521, rsa: real key types we do not accept
_OTHER_KEY_CODECS = {0xE7, 0xEC, 0xEA, 0xEB, 0x1200, 0x1201, 0x1202, 0x1205}


def did_from_public(public: bytes) -> str:
    if len(public) != 32:
        raise AgoraError("did_invalid", "an Ed25519 public key is 32 bytes")
    return DID_KEY_PREFIX + b58encode(_ED_PREFIX + public)


@lru_cache(maxsize=4096)
def public_from_did(did: str) -> bytes:
    """Decode a did:key into its Ed25519 public key (cached: DIDs repeat on every message)."""
    if not isinstance(did, str) or not did.startswith("did:key:"):
        raise AgoraError("did_invalid", f"not a did:key: {str(did)[:80]!r}")
    if not did.startswith(DID_KEY_PREFIX):
        raise AgoraError("did_invalid", "did:key must use base58btc multibase (z...)")
    try:
        raw = b58decode(did[len(DID_KEY_PREFIX) :])
    except ValueError as exc:
        raise AgoraError("did_invalid", str(exc)) from None
    try:
        codec, _ = varint_decode(raw)
    except ValueError:
        raise AgoraError("did_invalid", "did:key does not start with a multicodec") from None
    if codec != ED25519_PUB:
        if codec in _OTHER_KEY_CODECS:
            raise AgoraError("did_unsupported", "only Ed25519 did:key (z6Mk...) is supported")
        raise AgoraError("did_invalid", f"unknown key multicodec 0x{codec:x}")
    if len(raw) != 34:
        raise AgoraError("did_invalid", "Ed25519 did:key must hold a 32-byte key")
    return raw[2:]


@lru_cache(maxsize=4096)
def verify_key(did: str) -> nacl.signing.VerifyKey:
    return nacl.signing.VerifyKey(public_from_did(did))


def verify(did: str, message: bytes, signature: bytes) -> bool:
    """True when `signature` over `message` verifies with the key of `did`."""
    if len(signature) != 64:
        return False
    try:
        verify_key(did).verify(message, signature)
    except nacl.exceptions.BadSignatureError:
        return False
    return True


def peer_id_from_public(public: bytes) -> str:
    """libp2p PeerID: identity multihash of the protobuf-encoded public key, base58btc."""
    proto = b"\x08\x01\x12\x20" + public  # KeyType=Ed25519(1), Data=32 bytes
    return b58encode(b"\x00" + bytes([len(proto)]) + proto)


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def _nkey_encode(prefix: bytes, payload: bytes) -> str:
    raw = prefix + payload
    raw += _crc16(raw).to_bytes(2, "little")
    return base64.b32encode(raw).decode().rstrip("=")


NKEY_USER = 20 << 3  # 'U'
NKEY_SEED = 18 << 3  # 'S'


def nkey_from_public(public: bytes) -> str:
    """The NATS user nkey (U...) of an Ed25519 public key: hubs allowlist nodes by it."""
    return _nkey_encode(bytes([NKEY_USER]), public)


@dataclass(frozen=True)
class Keypair:
    """An Ed25519 signing key. `sign` is never given caller-supplied bytes directly: callers sign
    structures that start with a domain tag (see agora.wire and agora.ucan)."""

    signing_key: nacl.signing.SigningKey

    @classmethod
    def generate(cls) -> Keypair:
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Keypair:
        if len(seed) != 32:
            raise AgoraError("keystore_invalid", "an Ed25519 seed is 32 bytes")
        return cls(nacl.signing.SigningKey(seed))

    @property
    def seed(self) -> bytes:
        return bytes(self.signing_key)

    @property
    def public_bytes(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @cached_property
    def did(self) -> str:
        return did_from_public(self.public_bytes)

    @property
    def peer_id(self) -> str:
        return peer_id_from_public(self.public_bytes)

    @property
    def nkey(self) -> str:
        return nkey_from_public(self.public_bytes)

    def nkey_seed(self) -> str:
        """NATS seed string (SU...) so nats-py can answer the hub's nonce challenge with this key."""
        b1 = NKEY_SEED | (NKEY_USER >> 5)
        b2 = (NKEY_USER & 31) << 3
        return _nkey_encode(bytes([b1, b2]), self.seed)

    def sign(self, message: bytes) -> bytes:
        return self.signing_key.sign(message).signature

    def __repr__(self) -> str:  # never print key material
        return f"Keypair({self.did})"


def fingerprint(did: str) -> str:
    """A short stable label for logs and tables."""
    return hashlib.sha256(did.encode()).hexdigest()[:8]


__all__ = [
    "DID_KEY_PREFIX",
    "Keypair",
    "did_from_public",
    "fingerprint",
    "nkey_from_public",
    "peer_id_from_public",
    "public_from_did",
    "verify",
    "verify_key",
]
