"""Random bytes and mutated valid messages: no exception escapes, every reply is a well-formed receipt."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agora.actor import Runtime
from agora.clock import ManualClock
from agora.identity import Keypair
from agora.transport import MemoryNetwork, MemoryTransport
from agora.ucan import delegate
from agora.wire import Receipt
from tests.unit.actor.conftest import Echo

CLOCK = ManualClock(start=1_800_000_000)
SERVER_KEY, CLIENT_KEY = Keypair.generate(), Keypair.generate()
_net = MemoryNetwork()
SERVER = Runtime(SERVER_KEY, MemoryTransport(_net, SERVER_KEY.did), clock=CLOCK)
SERVER.register(Echo())
CLIENT = Runtime(CLIENT_KEY, MemoryTransport(_net, CLIENT_KEY.did), clock=CLOCK)
DLG = delegate(
    SERVER_KEY, aud=CLIENT_KEY.did, sub=SERVER_KEY.did, cmd="/agora/test", exp=1_900_000_000, pol=[["<", ".amount", 10]]
)
VALID = [
    CLIENT.build_request(SERVER_KEY.did, "/agora/test/echo", {"a": [1, 2, {"b": b"x"}]}).encode(),
    CLIENT.build_request(SERVER_KEY.did, "/agora/test/secret", {"amount": 3}, proofs=[DLG]).encode(),
]


def _check(data: bytes) -> Receipt:
    reply = asyncio.run(SERVER.handle(data))
    receipt = Receipt.decode(reply, expected_issuer=SERVER_KEY.did)  # raises if not a well-formed, signed receipt
    if receipt.error is not None:
        assert receipt.error.code != "internal", receipt.error.message
    return receipt


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    receipt = _check(data)
    assert receipt.error is not None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID), st.data())
def test_mutated_valid_messages(valid: bytes, data: st.DataObject) -> None:
    mutated = bytearray(valid)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        pos = data.draw(st.integers(0, max(0, len(mutated) - 1)))
        if kind == "flip" and mutated:
            mutated[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "cut":
            del mutated[pos:]
        elif kind == "insert":
            mutated[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
        elif mutated:
            del mutated[pos]
    receipt = _check(bytes(mutated))
    if bytes(mutated) != valid:
        # a changed message may only pass if the change did not touch anything signed (it cannot)
        assert receipt.error is not None
