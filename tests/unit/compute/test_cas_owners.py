"""The provider's CAS is shared by its requesters: one may name by hash only what it stored or produced."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agora.clock import SYSTEM_CLOCK
from agora.compute.taskprep import cas_references, parse_task
from agora.compute.transfer import OWNERS, CasOwners, Uploads
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.storage import LocalCAS
from agora.store import MemoryStore
from agora.transport import MemoryNetwork
from tests.unit.compute import wat
from tests.unit.compute.harness import Provider, Requester, grant, make_requester

ALICE, BOB = Keypair.generate().did, Keypair.generate().did


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    s = MemoryStore(SYSTEM_CLOCK)
    await s.open()
    yield s
    await s.close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_owners_are_recorded_per_digest_and_others_read_as_not_stored(store: MemoryStore) -> None:
    owners = CasOwners(store)
    a, b = _sha(b"a"), _sha(b"b")
    await owners.add(ALICE, [a, a, b])
    await owners.add(BOB, [b])
    assert await owners.owns(ALICE, a) and await owners.owns(ALICE, b) and await owners.owns(BOB, b)
    assert not await owners.owns(BOB, a)
    assert (await store.get(OWNERS, b)) == {"owners": [ALICE, BOB]}
    await owners.require(BOB, [("module", b), ("in", b)])
    for what, code in (("module", "module_invalid"), ("in", "input_missing")):
        with pytest.raises(AgoraError) as err:
            await owners.require(BOB, [(what, a)])
        assert err.value.code == code
        assert "not stored" in err.value.message or "does not exist" in err.value.message
    assert await CasOwners(store).owns(ALICE, a), "ownership is in the store, not in memory"


async def test_an_upload_does_not_reveal_what_another_requester_stored(store: MemoryStore, tmp_path: Path) -> None:
    owners = CasOwners(store)
    uploads = Uploads(LocalCAS(tmp_path / "cas"), tmp_path / "parts", owners=owners)
    uploads.clear()
    data = b"0123456789"
    sha = _sha(data)
    assert await uploads.receive(ALICE, sha, 10, 0, data[:5]) == {"received": 5, "complete": 0}
    # Bob uploading the same digest at the same time: his own part, no "another upload is in progress"
    assert await uploads.receive(BOB, sha, 10, 0, data[:5]) == {"received": 5, "complete": 0}
    assert await uploads.receive(ALICE, sha, 10, 5, data[5:]) == {"received": 10, "complete": 1}
    assert await owners.owns(ALICE, sha) and not await owners.owns(BOB, sha)
    # Alice's re-upload is cut short; a newcomer's first chunk gets the same answer as for an unknown digest
    assert await uploads.receive(ALICE, sha, 10, 0, data[:5]) == {"received": 10, "complete": 1}
    carol = Keypair.generate().did
    assert await uploads.receive(carol, sha, 10, 0, data[:5]) == {"received": 5, "complete": 0}
    unknown = b"9876543210"
    assert await uploads.receive(carol, _sha(unknown), 10, 0, unknown[:5]) == {"received": 5, "complete": 0}
    # sending every byte proves possession: Bob then owns it too
    assert await uploads.receive(BOB, sha, 10, 5, data[5:]) == {"received": 10, "complete": 1}
    assert await owners.owns(BOB, sha)
    with pytest.raises(AgoraError) as err:
        await uploads.receive(carol, sha, 11, 5, data[5:])
    assert err.value.code == "invalid_argument"


async def test_uploads_without_owners_never_answer_complete_early(tmp_path: Path) -> None:
    cas = LocalCAS(tmp_path / "cas")
    uploads = Uploads(cas, tmp_path / "parts")
    uploads.clear()
    data = b"0123456789"
    await cas.put(data)
    assert await uploads.receive(ALICE, _sha(data), 10, 0, data[:5]) == {"received": 5, "complete": 0}


def test_cas_references_lists_what_a_task_names_by_hash() -> None:
    mod, blob = _sha(b"m"), _sha(b"x")
    spec = parse_task(
        {
            "name": "t",
            "engine": "wasm",
            "module": f"sha256:{mod.upper()}",
            "inputs": [
                {"name": "a", "source": {"type": "local", "path": "a"}, "path": "/inputs/a"},
                {"name": "b", "source": {"type": "local", "path": "b"}, "path": "/inputs/b"},
                {"name": "c", "source": {"type": "inline", "content": "hi"}, "path": "/inputs/c"},
            ],
        },
        "j",
    )
    assert cas_references(spec, {"b": b"sent"}, {"a": blob.upper(), "b": blob}) == [("module", mod), ("a", blob)]
    assert cas_references(spec, {}, {"a": blob}, module_sent=True) == [("a", blob)]
    with pytest.raises(AgoraError) as err:
        cas_references(spec, {}, {"a": "../../etc/passwd"})
    assert err.value.code == "invalid_argument"


async def _run(req: Requester, p: Provider, t: dict[str, Any], **extra: Any) -> dict[str, Any]:
    proofs = req.book.proofs_for(p.did, "/agora/alloc/start")
    args = {"job": "j", "job_id": "x", "task": t, **extra}
    alloc_id = (await req.runtime.call(p.did, "/agora/alloc/start", args, proofs=proofs))["alloc_id"]
    known = None
    for _ in range(100):  # long-poll: each call waits (up to 1 s) for the state to move past `known`
        args = {"alloc_id": alloc_id, "known_state": known, "wait_s": 1}
        st = await req.runtime.call(p.did, "/agora/alloc/status", args, proofs=proofs)
        if st["state"] in ("completed", "failed", "cancelled"):
            return dict(st)
        known = st["state"]
    raise AssertionError("the allocation did not end")


async def _refusal(req: Requester, p: Provider, t: dict[str, Any], **extra: Any) -> str | None:
    """The error code a start gets, refused at once or recorded as the failed allocation's; None if it ran."""
    try:
        st = await _run(req, p, t, **extra)
    except AgoraError as e:
        return e.code
    return str(st["error"]["code"]) if st["state"] == "failed" else None


