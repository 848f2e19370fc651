"""The hub's ledger service and `RemoteSettlement` on the memory transport: the Settlement conformance suite
over signed RPC, who may do what (the signer is the actor), failover between hubs, and a hub that lies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from agora.actor import Actor, AdmissionSettings, CallContext, Runtime, behavior
from agora.clock import ManualClock
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.ledger import Ledger, MemoryJournalStore
from agora.ledger.remote import RemoteSettlement
from agora.ledger.service import LedgerService
from agora.transport import MemoryNetwork, MemoryTransport
from agora.wire import ledger as wl
from tests.unit.ledger.remote_support import Routed
from tests.unit.ledger.settlement_conformance import (
    OPERATOR,
    PAYEE,
    PAYER,
    STRANGER,
    OpenStore,
    SettlementConformance,
    raises,
)

HUB = Keypair.generate()


def shared_memory_journal() -> OpenStore:
    shared = MemoryJournalStore()

    class Handle(MemoryJournalStore):
        def __init__(self) -> None:
            super().__init__()
            self._rows = shared._rows

    return Handle


@dataclass
class World:
    net: MemoryNetwork
    transports: list[MemoryTransport] = field(default_factory=list)
    runtimes: dict[str, Runtime] = field(default_factory=dict)

    async def runtime(self, key: Keypair, *actors: Actor, limits: AdmissionSettings | None = None) -> Runtime:
        """The node of `key` (started on first use), with `actors` registered."""
        if key.did in self.runtimes:
            for a in actors:
                self.runtimes[key.did].register(a)
            return self.runtimes[key.did]
        t = MemoryTransport(self.net, key.did)
        await t.start()
        self.transports.append(t)
        rt = Runtime(key, t, limits=limits)
        for a in actors:
            rt.register(a)
        await rt.start()
        self.runtimes[key.did] = rt
        return rt

    async def close(self) -> None:
        for t in reversed(self.transports):
            await t.close()


@pytest.fixture
async def world() -> AsyncIterator[World]:
    w = World(MemoryNetwork())
    yield w
    await w.close()


async def hub_service(world: World, open_store: OpenStore, key: Keypair = HUB) -> LedgerService:
    service = LedgerService(Ledger(open_store(), clock=ManualClock()), key.did, operators=(OPERATOR.did,))
    await world.runtime(key, service)
    return service


class TestRemoteSettlementOnMemoryTransport(SettlementConformance):
    @pytest.fixture
    def open_store(self) -> OpenStore:
        return shared_memory_journal()

    @pytest.fixture
    async def settle(self, open_store: OpenStore, world: World) -> AsyncIterator[Routed]:  # type: ignore[override]
        service = await hub_service(world, open_store)
        clients = {}
        for key in (OPERATOR, PAYER, PAYEE, STRANGER):
            clients[key.did] = RemoteSettlement(await world.runtime(key), [HUB.did], timeout=2.0)
        yield Routed(clients, PAYER.did, service.ledger)
        await service.ledger.close()


@pytest.fixture
async def hub(world: World) -> LedgerService:
    return await hub_service(world, shared_memory_journal())


async def client(world: World, key: Keypair, hubs: Any = None, **kw: Any) -> RemoteSettlement:
    return RemoteSettlement(await world.runtime(key), [HUB.did] if hubs is None else hubs, timeout=1.0, **kw)


async def test_the_hub_acts_as_the_signer_never_as_a_did_named_in_the_request(world: World, hub: LedgerService) -> None:
    payer, stranger = await client(world, PAYER), await client(world, Keypair.generate())
    operator = await client(world, OPERATOR)
    await operator.mint(PAYER.did, 100, actor=OPERATOR.did, idem="fund")
    # a client refuses to speak for another DID before anything is sent
    await raises("ledger_unauthorized", stranger.transfer(PAYER.did, stranger.did, 10, actor=PAYER.did, idem="x"))
    # on the wire the request has no actor: the hub takes the signer's DID, who does not own the payer's wallet
    await raises("ledger_unauthorized", stranger.transfer(PAYER.did, stranger.did, 10, actor=stranger.did, idem="y"))
    args = {**wl.to_args(wl.TransferArgs(PAYER.did, stranger.did, 10, "z")), "actor": PAYER.did}
    await raises("invalid_argument", stranger._runtime.call(HUB.did, wl.TRANSFER, args))
    await raises("ledger_unauthorized", stranger.lock("c", PAYER.did, stranger.did, 10, actor=stranger.did, idem="l"))
    assert await payer.balance(PAYER.did) == 100 and await payer.balance(stranger.did) == 0
    entry = await payer.transfer(PAYER.did, stranger.did, 10, actor=PAYER.did, idem="pay")
    assert entry.actor == PAYER.did and await stranger.balance(stranger.did) == 10


async def test_only_the_hub_and_its_operators_mint(world: World, hub: LedgerService) -> None:
    member = await client(world, PAYER)
    err = await raises("ledger_unauthorized", member.mint(PAYER.did, 5, actor=PAYER.did, idem="m"))
    assert "operator" in err.message
    as_hub = await client(world, HUB)  # the hub node's own DID is an operator
    assert (await as_hub.mint(PAYER.did, 7, actor=HUB.did, idem="m1")).actor == HUB.did
    info = await member.info()
    assert (info.hub, info.operators, info.head) == (HUB.did, (HUB.did, OPERATOR.did), 1)
    assert await member.balance(PAYER.did) == 7


async def test_a_call_fails_over_to_the_next_hub_and_a_retried_write_lands_once(world: World) -> None:
    journal = shared_memory_journal()
    second = Keypair.generate()
    await hub_service(world, journal)
    await hub_service(world, journal, second)  # a second hub on the same journal
    gone = Keypair.generate().did  # nobody serves it
    op = await client(world, OPERATOR, [gone, second.did, HUB.did])
    first = await op.mint(PAYER.did, 50, actor=OPERATOR.did, idem="m")
    again = await (await client(world, Keypair.generate(), [HUB.did])).entries()
    assert again == [first]
    # the same key again, through the other hub: the first entry, nothing new
    op2 = RemoteSettlement(op._runtime, [HUB.did], timeout=1.0)
    assert await op2.mint(PAYER.did, 50, actor=OPERATOR.did, idem="m") == first
    assert await op2.balance(PAYER.did) == 50


async def test_no_ledger_hub_is_ledger_unavailable_after_bounded_rounds(world: World) -> None:
    none = await client(world, PAYER, [])
    await raises("ledger_unavailable", none.balance(PAYER.did))
    dead = await client(world, Keypair.generate(), [Keypair.generate().did], rounds=2, backoff=0.01)
    err = await raises("ledger_unavailable", dead.balance(PAYER.did))
    assert err.details["last_code"] == "peer_unreachable"


async def test_a_hub_that_says_slow_down_is_asked_again_after_a_backoff(world: World) -> None:
    # one call in the bucket, refilled every 10 ms: the client's back-off (20 ms, 40 ms, ...) outlasts a refill
    tight = AdmissionSettings(public_rate=100.0, public_burst=1.0)
    service = LedgerService(Ledger(MemoryJournalStore(), clock=ManualClock()), HUB.did, operators=(OPERATOR.did,))
    await world.runtime(HUB, service, limits=tight)
    op = await client(world, OPERATOR, rounds=6, backoff=0.02)
    entries = [await op.mint(PAYER.did, 1, actor=OPERATOR.did, idem=f"m{i}") for i in range(4)]
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert await op.balance(PAYER.did) == 4


class Liar(Actor):
    """A hub that edits what it serves: one entry's memo changed after the fact, or entries left out."""

    def __init__(self, real: LedgerService, mode: str) -> None:
        self.real, self.mode = real, mode

    @behavior(wl.ENTRIES, public=True, mutating=False)
    async def entries(self, ctx: CallContext) -> Any:
        reply = wl.EntriesReply.from_wire(await self.real.entries(ctx))
        if self.mode == "none":  # nothing at all, while naming the head
            return wl.EntriesReply((), reply.head).to_wire()
        if self.mode == "drop":  # never the newest entry
            return wl.EntriesReply(
                reply.entries[: reply.head - 1 - wl.read_args(wl.EntriesArgs, ctx.args).since], reply.head
            ).to_wire()
        from agora.codec import decode, encode

        d = decode(reply.entries[0])
        d["memo"] = "edited"
        return wl.EntriesReply((encode(d), *reply.entries[1:]), reply.head).to_wire()

    @behavior(wl.MINT, public=True, mutating=False)
    async def mint(self, ctx: CallContext) -> Any:
        return await self.real.mint(ctx)


