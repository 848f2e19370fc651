"""Delegation/Invocation construction and decoding: every field's shape is checked."""

from __future__ import annotations

from typing import Any

import pytest

from agora.codec import CID, decode, encode
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.ucan import (
    DELEGATION_TAG,
    INVOCATION_TAG,
    Delegation,
    Invocation,
    Policy,
    delegate,
    invoke,
    seal_envelope,
    token_cid,
)

from .conftest import NOW

ALICE = Keypair.from_seed(b"\x01" * 32)
BOB = Keypair.from_seed(b"\x02" * 32)


def _dlg_payload(**over: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "iss": ALICE.did,
        "aud": BOB.did,
        "sub": ALICE.did,
        "cmd": "/agora/job",
        "pol": [],
        "nonce": b"n" * 12,
        "exp": NOW,
    }
    p.update(over)
    return {k: v for k, v in p.items() if v is not _DROP}


def _inv_payload(**over: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "iss": ALICE.did,
        "sub": ALICE.did,
        "cmd": "/agora/job",
        "args": {},
        "prf": [],
        "nonce": b"n" * 12,
        "exp": NOW,
    }
    p.update(over)
    return {k: v for k, v in p.items() if v is not _DROP}


_DROP = object()


def test_delegate_round_trip() -> None:
    d = delegate(ALICE, aud=BOB.did, sub=ALICE.did, cmd="/agora", pol=[["==", ".a", 1]], exp=NOW, nbf=NOW - 10)
    back = Delegation.decode(d.raw)
    assert back == d
    assert (back.iss, back.aud, back.sub, back.cmd, back.exp, back.nbf) == (
        ALICE.did,
        BOB.did,
        ALICE.did,
        "/agora",
        NOW,
        NOW - 10,
    )
    assert back.pol == [["==", ".a", 1]] and isinstance(back.policy, Policy)
    assert back.cid == token_cid(d.raw) == CID.of(d.raw)
    assert len(back.nonce) == 12 and back.meta is None
    assert back.verify()
    payload = decode(d.signed_bytes)[DELEGATION_TAG]
    assert "meta" not in payload and payload["nbf"] == NOW - 10


def test_nonces_are_random_and_cids_differ() -> None:
    a = delegate(ALICE, aud=BOB.did, sub=ALICE.did, cmd="/", exp=None)
    b = delegate(ALICE, aud=BOB.did, sub=ALICE.did, cmd="/", exp=None)
    assert a.nonce != b.nonce and a.cid != b.cid


def test_powerline_delegation_has_null_sub() -> None:
    d = delegate(ALICE, aud=BOB.did, sub=None, cmd="/", exp=None)
    assert Delegation.decode(d.raw).sub is None
    assert decode(d.signed_bytes)[DELEGATION_TAG]["sub"] is None


def test_invoke_round_trip() -> None:
    prf = [token_cid(b"x"), token_cid(b"y")]
    cause = token_cid(b"z")
    inv = invoke(
        ALICE,
        sub=BOB.did,
        aud=BOB.did,
        cmd="/agora/job/bid",
        args={"price": 5, "tags": ["a"]},
        prf=prf,
        exp=NOW + 300,
        iat=NOW,
        meta={"trace": "t"},
        cause=cause,
    )
    back = Invocation.decode(inv.raw)
    assert back == inv
    for name in ("iss", "sub", "aud", "cmd", "args", "prf", "nonce", "exp", "iat", "meta", "cause", "cid"):
        assert getattr(back, name) == getattr(inv, name), name
    assert back.prf == prf and back.audience == BOB.did
    assert back.verify()


def test_invocation_without_aud_is_addressed_to_its_subject() -> None:
    inv = invoke(ALICE, sub=BOB.did, cmd="/x", args={}, exp=None)
    assert inv.aud is None and inv.audience == BOB.did
    payload = decode(inv.signed_bytes)[INVOCATION_TAG]
    assert set(payload) == {"iss", "sub", "cmd", "args", "prf", "nonce", "exp"}
    assert payload["exp"] is None


def test_constructors_cannot_be_called_directly() -> None:
    with pytest.raises(TypeError):
        Delegation()
    with pytest.raises(TypeError):
        Invocation()


BAD_DELEGATIONS = {
    "missing iss": _dlg_payload(iss=_DROP),
    "missing exp": _dlg_payload(exp=_DROP),
    "missing pol": _dlg_payload(pol=_DROP),
    "missing nonce": _dlg_payload(nonce=_DROP),
    "missing sub": _dlg_payload(sub=_DROP),
    "unknown field": _dlg_payload(extra=1),
    "iss not a did": _dlg_payload(iss="alice"),
    "iss not did:key": _dlg_payload(iss="did:web:example.com"),
    "iss bad key": _dlg_payload(iss="did:key:z6MkNotAKey"),
    "aud int": _dlg_payload(aud=5),
    "sub bytes": _dlg_payload(sub=b"did:key:x"),
    "cmd no slash": _dlg_payload(cmd="agora"),
    "cmd trailing slash": _dlg_payload(cmd="/agora/"),
    "cmd upper": _dlg_payload(cmd="/Agora"),
    "cmd empty segment": _dlg_payload(cmd="/a//b"),
    "cmd not str": _dlg_payload(cmd=1),
    "pol not list": _dlg_payload(pol={}),
    "nonce str": _dlg_payload(nonce="abc"),
    "exp float": _dlg_payload(exp=1.5),
    "exp bool": _dlg_payload(exp=True),
    "exp too big": _dlg_payload(exp=2**53),
    "nbf null": _dlg_payload(nbf=None),
    "nbf str": _dlg_payload(nbf="now"),
    "meta list": _dlg_payload(meta=[1]),
    "meta null": _dlg_payload(meta=None),
}


