import json
import os
import stat
from pathlib import Path

import pytest

from agora.errors import AgoraError
from agora.identity import create_keystore, keystore_did, load_keystore


def test_plain_keystore_roundtrip_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "id" / "key.json"
    kp = create_keystore(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keystore(path).did == kp.did
    assert keystore_did(path) == kp.did


def test_passphrase_keystore(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    kp = create_keystore(path, passphrase="correct horse")
    assert kp.seed.hex() not in path.read_text()
    assert "seed" not in json.loads(path.read_text())
    assert load_keystore(path, "correct horse").did == kp.did
    with pytest.raises(AgoraError) as err:
        load_keystore(path, "wrong")
    assert err.value.code == "keystore_passphrase"
    with pytest.raises(AgoraError) as err:
        load_keystore(path)
    assert err.value.code == "keystore_passphrase"


def test_never_overwrites_without_force(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    first = create_keystore(path)
    with pytest.raises(AgoraError) as err:
        create_keystore(path)
    assert err.value.code == "keystore_exists"
    assert load_keystore(path).did == first.did
    second = create_keystore(path, force=True)
    assert load_keystore(path).did == second.did != first.did


def test_missing_and_world_readable_and_damaged(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    with pytest.raises(AgoraError) as err:
        load_keystore(path)
    assert err.value.code == "keystore_missing"
    create_keystore(path)
    os.chmod(path, 0o644)
    with pytest.raises(AgoraError) as err:
        load_keystore(path)
    assert err.value.code == "keystore_permissions"
    os.chmod(path, 0o600)
    path.write_text("{not json")
    with pytest.raises(AgoraError) as err:
        load_keystore(path)
    assert err.value.code == "keystore_invalid"


def test_did_must_match_key(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    create_keystore(path)
    doc = json.loads(path.read_text())
    doc["did"] = create_keystore(tmp_path / "other.json").did
    path.write_text(json.dumps(doc))
    with pytest.raises(AgoraError) as err:
        load_keystore(path)
    assert err.value.code == "keystore_invalid"
