"""The keystore file: one Ed25519 seed, mode 0600, optionally sealed with a passphrase.

Format (JSON, versioned so it can grow): `{"version": 1, "did": ..., "seed": base64}` in the clear,
or `{"version": 1, "did": ..., "kdf": {"alg": "argon2id", "salt", "opslimit", "memlimit"},
"sealed": base64}` where `sealed` is an XSalsa20-Poly1305 secretbox of the seed under a key derived
from the passphrase with Argon2id (libsodium's moderate limits). The DID is stored beside the key so
a wrong passphrase is told apart from a damaged file, and so `agora status` can show the identity
without unlocking it.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from agora.errors import AgoraError
from agora.identity.keys import Keypair

VERSION = 1
_OPS = nacl.pwhash.argon2id.OPSLIMIT_MODERATE
_MEM = nacl.pwhash.argon2id.MEMLIMIT_MODERATE


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def create_keystore(
    path: Path, passphrase: str | None = None, *, force: bool = False, keypair: Keypair | None = None
) -> Keypair:
    """Write a new keystore at `path` (never silently replacing one) and return its key."""
    path = Path(path)
    if path.exists() and not force:
        raise AgoraError("keystore_exists", f"{path} already exists")
    kp = keypair or Keypair.generate()
    doc: dict[str, object] = {"version": VERSION, "did": kp.did}
    if passphrase:
        salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
        key = nacl.pwhash.argon2id.kdf(
            nacl.secret.SecretBox.KEY_SIZE, passphrase.encode(), salt, opslimit=_OPS, memlimit=_MEM
        )
        doc["kdf"] = {"alg": "argon2id", "salt": _b64(salt), "opslimit": _OPS, "memlimit": _MEM}
        doc["sealed"] = _b64(bytes(nacl.secret.SecretBox(key).encrypt(kp.seed)))
    else:
        doc["seed"] = _b64(kp.seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)  # atomic: a crash leaves the old file or the new one, never half of one
    os.chmod(path, 0o600)
    return kp


def keystore_did(path: Path) -> str:
    """The DID recorded in a keystore, without unlocking it."""
    return str(_read(Path(path))["did"])


def _read(path: Path) -> dict[str, object]:
    if not path.exists():
        raise AgoraError("keystore_missing", f"no keystore at {path}")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise AgoraError(
            "keystore_permissions", f"{path} has mode {oct(mode)}; it must be 0600", hint=f"chmod 600 {path}"
        )
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AgoraError("keystore_invalid", f"{path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != VERSION or not isinstance(doc.get("did"), str):
        raise AgoraError("keystore_invalid", f"{path} is not a version-{VERSION} agora keystore")
    return doc


def load_keystore(path: Path, passphrase: str | None = None) -> Keypair:
    path = Path(path)
    doc = _read(path)
    try:
        if "sealed" in doc:
            if not passphrase:
                raise AgoraError("keystore_passphrase", f"{path} is passphrase-protected")
            kdf = doc["kdf"]
            assert isinstance(kdf, dict)
            key = nacl.pwhash.argon2id.kdf(
                nacl.secret.SecretBox.KEY_SIZE,
                passphrase.encode(),
                base64.b64decode(kdf["salt"]),
                opslimit=int(kdf["opslimit"]),
                memlimit=int(kdf["memlimit"]),
            )
            try:
                seed = nacl.secret.SecretBox(key).decrypt(base64.b64decode(str(doc["sealed"])))
            except nacl.exceptions.CryptoError:
                raise AgoraError("keystore_passphrase", "wrong passphrase") from None
        else:
            seed = base64.b64decode(str(doc["seed"]))
    except (KeyError, TypeError, ValueError, AssertionError) as exc:
        raise AgoraError("keystore_invalid", f"{path}: missing or bad field ({exc})") from None
    kp = Keypair.from_seed(seed)
    if kp.did != doc["did"]:
        raise AgoraError("keystore_invalid", f"{path}: the key does not match the recorded DID")
    return kp


__all__ = ["create_keystore", "keystore_did", "load_keystore"]
