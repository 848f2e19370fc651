"""Dispatch: every message is checked before a handler runs; every answer is a signed receipt."""

from __future__ import annotations

import pytest

from agora.codec import decode, encode
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.ucan import delegate, invoke
from agora.wire import Receipt, Request
from tests.unit.actor.conftest import Pair


async def _send(pair: Pair, data: bytes) -> Receipt:
    reply = await pair.client.transport.request(pair.server.did, data, 2.0)
    return Receipt.decode(reply, expected_issuer=pair.server.did)


async def _still_serving(pair: Pair) -> None:
    assert (await pair.client.call(pair.server.did, "/agora/test/echo", {"n": 1}))["args"] == {"n": 1}


async def test_public_call_roundtrip(pair: Pair) -> None:
    result = await pair.client.call(pair.server.did, "/agora/test/echo", {"hello": "world"})
    assert result == {"args": {"hello": "world"}, "from": pair.client_key.did}
    assert pair.metrics.inbound["request"] == 1


async def test_local_call_goes_through_the_same_checks(pair: Pair) -> None:
    result = await pair.server.call(pair.server.did, "/agora/test/secret", {})
    assert result["secret"] == 42  # the node invoking itself has authority over itself


async def _expect(pair: Pair, data: bytes, code: str) -> Receipt:
    before = pair.actor.calls
    receipt = await _send(pair, data)
    assert receipt.error is not None, "the message was accepted"
    assert receipt.error.code == code
    assert pair.actor.calls == before, "a handler ran for a refused message"
    assert pair.metrics.rejects.get(code, 0) >= 1
    await _still_serving(pair)
    return receipt


async def test_malformed_cbor(pair: Pair) -> None:
    await _expect(pair, b"\x1cgarbage", "cbor_malformed")


async def test_truncated(pair: Pair) -> None:
    data = pair.client.build_request(pair.server.did, "/agora/test/echo", {}).encode()
    await _expect(pair, data[:-7], "cbor_malformed")


async def test_flipped_bit_in_signature(pair: Pair) -> None:
    req = pair.client.build_request(pair.server.did, "/agora/test/echo", {})
    data = bytearray(req.encode())
    data[data.find(req.invocation.raw) + 10] ^= 0x04
    await _expect(pair, bytes(data), "ucan_signature_invalid")


async def test_flipped_bit_in_payload_never_passes(pair: Pair) -> None:
    req = pair.client.build_request(pair.server.did, "/agora/test/echo", {"amount": 5})
    data = req.encode()
    start = data.find(req.invocation.raw)
    for offset in range(70, len(req.invocation.raw), 7):
        mutated = bytearray(data)
        mutated[start + offset] ^= 0x01
        receipt = await _send(pair, bytes(mutated))
        assert receipt.error is not None, f"bit flip at {offset} was accepted"
    assert pair.actor.calls == 0


async def test_token_signed_by_someone_else(pair: Pair) -> None:
    # mallory signs an invocation that claims the client as its issuer
    mallory = Keypair.generate()
    req = pair.client.build_request(pair.server.did, "/agora/test/echo", {})
    forged_sig = mallory.sign(req.invocation.raw[67:])
    raw = req.invocation.raw[:3] + forged_sig + req.invocation.raw[67:]
    data = encode({"t": "agora/req@1", "inv": raw, "dlg": []})
    await _expect(pair, data, "ucan_signature_invalid")


async def test_expired(pair: Pair) -> None:
    data = pair.client.build_request(pair.server.did, "/agora/test/echo", {}).encode()
    pair.clock.advance(300 + 61)
    await _expect(pair, data, "ucan_expired")


async def test_not_yet_valid_delegation(pair: Pair) -> None:
    now = int(pair.clock.now())
    dlg = delegate(
        pair.server_key,
        aud=pair.client_key.did,
        sub=pair.server_key.did,
        cmd="/agora/test",
        exp=now + 3600,
        nbf=now + 600,
    )
    req = pair.client.build_request(pair.server.did, "/agora/test/secret", {}, proofs=[dlg])
    await _expect(pair, req.encode(), "ucan_not_yet_valid")