@pytest.mark.parametrize("mode", ["edit", "drop", "none"])
async def test_a_node_checks_what_the_hub_serves(world: World, mode: str) -> None:
    real = LedgerService(Ledger(MemoryJournalStore(), clock=ManualClock()), HUB.did, operators=(OPERATOR.did,))
    liar = Keypair.generate()
    await world.runtime(liar, Liar(real, mode))
    op = await client(world, OPERATOR, [liar.did])
    for i in range(3):
        await op.mint(PAYER.did, 10, actor=OPERATOR.did, idem=f"m{i}")
    if mode == "edit":
        err = await raises("ledger_corrupt", op.entries())
        assert err.details["seq"] == 1
    else:
        report = await op.verify()
        assert not report.ok and report.first_bad_seq == (3 if mode == "drop" else 1)
        assert "head 3" in report.problems[-1][1]


def test_requests_are_checked_field_by_field() -> None:
    ok = wl.read_args(wl.TransferArgs, wl.to_args(wl.TransferArgs("a", "b", 5, "k")))
    assert ok == wl.TransferArgs("a", "b", 5, "k", "")
    bad: list[tuple[type[Any], dict[str, Any], str]] = [
        (wl.TransferArgs, {"src": "a", "dst": "b", "amount": "5", "idem": "k"}, "amount"),
        (wl.TransferArgs, {"src": "a", "dst": "b", "amount": True, "idem": "k"}, "amount"),
        (wl.TransferArgs, {"src": "a", "dst": "b", "idem": "k"}, "amount"),
        (wl.TransferArgs, {"src": "a", "dst": "b", "amount": 5, "idem": "k", "actor": "did:key:x"}, "actor"),
        (wl.TransferArgs, {"v": 2, "src": "a", "dst": "b", "amount": 5, "idem": "k"}, "version"),
        (wl.ReleaseArgs, {"contract": "c", "metering_receipt": "not bytes", "idem": "k"}, "metering_receipt"),
        (wl.SlashArgs, {"did": "d", "amount": 1, "evidence": "cid", "to": "t", "idem": "k"}, "evidence"),
        (wl.EntriesArgs, {"account": 5}, "account"),
        (wl.BalanceArgs, {"account": "x" * 5000}, "account"),
    ]
    for cls, args, word in bad:
        with pytest.raises(AgoraError) as raised:
            wl.read_args(cls, args)
        assert raised.value.code == "invalid_argument" and word in raised.value.message, (args, raised.value)
    assert wl.read_args(wl.EntriesArgs, {"account": None}) == wl.EntriesArgs()
    assert wl.read_args(
        wl.SlashArgs, {"did": "d", "amount": 1, "evidence": ["c"], "to": "t", "idem": "k"}
    ).evidence == ("c",)