@pytest.mark.parametrize("payload", BAD_DELEGATIONS.values(), ids=BAD_DELEGATIONS.keys())
def test_bad_delegation_fields_are_malformed(payload: dict[str, Any]) -> None:
    raw = seal_envelope(ALICE, DELEGATION_TAG, payload)
    with pytest.raises(AgoraError) as err:
        Delegation.decode(raw)
    assert err.value.code == "ucan_malformed", err.value.message


def test_bad_policy_in_delegation_names_the_statement() -> None:
    raw = seal_envelope(ALICE, DELEGATION_TAG, _dlg_payload(pol=[["==", ".a", 1], ["~=", ".b", 2]]))
    with pytest.raises(AgoraError) as err:
        Delegation.decode(raw)
    assert err.value.code == "ucan_policy_invalid"
    assert "pol[1]" in err.value.message and "~=" in err.value.message


BAD_INVOCATIONS = {
    "missing args": _inv_payload(args=_DROP),
    "missing prf": _inv_payload(prf=_DROP),
    "missing exp": _inv_payload(exp=_DROP),
    "missing nonce": _inv_payload(nonce=_DROP),
    "unknown field": _inv_payload(pol=[]),
    "args list": _inv_payload(args=[1]),
    "prf strings": _inv_payload(prf=["bafy"]),
    "prf not list": _inv_payload(prf=token_cid(b"x")),
    "prf too long": _inv_payload(prf=[token_cid(bytes([i])) for i in range(65)]),
    "sub null": _inv_payload(sub=None),
    "aud null": _inv_payload(aud=None),
    "iat float": _inv_payload(iat=1.0),
    "cause str": _inv_payload(cause="bafy"),
    "cause null": _inv_payload(cause=None),
    "cmd relative": _inv_payload(cmd="job"),
    "iss not did:key": _inv_payload(iss="did:web:example.com"),
}


@pytest.mark.parametrize("payload", BAD_INVOCATIONS.values(), ids=BAD_INVOCATIONS.keys())
def test_bad_invocation_fields_are_malformed(payload: dict[str, Any]) -> None:
    raw = seal_envelope(ALICE, INVOCATION_TAG, payload)
    with pytest.raises(AgoraError) as err:
        Invocation.decode(raw)
    assert err.value.code == "ucan_malformed", err.value.message


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cmd": "nope"},
        {"cmd": "/a/"},
        {"exp": 1.5},
        {"exp": "soon"},
        {"nbf": 2.5},
        {"pol": [["bogus"]]},
        {"nonce": "text"},
        {"meta": {"x": object()}},
        {"aud": "bob"},
    ],
)
def test_delegate_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    base: dict[str, Any] = {"aud": BOB.did, "sub": ALICE.did, "cmd": "/a", "exp": None}
    base.update(kwargs)
    with pytest.raises(AgoraError) as err:
        delegate(ALICE, **base)
    assert err.value.code in {"invalid_argument", "ucan_policy_invalid"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cmd": "x"},
        {"args": [1]},
        {"args": {"f": object()}},
        {"exp": 1.5},
        {"iat": "now"},
        {"prf": ["bafy"]},
        {"sub": "alice"},
        {"cause": "bafy"},
    ],
)
def test_invoke_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    base: dict[str, Any] = {"sub": ALICE.did, "cmd": "/a", "args": {}, "exp": None}
    base.update(kwargs)
    with pytest.raises(AgoraError) as err:
        invoke(ALICE, **base)
    assert err.value.code == "invalid_argument"


def test_delegation_decode_is_cached_by_bytes() -> None:
    d = delegate(ALICE, aud=BOB.did, sub=ALICE.did, cmd="/a", exp=None)
    assert Delegation.decode(bytes(d.raw)) is Delegation.decode(bytes(bytearray(d.raw)))


def test_tuples_and_policy_objects_are_accepted() -> None:
    pol = Policy.from_json([["==", ".a", [1, 2]]])
    d = delegate(ALICE, aud=BOB.did, sub=ALICE.did, cmd="/a", pol=pol, exp=None)
    assert Delegation.decode(d.raw).pol == [["==", ".a", [1, 2]]]
    inv = invoke(ALICE, sub=ALICE.did, cmd="/a", args={"a": (1, 2)}, exp=None)
    assert Invocation.decode(inv.raw).args == {"a": [1, 2]}
    assert encode(decode(inv.signed_bytes)) == inv.signed_bytes