async def test_replayed(pair: Pair) -> None:
    data = pair.client.build_request(pair.server.did, "/agora/test/echo", {}).encode()
    assert (await _send(pair, data)).is_ok
    await _expect(pair, data, "ucan_replayed")


async def test_wrong_audience(pair: Pair) -> None:
    other = Keypair.generate().did
    req = pair.client.build_request(other, "/agora/test/echo", {})  # addressed to someone else
    await _expect(pair, req.encode(), "ucan_audience_mismatch")


async def test_protected_command_without_delegation(pair: Pair) -> None:
    await _expect(
        pair, pair.client.build_request(pair.server.did, "/agora/test/secret", {}).encode(), "ucan_unauthorized"
    )


async def test_protected_command_with_delegation(pair: Pair) -> None:
    now = int(pair.clock.now())
    dlg = delegate(pair.server_key, aud=pair.client_key.did, sub=pair.server_key.did, cmd="/agora/test", exp=now + 60)
    assert (await pair.client.call(pair.server.did, "/agora/test/secret", {}, proofs=[dlg]))["secret"] == 42


async def test_command_outside_the_delegated_one(pair: Pair) -> None:
    now = int(pair.clock.now())
    dlg = delegate(
        pair.server_key, aud=pair.client_key.did, sub=pair.server_key.did, cmd="/agora/test/echo", exp=now + 60
    )
    req = pair.client.build_request(pair.server.did, "/agora/test/secret", {}, proofs=[dlg])
    await _expect(pair, req.encode(), "ucan_command_not_delegated")


async def test_policy_violation(pair: Pair) -> None:
    now = int(pair.clock.now())
    dlg = delegate(
        pair.server_key,
        aud=pair.client_key.did,
        sub=pair.server_key.did,
        cmd="/agora/test",
        exp=now + 60,
        pol=[["<=", ".amount", 100]],
    )
    ok = await pair.client.call(pair.server.did, "/agora/test/secret", {"amount": 100}, proofs=[dlg])
    assert ok["amount"] == 100
    req = pair.client.build_request(pair.server.did, "/agora/test/secret", {"amount": 101}, proofs=[dlg])
    await _expect(pair, req.encode(), "ucan_policy_violation")


async def test_delegation_from_a_stranger_does_not_give_authority(pair: Pair) -> None:
    now = int(pair.clock.now())
    stranger = Keypair.generate()
    dlg = delegate(stranger, aud=pair.client_key.did, sub=pair.server_key.did, cmd="/agora", exp=now + 60)
    req = pair.client.build_request(pair.server.did, "/agora/test/secret", {}, proofs=[dlg])
    receipt = await _send(pair, req.encode())
    assert receipt.error is not None and receipt.error.code == "ucan_invalid_claim"
    assert pair.actor.calls == 0


async def test_unknown_command(pair: Pair) -> None:
    await _expect(pair, pair.client.build_request(pair.server.did, "/agora/test/nope", {}).encode(), "unknown_command")


async def test_oversized_message(pair: Pair) -> None:
    big = pair.client.build_request(pair.server.did, "/agora/test/echo", {"blob": b"x" * (1024 * 1024)}).encode()
    receipt = Receipt.decode(await pair.server.handle(big), expected_issuer=pair.server.did)
    assert receipt.error is not None and receipt.error.code == "message_too_large"
    assert pair.metrics.rejects["message_too_large"] == 1


async def test_missing_proof(pair: Pair) -> None:
    now = int(pair.clock.now())
    dlg = delegate(pair.server_key, aud=pair.client_key.did, sub=pair.server_key.did, cmd="/agora/test", exp=now + 60)
    inv = invoke(
        pair.client_key,
        sub=pair.server.did,
        aud=pair.server.did,
        cmd="/agora/test/secret",
        args={},
        prf=[dlg.cid],
        exp=now + 60,
        iat=now,
    )
    await _expect(pair, Request(inv, ()).encode(), "ucan_proof_missing")


