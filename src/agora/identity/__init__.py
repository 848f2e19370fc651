"""Who is who: Ed25519 keys and everything derived from one key.

- `keys.py`: `Keypair`, did:key encode/decode, `verify`, libp2p PeerID, NATS nkey.
- `keystore.py`: the 0600 keystore file, optionally sealed with a passphrase (Argon2id + secretbox).
"""

from agora.identity.keys import (
    DID_KEY_PREFIX,
    Keypair,
    did_from_public,
    fingerprint,
    nkey_from_public,
    peer_id_from_public,
    public_from_did,
    verify,
    verify_key,
)
from agora.identity.keystore import create_keystore, keystore_did, load_keystore

__all__ = [
    "DID_KEY_PREFIX",
    "Keypair",
    "create_keystore",
    "did_from_public",
    "fingerprint",
    "keystore_did",
    "load_keystore",
    "nkey_from_public",
    "peer_id_from_public",
    "public_from_did",
    "verify",
    "verify_key",
]
