"""Chain validation: the happy path and every way an invocation must be refused."""

from __future__ import annotations

from typing import Any

import pytest

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.ucan import (
    INVOCATION_TAG,
    Delegation,
    Invocation,
    ReplayCache,
    delegate,
    invoke,
    seal_envelope,
    validate_invocation,
)
from agora.ucan.validate import clear_verified_cache

from .conftest import NOW, Chain

ARGS = {"kind": "job", "price": 10}


def _inv(chain: Chain, **over: Any) -> Invocation:
    kw: dict[str, Any] = {
        "sub": chain.alice.did,
        "aud": chain.alice.did,
        "cmd": "/agora/job/bid",
        "args": ARGS,
        "prf": chain.prf,
        "exp": NOW + 300,
    }
    kw.update(over)
    issuer = kw.pop("issuer", chain.carol)
    return invoke(issuer, **kw)


def _code(inv: Invocation, proofs: Any, **kw: Any) -> str:
    kw.setdefault("now", NOW)
    with pytest.raises(AgoraError) as err:
        validate_invocation(inv, proofs, **kw)
    return err.value.code


def test_valid_chain_passes(chain: Chain) -> None:
    inv = _inv(chain)
    validate_invocation(inv, chain.proofs, now=NOW, audience=chain.alice.did)
    validate_invocation(Invocation.decode(inv.raw), chain.proofs, now=NOW)


def test_proofs_from_a_callable(chain: Chain) -> None:
    inv = _inv(chain)
    asked = []

    def lookup(cid: Any) -> Delegation | None:
        asked.append(cid)
        return chain.proofs.get(cid)

    validate_invocation(inv, lookup, now=NOW)
    assert asked == chain.prf
    assert _code(inv, lambda cid: None) == "ucan_proof_missing"


def test_self_invocation_needs_no_proof(chain: Chain) -> None:
    inv = invoke(chain.alice, sub=chain.alice.did, cmd="/anything", args={}, exp=NOW + 60)
    validate_invocation(inv, {}, now=NOW)


def test_no_proof_and_not_the_subject(chain: Chain) -> None:
    assert _code(_inv(chain, prf=[]), {}) == "ucan_invalid_claim"


def test_missing_proof(chain: Chain) -> None:
    assert _code(_inv(chain), {chain.root.cid: chain.root}) == "ucan_proof_missing"


def test_proof_supplied_under_another_cid_is_missing(chain: Chain) -> None:
    swapped = {chain.root.cid: chain.leaf, chain.leaf.cid: chain.root}
    assert _code(_inv(chain), swapped) == "ucan_proof_missing"
    assert _code(_inv(chain), {c: "not a delegation" for c in chain.prf}) == "ucan_proof_missing"


def test_wrong_invocation_signature(chain: Chain) -> None:
    inv = _inv(chain)
    bad = bytearray(inv.raw)
    bad[10] ^= 0x01  # inside the signature
    assert _code(Invocation.decode(bytes(bad)), chain.proofs) == "ucan_signature_invalid"


def test_invocation_signed_by_someone_else_than_its_iss(chain: Chain, mallory: Keypair) -> None:
    payload = {
        "iss": chain.carol.did,
        "sub": chain.alice.did,
        "cmd": "/agora/job/bid",
        "args": ARGS,
        "prf": chain.prf,
        "nonce": b"0" * 12,
        "exp": NOW + 300,
    }
    forged = Invocation.decode(seal_envelope(mallory, INVOCATION_TAG, payload))
    assert forged.iss == chain.carol.did
    assert _code(forged, chain.proofs) == "ucan_signature_invalid"


def test_delegation_signed_by_someone_else_than_its_iss(chain: Chain, mallory: Keypair) -> None:
    from agora.codec import decode
    from agora.ucan import DELEGATION_TAG

    payload = decode(chain.leaf.signed_bytes)[DELEGATION_TAG]
    forged = Delegation.decode(seal_envelope(mallory, DELEGATION_TAG, payload))
    assert forged.iss == chain.bob.did and not forged.verify()
    inv = _inv(chain, prf=[chain.root.cid, forged.cid])
    assert _code(inv, {chain.root.cid: chain.root, forged.cid: forged}) == "ucan_signature_invalid"


def test_invocation_expiry_with_skew_both_ways(chain: Chain) -> None:
    inv = _inv(chain, exp=NOW - 30)
    validate_invocation(inv, chain.proofs, now=NOW)  # expired 30 s ago: inside the default 60 s skew
    assert _code(inv, chain.proofs, skew=0) == "ucan_expired"
    assert _code(inv, chain.proofs, now=NOW + 31) == "ucan_expired"
    validate_invocation(_inv(chain, exp=NOW), chain.proofs, now=NOW, skew=0)  # valid until exp inclusive