async def test_bob_cannot_stage_alices_output(
    net: MemoryNetwork, provider: Provider, requester: Requester, tmp_path: Path
) -> None:
    """The reviewer's scenario: Alice's output hash is in her receipt; Bob names it as his input or module."""
    alice, p = requester, provider
    bob = await make_requester(net, tmp_path / "bob")
    try:
        await grant(p, alice)
        await grant(p, bob)
        mod = wat.hello(content="alice's private result\n")
        out = {"name": "o", "path": "/outputs"}
        st = await _run(
            alice,
            p,
            {"name": "t", "engine": "wasm", "module": f"sha256:{_sha(mod)}", "outputs": [out]},
            module_bytes=mod,
        )
        assert st["state"] == "completed", st
        secret = next(o["sha256"] for o in st["outputs"] if o["path"] == "hello.txt")
        cat = wat.cat_input("in")
        inp = {"name": "in", "source": {"type": "local", "path": "x"}, "path": "/inputs/in"}
        t = {"name": "t", "engine": "wasm", "module": f"sha256:{_sha(cat)}", "inputs": [inp], "outputs": [out]}
        assert await _refusal(bob, p, t, module_bytes=cat, input_refs={"in": secret}) == "input_missing"
        # nor as a module: Alice's module, sent as bytes, is hers
        assert await _refusal(bob, p, {"name": "t", "engine": "wasm", "module": f"sha256:{_sha(mod)}"}) == (
            "module_invalid"
        )
        # Alice herself may use her output as an input
        st = await _run(alice, p, t, module_bytes=cat, input_refs={"in": secret})
        assert st["state"] == "completed", st
    finally:
        await bob.runner.stop()
        await bob.runtime.transport.close()
        await bob.store.close()
