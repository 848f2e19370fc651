"""The UCAN working group's shared fixtures (shared/fixtures/ucan): every case is its own test."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agora.codec import b64decode_any
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.ucan import Delegation, Invocation, delegate, validate_invocation
from tests.support import FIXTURES

DLG = json.loads((FIXTURES / "ucan" / "delegation.json").read_text())
INV = json.loads((FIXTURES / "ucan" / "invocation.json").read_text())

ERROR_CODES = {
    "InvalidClaim": "ucan_invalid_claim",
    "UnavailableProof": "ucan_proof_missing",
    "Expired": "ucan_expired",
    "TooEarly": "ucan_not_yet_valid",
    "InvalidAudience": "ucan_audience_mismatch",
    "InvalidSubject": "ucan_subject_mismatch",
    "InvalidSignature": "ucan_signature_invalid",
    "MatchError": "ucan_policy_violation",
}


def _principal(encoded: str) -> Keypair:
    raw = b64decode_any(encoded)
    assert raw[:2] == b"\x80\x26"  # varint(0x1300): ed25519-priv multicodec
    return Keypair.from_seed(raw[2:])


PRINCIPALS = {kp.did: kp for kp in map(_principal, DLG["principals"].values())}


@pytest.mark.parametrize("case", DLG["valid"], ids=[c["name"] for c in DLG["valid"]])
def test_delegation_fixture_reencodes_byte_for_byte(case: dict[str, Any]) -> None:
    env = case["envelope"]
    assert (env["alg"], env["enc"], env["spec"]) == ("Ed25519", "DAG-CBOR", "dlg")
    p = env["payload"]
    dlg = delegate(
        PRINCIPALS[p["iss"]],
        aud=p["aud"],
        sub=p["sub"],
        cmd=p["cmd"],
        pol=p["pol"],
        exp=p["exp"],
        nbf=p.get("nbf"),
        meta=p.get("meta"),
        nonce=b64decode_any(p["nonce"]),
    )
    assert dlg.raw == b64decode_any(case["token"])
    assert str(dlg.cid) == case["cid"]
    assert dlg.signature == b64decode_any(env["signature"])
    decoded = Delegation.decode(b64decode_any(case["token"]))
    assert (decoded.iss, decoded.aud, decoded.sub, decoded.cmd, decoded.exp) == (
        p["iss"],
        p["aud"],
        p["sub"],
        p["cmd"],
        p["exp"],
    )
    assert decoded.verify()


def _load(case: dict[str, Any]) -> tuple[Invocation, dict]:
    inv = Invocation.decode(b64decode_any(case["invocation"]["/"]["bytes"]))
    proofs = {}
    for link in case["proofs"]:
        d = Delegation.decode(b64decode_any(link["/"]["bytes"]))
        proofs[d.cid] = d
    return inv, proofs


@pytest.mark.parametrize("case", INV["valid"], ids=[c["name"] for c in INV["valid"]])
def test_valid_invocation_fixture_passes(case: dict[str, Any]) -> None:
    inv, proofs = _load(case)
    validate_invocation(inv, proofs, now=case["time"], skew=0)


@pytest.mark.parametrize("case", INV["invalid"], ids=[c["name"] for c in INV["invalid"]])
def test_invalid_invocation_fixture_fails_with_mapped_code(case: dict[str, Any]) -> None:
    inv, proofs = _load(case)
    with pytest.raises(AgoraError) as err:
        validate_invocation(inv, proofs, now=case["time"], skew=0)
    assert err.value.code == ERROR_CODES[case["error"]["name"]], err.value.message


def test_fixture_cases_are_all_mapped() -> None:
    names = {c["error"]["name"] for c in INV["invalid"]}
    assert names <= ERROR_CODES.keys()
    assert len(INV["valid"]) >= 7 and len(INV["invalid"]) >= 13