def test_proof_time_bounds_with_skew(chain: Chain) -> None:
    early = delegate(chain.bob, aud=chain.carol.did, sub=chain.alice.did, cmd="/agora", exp=None, nbf=NOW + 30)
    inv = _inv(chain, prf=[chain.root.cid, early.cid])
    proofs = {chain.root.cid: chain.root, early.cid: early}
    validate_invocation(inv, proofs, now=NOW)  # nbf 30 s ahead: inside the skew
    assert _code(inv, proofs, skew=0) == "ucan_not_yet_valid"
    assert _code(inv, proofs, now=NOW - 31) == "ucan_not_yet_valid"

    old = delegate(chain.bob, aud=chain.carol.did, sub=chain.alice.did, cmd="/agora", exp=NOW - 30)
    inv = _inv(chain, prf=[chain.root.cid, old.cid])
    proofs = {chain.root.cid: chain.root, old.cid: old}
    validate_invocation(inv, proofs, now=NOW)
    assert _code(inv, proofs, skew=0) == "ucan_expired"


def test_audience_parameter(chain: Chain, mallory: Keypair) -> None:
    inv = _inv(chain, aud=mallory.did)
    assert _code(inv, chain.proofs, audience=chain.alice.did) == "ucan_audience_mismatch"
    validate_invocation(inv, chain.proofs, now=NOW, audience=mallory.did)
    no_aud = _inv(chain, aud=None)  # addressed to its subject
    validate_invocation(no_aud, chain.proofs, now=NOW, audience=chain.alice.did)
    assert _code(no_aud, chain.proofs, audience=mallory.did) == "ucan_audience_mismatch"


def test_chain_must_end_at_the_invoker(chain: Chain, mallory: Keypair) -> None:
    assert _code(_inv(chain, issuer=mallory), chain.proofs) == "ucan_audience_mismatch"


def test_chain_links_must_align(chain: Chain, mallory: Keypair) -> None:
    stray = delegate(mallory, aud=chain.carol.did, sub=chain.alice.did, cmd="/agora", exp=None)
    inv = _inv(chain, prf=[chain.root.cid, stray.cid])
    assert _code(inv, {chain.root.cid: chain.root, stray.cid: stray}) == "ucan_audience_mismatch"


def test_proofs_in_leaf_first_order_are_refused(chain: Chain) -> None:
    inv = _inv(chain, prf=[chain.leaf.cid, chain.root.cid])
    assert _code(inv, chain.proofs) == "ucan_audience_mismatch"


def test_subject_must_match_everywhere(chain: Chain, mallory: Keypair) -> None:
    other = delegate(chain.bob, aud=chain.carol.did, sub=mallory.did, cmd="/agora", exp=None)
    inv = _inv(chain, prf=[chain.root.cid, other.cid])
    assert _code(inv, {chain.root.cid: chain.root, other.cid: other}) == "ucan_subject_mismatch"
    assert _code(_inv(chain, sub=mallory.did), chain.proofs) == "ucan_subject_mismatch"


def test_root_must_be_issued_by_the_subject(chain: Chain, mallory: Keypair) -> None:
    # mallory claims alice's resource: every sub says alice, but the root was issued by mallory
    root = delegate(mallory, aud=chain.carol.did, sub=chain.alice.did, cmd="/", exp=None)
    inv = _inv(chain, prf=[root.cid])
    assert _code(inv, {root.cid: root}) == "ucan_invalid_claim"


def test_powerline(chain: Chain) -> None:
    power = delegate(chain.bob, aud=chain.carol.did, sub=None, cmd="/", exp=None)
    inv = _inv(chain, prf=[chain.root.cid, power.cid])
    validate_invocation(inv, {chain.root.cid: chain.root, power.cid: power}, now=NOW)
    root_power = delegate(chain.alice, aud=chain.carol.did, sub=None, cmd="/", exp=None)
    inv = _inv(chain, prf=[root_power.cid])
    assert _code(inv, {root_power.cid: root_power}) == "ucan_invalid_claim"


def test_command_outside_the_delegated_one(chain: Chain) -> None:
    assert _code(_inv(chain, cmd="/agora/alloc/start"), chain.proofs) == "ucan_command_not_delegated"
    assert _code(_inv(chain, cmd="/agora/jobs"), chain.proofs) == "ucan_command_not_delegated"
    validate_invocation(_inv(chain, cmd="/agora/job"), chain.proofs, now=NOW)


def test_every_policy_in_the_chain_applies(chain: Chain) -> None:
    assert _code(_inv(chain, args={"kind": "job", "price": 101}), chain.proofs) == "ucan_policy_violation"  # leaf
    assert _code(_inv(chain, args={"kind": "vm", "price": 1}), chain.proofs) == "ucan_policy_violation"  # root
    assert _code(_inv(chain, args={"price": 1}), chain.proofs) == "ucan_policy_violation"  # missing field
    assert _code(_inv(chain, args={"kind": "job", "price": True}), chain.proofs) == "ucan_policy_violation"