async def test_handler_errors_are_data(pair: Pair) -> None:
    with pytest.raises(AgoraError) as err:
        await pair.client.call(pair.server.did, "/agora/test/boom", {})
    assert err.value.code == "handler_failed" and "kaboom" in err.value.message
    with pytest.raises(AgoraError) as err:
        await pair.client.call(pair.server.did, "/agora/test/refuse", {})
    assert err.value.code == "not_found"
    with pytest.raises(AgoraError) as err:
        await pair.client.call(pair.server.did, "/agora/test/unsendable", {})
    assert err.value.code == "handler_failed"
    await _still_serving(pair)


async def test_receipt_from_the_wrong_node_is_refused(pair: Pair) -> None:
    req = pair.client.build_request(pair.server.did, "/agora/test/echo", {})
    reply = await pair.server.handle(req.encode())
    with pytest.raises(AgoraError) as err:
        Receipt.decode(reply, expected_issuer=pair.client_key.did)
    assert err.value.code == "receipt_invalid"
    assert decode(reply)[1]["agora/rcpt@1.0.0"]["ran"] == req.invocation.cid


async def test_peer_unreachable(pair: Pair) -> None:
    with pytest.raises(AgoraError) as err:
        await pair.client.call(Keypair.generate().did, "/agora/test/echo", {}, timeout=0.5)
    assert err.value.code == "peer_unreachable"


async def test_refused_messages_cost_no_replay_cache_entry(pair: Pair) -> None:
    """Unknown commands and invocations without authority are refused before the chain is checked, so a
    stranger cannot fill the replay cache (or make the node evaluate policies) with them."""
    before = len(pair.server.replay)
    for _ in range(20):
        await _send(pair, pair.client.build_request(pair.server.did, "/agora/test/nope", {}).encode())
        await _send(pair, pair.client.build_request(pair.server.did, "/agora/test/secret", {}).encode())
    assert len(pair.server.replay) == before
    await _still_serving(pair)
    assert len(pair.server.replay) == before + 1


async def test_public_behaviors_take_no_proofs(pair: Pair) -> None:
    # a chain the caller issued to itself (sub = iss = caller) with a heavy policy: refused before evaluation
    now = int(pair.clock.now())
    me = pair.client_key
    dlg = delegate(me, aud=me.did, sub=me.did, cmd="/agora/test", exp=now + 60, pol=[["all", ".xs", ["==", ".", 1]]])
    req = pair.client.build_request(pair.server.did, "/agora/test/echo", {"xs": [1] * 1000}, proofs=[dlg], sub=me.did)
    await _expect(pair, req.encode(), "ucan_invalid_claim")


async def test_invocations_living_too_long_are_refused(pair: Pair) -> None:
    now = int(pair.clock.now())
    inv = invoke(
        pair.client_key,
        sub=pair.client_key.did,
        aud=pair.server.did,
        cmd="/agora/test/echo",
        args={},
        exp=now + 3600,
        iat=now,
    )
    await _expect(pair, Request(inv, ()).encode(), "ucan_lifetime_invalid")


async def test_invocations_from_before_the_node_started_are_refused(pair: Pair) -> None:
    """The replay cache is in memory: what was issued before this runtime started may have been seen by the
    previous one, so it is refused (and so is an invocation without iat)."""
    now = int(pair.clock.now())
    old = invoke(
        pair.client_key,
        sub=pair.client_key.did,
        aud=pair.server.did,
        cmd="/agora/test/echo",
        args={},
        exp=now + 200,
        iat=now - 120,
    )
    await _expect(pair, Request(old, ()).encode(), "ucan_replayed")
    no_iat = invoke(
        pair.client_key, sub=pair.client_key.did, aud=pair.server.did, cmd="/agora/test/echo", args={}, exp=now + 200
    )
    await _expect(pair, Request(no_iat, ()).encode(), "ucan_replayed")