def test_replies_in_the_wrong_shape_are_receipt_invalid() -> None:
    for read, reply in [
        (wl.read_entry_reply, {"entry": "text"}),
        (wl.BalanceReply.from_wire, {"account": "a", "balance": 1.5}),
        (wl.EntriesReply.from_wire, {"entries": ["x"], "head": 1}),
        (wl.read_escrow_reply, {"escrow": {"contract": "c"}}),
        (wl.VerifyReply.from_wire, {"ok": True}),
        (wl.InfoReply.from_wire, {"v": 2, "hub": "h", "operators": [], "head": 0}),
    ]:
        with pytest.raises(AgoraError) as raised:
            read(reply)  # type: ignore[operator]
        assert raised.value.code == "receipt_invalid", reply


async def test_a_node_that_has_not_heard_its_hub_yet_waits_for_the_announcement(
    world: World, hub: LedgerService
) -> None:
    """Just joined: discovery has not brought the hub's announcement yet; the call waits for it (bounded)."""
    asked = 0

    def source() -> list[str]:
        nonlocal asked
        asked += 1
        return [HUB.did] if asked > 3 else []  # the announcement arrives while the call waits

    operator = await client(world, OPERATOR)
    await operator.mint(PAYER.did, 100, actor=OPERATOR.did, idem="fund")
    late = await client(world, PAYER, source)
    assert await late.balance(PAYER.did) == 100 and asked > 3


async def test_a_refusal_reached_only_by_failing_over_waits_for_the_hub_that_failed(world: World) -> None:
    """A hub node mints through itself first; while its own service is not answering yet the call fails over
    to another hub that does not count it as an operator. That refusal is not the answer: the first hub is
    asked again in the next round (a cluster just started, its stream not ready yet)."""
    await hub_service(world, shared_memory_journal())
    other = Keypair.generate()
    strict = LedgerService(Ledger(shared_memory_journal()(), clock=ManualClock()), other.did, operators=())
    await world.runtime(other, strict)
    rounds = 0

    def source() -> list[str]:
        nonlocal rounds
        rounds += 1
        first = Keypair.generate().did if rounds == 1 else HUB.did  # round 1: the first hub does not answer
        return [first, other.did]

    operator = await client(world, OPERATOR, source, rounds=3, backoff=0.01)
    entry = await operator.mint(PAYER.did, 100, actor=OPERATOR.did, idem="fund")
    assert entry.kind == "mint" and rounds >= 2
    plain = await client(world, PAYER, [other.did])  # asked directly, the refusal is the answer at once
    await raises("ledger_unauthorized", plain.mint(PAYER.did, 1, actor=PAYER.did, idem="x"))