def test_policy_numbers_compare_by_value_through_signed_tokens(chain: Chain) -> None:
    # DAG-CBOR keeps int 1 and float 1.0 apart on the wire; the policy compares them by value (UCAN spec,
    # ucan-wg/spec fixtures/1.0.0/policy.json), so a float in the policy matches an int in the args and back
    root = delegate(
        chain.alice, aud=chain.carol.did, sub=chain.alice.did, cmd="/agora/job", pol=[["==", ".n", 1.0]], exp=NOW + 60
    )
    decoded = Delegation.decode(root.raw)
    assert type(decoded.pol[0][2]) is float
    for n in (1, 1.0):
        inv = Invocation.decode(_inv(chain, args={"n": n}, prf=[root.cid]).raw)
        assert type(inv.args["n"]) is type(n)
        validate_invocation(inv, {root.cid: decoded}, now=NOW)
    for n in (2, True, 1.5):
        assert _code(_inv(chain, args={"n": n}, prf=[root.cid]), {root.cid: decoded}) == "ucan_policy_violation"


def test_replay(chain: Chain) -> None:
    cache = ReplayCache()
    inv = _inv(chain)
    validate_invocation(inv, chain.proofs, now=NOW, replay=cache)
    assert _code(inv, chain.proofs, replay=cache) == "ucan_replayed"
    assert _code(Invocation.decode(inv.raw), chain.proofs, replay=cache, now=NOW + 100) == "ucan_replayed"
    validate_invocation(_inv(chain), chain.proofs, now=NOW, replay=cache)  # a fresh nonce is a new invocation


def test_rejected_invocations_are_not_remembered(chain: Chain) -> None:
    cache = ReplayCache()
    inv = _inv(chain)
    assert _code(inv, {}, replay=cache) == "ucan_proof_missing"
    assert len(cache) == 0
    validate_invocation(inv, chain.proofs, now=NOW, replay=cache)


def test_replay_needs_an_expiry(chain: Chain) -> None:
    assert _code(_inv(chain, exp=None), chain.proofs, replay=ReplayCache()) == "ucan_lifetime_invalid"
    validate_invocation(_inv(chain, exp=None), chain.proofs, now=NOW)  # fine without a replay cache


def test_verified_delegations_are_remembered_by_cid(chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    clear_verified_cache()
    calls = []
    real = Delegation.verify

    def counting(self: Delegation) -> bool:
        calls.append(self.cid)
        return real(self)

    monkeypatch.setattr(Delegation, "verify", counting)
    for _ in range(3):
        validate_invocation(_inv(chain), chain.proofs, now=NOW)
    assert calls == chain.prf  # each proof verified once, then served from the cache


def test_invalid_arguments(chain: Chain) -> None:
    with pytest.raises(AgoraError) as err:
        validate_invocation(chain.root.raw, chain.proofs, now=NOW)  # type: ignore[arg-type]
    assert err.value.code == "invalid_argument"
    assert _code(_inv(chain), chain.proofs, skew=-1) == "invalid_argument"


def test_every_flipped_bit_of_an_invocation_fails(chain: Chain) -> None:
    raw = _inv(chain).raw
    for i in range(len(raw) * 8):
        bad = bytearray(raw)
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises(AgoraError):
            validate_invocation(Invocation.decode(bytes(bad)), chain.proofs, now=NOW)


def test_every_flipped_bit_of_a_proof_fails(chain: Chain) -> None:
    inv = _inv(chain)
    raw = chain.leaf.raw
    for i in range(len(raw) * 8):
        bad = bytearray(raw)
        bad[i // 8] ^= 1 << (i % 8)
        try:
            mutated = Delegation.decode(bytes(bad))
        except AgoraError:
            continue
        # hand the mutated proof over under the CID the invocation cites, and under its own
        for source in (
            {chain.root.cid: chain.root, chain.leaf.cid: mutated},
            {chain.root.cid: chain.root, mutated.cid: mutated},
        ):
            with pytest.raises(AgoraError):
                validate_invocation(inv, source, now=NOW)


def test_every_truncation_fails(chain: Chain) -> None:
    raw = _inv(chain).raw
    for n in range(len(raw)):
        with pytest.raises(AgoraError):
            Invocation.decode(raw[:n])
        with pytest.raises(AgoraError):
            Invocation.decode(raw + raw[:n] if n else raw + b"\x00")


def test_an_invocation_issued_in_the_future_is_refused(chain: Chain) -> None:
    assert _code(_inv(chain, iat=NOW + 61), chain.proofs) == "ucan_not_yet_valid"
    assert _code(_inv(chain, iat=NOW + 3600), chain.proofs, skew=0) == "ucan_not_yet_valid"
    validate_invocation(_inv(chain, iat=NOW + 60), chain.proofs, now=NOW)  # within the skew
    validate_invocation(_inv(chain, iat=NOW - 3600), chain.proofs, now=NOW)  # iat in the past is fine
