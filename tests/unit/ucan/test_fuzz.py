"""Hostile bytes: whatever arrives, decoding and validation raise AgoraError and nothing else."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.ucan import Delegation, Invocation, delegate, invoke, open_envelope, validate_invocation

from .conftest import NOW

ALICE, BOB = Keypair.from_seed(b"\x01" * 32), Keypair.from_seed(b"\x02" * 32)
ROOT = delegate(ALICE, aud=BOB.did, sub=ALICE.did, cmd="/agora", pol=[["any", ".t", ["like", ".", "a*"]]], exp=NOW + 60)
INV = invoke(BOB, sub=ALICE.did, cmd="/agora/x", args={"t": ["ab", 1], "n": 1.5}, prf=[ROOT.cid], exp=NOW + 60)
PROOFS = {ROOT.cid: ROOT}
SEEDS = [INV.raw, ROOT.raw]


def _attempt(data: bytes) -> str:
    """Decode `data` as either token and validate; the outcome, or the AgoraError code."""
    try:
        open_envelope(data)
    except AgoraError:
        pass
    try:
        d = Delegation.decode(data)
        inv = invoke(BOB, sub=ALICE.did, cmd="/agora/x", args={"t": ["a"]}, prf=[d.cid], exp=NOW + 60)
        validate_invocation(inv, {d.cid: d}, now=NOW)
    except AgoraError:
        pass
    try:
        validate_invocation(Invocation.decode(data), PROOFS, now=NOW)
        return "ok"
    except AgoraError as exc:
        return exc.code


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    assert _attempt(data) != "ok"


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, 10_000), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 8)),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.lists(mutation, min_size=1, max_size=4))
def test_mutated_tokens(seed: bytes, ops: list[tuple[str, int, int]]) -> None:
    data = bytearray(seed)
    for op, at, x in ops:
        at %= max(len(data), 1)
        if op == "flip" and data:
            data[at] ^= 1 << x
        elif op == "set" and data:
            data[at] = x
        elif op == "insert":
            data.insert(at, x)
        elif op == "delete":
            del data[at : at + x]
    outcome = _attempt(bytes(data))
    if bytes(data) != INV.raw:
        assert outcome != "ok"


def test_the_unmutated_seed_does_validate() -> None:
    assert _attempt(INV.raw) == "ok"  # proves the fuzz tests would notice a pass
