import pytest

from agora.codec import b58decode, b58encode
from agora.errors import AgoraError
from agora.identity import Keypair, did_from_public, public_from_did, verify

# Test vectors of the did:key spec (w3c-ccg/did-method-key, test-vectors/ed25519-x25519.json):
# (seed as hex, did, publicKeyBase58)
DID_KEY_VECTORS = [
    (
        "00" * 32,
        "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
        "4zvwRjXUKGfvwnParsHAS3HuSVzV5cA4McphgmoCtajS",
    ),
    (
        "00" * 31 + "01",
        "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG",
        "6ASf5EcmmEHTgDJ4X4ZT5vT6iHVJBXPg5AN5YoTCpGWt",
    ),
    (
        "00" * 31 + "02",
        "did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WxWufuXSdxf",
        "8pM1DN3RiT8vbom5u1sNryaNT1nyL8CTTW3b5PwWXRBH",
    ),
    (
        "00" * 31 + "03",
        "did:key:z6MkvqoYXQfDDJRv8L4wKzxYeuKyVZBfi9Qo6Ro8MiLH3kDQ",
        "HPYVwAQmskwT1qEEeRzhoomyfyupJGASQQtCXSNG8XS2",
    ),
    (
        "00" * 31 + "04",
        "did:key:z6MkwW6aqMnjgrhJXFUko3NnZPGzVpkNzhYK7yEhnsibmLwL",
        "J3qYF7YJMKCqQke47UQwiHizgFUXapHxRxKmxbkar89x",
    ),
]


@pytest.mark.parametrize(("seed_hex", "did", "pub58"), DID_KEY_VECTORS)
def test_did_key_spec_vectors(seed_hex: str, did: str, pub58: str) -> None:
    kp = Keypair.from_seed(bytes.fromhex(seed_hex))
    assert kp.did == did
    assert b58encode(kp.public_bytes) == pub58
    assert public_from_did(did) == b58decode(pub58)
    assert did_from_public(b58decode(pub58)) == did


def test_sign_and_verify() -> None:
    kp = Keypair.generate()
    sig = kp.sign(b"agora")
    assert verify(kp.did, b"agora", sig)
    assert not verify(kp.did, b"agorb", sig)
    assert not verify(Keypair.generate().did, b"agora", sig)
    assert not verify(kp.did, b"agora", sig[:-1])


@pytest.mark.parametrize(
    ("did", "code"),
    [
        ("did:web:example.com", "did_invalid"),
        ("did:key:6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp", "did_invalid"),  # no multibase prefix
        ("did:key:z0OIl", "did_invalid"),  # not base58
        ("did:key:zDnaerDaTF5BXEavCrfRZEk316dpbLsfPDZ3WJ5hRTPFU2169", "did_unsupported"),  # P-256
        ("did:key:z6Mkabc", "did_invalid"),  # truncated key
    ],
)
def test_bad_dids(did: str, code: str) -> None:
    with pytest.raises(AgoraError) as err:
        public_from_did(did)
    assert err.value.code == code


def test_peer_id_is_libp2p_identity_multihash() -> None:
    kp = Keypair.from_seed(bytes(32))
    raw = b58decode(kp.peer_id)
    # identity multihash (0x00, length 36) of the protobuf PublicKey{Type: Ed25519, Data: key}
    assert raw[:2] == b"\x00\x24"
    assert raw[2:6] == b"\x08\x01\x12\x20"
    assert raw[6:] == kp.public_bytes
    assert kp.peer_id.startswith("12D3KooW")


def test_nkey_matches_the_nats_nkeys_library() -> None:
    nkeys = pytest.importorskip("nkeys")
    kp = Keypair.generate()
    theirs = nkeys.from_seed(bytearray(kp.nkey_seed().encode()))
    assert theirs.public_key.decode() == kp.nkey
    assert kp.nkey.startswith("U")
    assert theirs.sign(b"nonce") == kp.sign(b"nonce")


def test_repr_never_shows_the_seed() -> None:
    kp = Keypair.generate()
    assert kp.seed.hex() not in repr(kp)
    assert kp.did in repr(kp)
