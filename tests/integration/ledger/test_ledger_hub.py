"""The hub's ledger over real NATS: the Settlement conformance suite through `RemoteSettlement` on one hub, a
3-hub cluster that loses a hub mid-stream (no entry lost, no double spend, the chain verifies), and real
nodes: the hub node serves the ledger, members find it from its announcement, only operators mint, and a
node moves only its own money."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from agora.actor import Runtime
from agora.clock import ManualClock
from agora.discovery import Change
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.ledger import Ledger, wallet
from agora.ledger.journal_jetstream import JetStreamJournalStore
from agora.ledger.remote import RemoteSettlement
from agora.ledger.service import LedgerService, LedgerSettings
from agora.node import HubSettings, Node, NodeConfig
from agora.node.ledger import ledger_of
from agora.transport import ClusterConfig, HubProcess, NatsTransport, ReconnectPolicy, routes_for
from tests.integration.transport.conftest import HubFactory
from tests.support import free_port
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

pytestmark = pytest.mark.integration

DEADLINE = 60.0
FAST = ReconnectPolicy(min_wait=0.02, max_wait=0.2)

Start = Callable[..., Awaitable[Runtime]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """`await start(urls, key, *actors)`: a runtime on a started NATS transport (all closed at the end)."""
    made: list[NatsTransport] = []

    async def make(urls: list[str], key: Keypair, *actors: object) -> Runtime:
        t = NatsTransport(key.did, urls, keypair=key, reconnect=FAST)
        await t.start()
        made.append(t)
        rt = Runtime(key, t)
        for a in actors:
            rt.register(a)  # type: ignore[arg-type]
        await rt.start()
        return rt

    yield make
    for t in reversed(made):
        await t.close()


def journal_of(rt: Runtime, **kw: object) -> JetStreamJournalStore:
    assert isinstance(rt.transport, NatsTransport)
    return JetStreamJournalStore(rt.transport.nats_client, timeout=2.0, **kw)  # type: ignore[arg-type]


class TestRemoteSettlementOnOneHub(SettlementConformance):
    @pytest.fixture
    async def hub_rt(self, hub: HubProcess, start: Start) -> Runtime:
        return await start([hub.url], Keypair.generate())

    @pytest.fixture
    def open_store(self, hub_rt: Runtime) -> OpenStore:
        return lambda: journal_of(hub_rt)

    @pytest.fixture
    async def settle(  # type: ignore[override]
        self, open_store: OpenStore, hub: HubProcess, hub_rt: Runtime, start: Start
    ) -> AsyncIterator[Routed]:
        service = LedgerService(Ledger(open_store(), clock=ManualClock()), hub_rt.did, operators=(OPERATOR.did,))
        hub_rt.register(service)
        clients = {}
        for key in (OPERATOR, PAYER, PAYEE, STRANGER):
            clients[key.did] = RemoteSettlement(await start([hub.url], key), [hub_rt.did], timeout=5.0)
        yield Routed(clients, PAYER.did, service.ledger)
        await service.ledger.close()


async def test_a_three_hub_cluster_loses_a_hub_mid_stream_and_loses_no_entry_nor_spends_twice(
    hub_factory: HubFactory, start: Start
) -> None:
    services = [Keypair.generate() for _ in range(3)]
    members = (OPERATOR, PAYER, PAYEE, STRANGER)
    ports = [free_port() for _ in range(3)]
    routes = routes_for([f"nats://127.0.0.1:{p}" for p in ports])
    admins = tuple(k.did for k in services)
    hubs = [
        await hub_factory(
            allowed_dids=admins + tuple(k.did for k in members),
            admin_dids=admins,
            cluster=ClusterConfig(name="bank", port=p, routes=routes),
        )
        for p in ports
    ]
    for h in hubs:
        await h.market_ready(DEADLINE)
    urls = [h.url for h in hubs]
    ledgers = []
    for h, key in zip(hubs, services, strict=True):  # each hub node serves the ledger from its own hub
        rt = await start([h.url], key)
        service = LedgerService(Ledger(journal_of(rt, create=False), clock=ManualClock()), key.did, (OPERATOR.did,))
        rt.register(service)
        ledgers.append(service.ledger)
    order = [k.did for k in services]

    def remote(rt: Runtime, hubs: list[str] | None = None) -> RemoteSettlement:
        return RemoteSettlement(rt, hubs or order, timeout=2.0, rounds=6, backoff=0.2)

    op = remote(await start(urls, OPERATOR))
    payer_rt = await start(urls, PAYER)  # dials the first hub: the one that dies
    payer = remote(payer_rt)
    await op.mint(PAYER.did, 1000, actor=OPERATOR.did, idem="fund")

    count, kill_after = 20, 5
    halfway = asyncio.Event()

    async def spend() -> None:
        for i in range(count):
            await payer.transfer(PAYER.did, PAYEE.did, 10, actor=PAYER.did, idem=f"t{i}")
            if i + 1 == kill_after:
                halfway.set()

    async with asyncio.timeout(DEADLINE):
        writer = asyncio.create_task(spend())
        try:
            await halfway.wait()
            hubs[0].kill_now()  # SIGKILL, mid-stream: the first hub and the ledger service on it are gone
        finally:
            await writer  # every transfer lands (failing over), or the test fails here

        # no entry lost, none twice
        entries = await payer.entries()
        transfers = [e.idem for e in entries if e.kind == "transfer"]
        assert sorted(transfers) == sorted(f"t{i}" for i in range(count))
        assert [e.seq for e in entries] == list(range(1, count + 2))
        assert (await payer.balance(PAYER.did), await payer.balance(PAYEE.did)) == (800, 200)

        # no double spend: the payer's whole balance, spent twice at once through two different hubs
        via = [remote(payer_rt, [order[1]]), remote(payer_rt, [order[2]])]
        results = await asyncio.gather(
            via[0].transfer(PAYER.did, PAYEE.did, 800, actor=PAYER.did, idem="all-1"),
            via[1].transfer(PAYER.did, STRANGER.did, 800, actor=PAYER.did, idem="all-2"),
            return_exceptions=True,
        )
        won = [r for r in results if not isinstance(r, BaseException)]
        lost = [r for r in results if isinstance(r, AgoraError) and r.code == "insufficient_funds"]
        assert (len(won), len(lost)) == (1, 1), results
        assert await payer.balance(PAYER.did) == 0
        assert await payer.balance(PAYEE.did) + await payer.balance(STRANGER.did) == 1000

        report = await payer.verify()  # the node fetches the whole chain and walks it itself
        assert report.ok, report.problems
        assert report.entries == count + 2 and sum(report.balances.values()) == 0
        hub_report = await payer.hub_verify()
        assert hub_report.ok and hub_report.last_id == report.last_id
    for ledger in ledgers:
        await ledger.close()


# -- real nodes ---------------------------------------------------------------------------------------


def node_config(home: Path, **kw: object) -> NodeConfig:
    base = {"api_port": 0, "benchmark": "off", "announce_interval": 0.2, "lost_after": 1.0, "expire_after": 5.0}
    return NodeConfig(home=home, **{**base, **kw})  # type: ignore[arg-type]


@pytest.fixture
async def nodes() -> AsyncIterator[list[Node]]:
    started: list[Node] = []
    yield started
    for node in reversed(started):
        if node.started_at is not None:
            await node.stop()


async def knows_its_ledger_hub(node: Node, hub: str) -> None:
    """Wait (bounded) until `node` has heard `hub` announce the ledger: the peer table shows a change only
    after its listeners ran, so each change (and the first look) is followed by a look at the table."""
    changed = asyncio.Event()

    def wake(_change: Change) -> None:
        changed.set()

    node.peer_listeners.append(wake)
    try:
        async with asyncio.timeout(DEADLINE):
            while hub not in ledger_of(node).ledger_hubs():
                changed.clear()
                try:
                    await asyncio.wait_for(changed.wait(), 0.5)  # the change, or the next look at the table
                except TimeoutError:
                    pass
    finally:
        node.peer_listeners.remove(wake)


async def test_the_hub_node_serves_the_ledger_and_members_find_it(tmp_path: Path, nodes: list[Node]) -> None:
    a = Node(node_config(tmp_path / "a", hubs=["nats://127.0.0.1:1"]))
    b = Node(node_config(tmp_path / "b", hubs=["nats://127.0.0.1:1"]))
    hub = Node(node_config(tmp_path / "hub", hub=HubSettings(port=0, allow=[a.did, b.did])))
    await hub.start()
    nodes.append(hub)
    assert hub.hub is not None
    for n in (a, b):
        n.config.hubs = [hub.hub.url]
        await n.start()
        nodes.append(n)
    bank = ledger_of(hub)
    assert bank.service is not None and ledger_of(a).service is None
    assert bank.ledger_hubs()[0] == hub.did  # a hub asks itself first
    await knows_its_ledger_hub(a, hub.did)
    await knows_its_ledger_hub(b, hub.did)

    minted = await bank.mint(a.did, 500, idem="fund-a", memo="devnet funds")
    assert minted["entry"]["actor"] == hub.did and minted["entry"]["kind"] == "mint"
    err = await raises("ledger_unauthorized", ledger_of(a).mint(a.did, 5, idem="self-mint"))
    assert "operator" in err.message
    # b may not move a's money: the hub acts as the signer
    await raises("ledger_unauthorized", ledger_of(b).settlement.transfer(a.did, b.did, 1, actor=b.did, idem="steal"))
    await raises("insufficient_funds", ledger_of(b).transfer(a.did, 1, idem="b-has-nothing"))
    sent = await ledger_of(a).transfer(b.did, 120, idem="pay-b")
    assert sent["entry"]["actor"] == a.did
    assert await ledger_of(a).transfer(b.did, 120, idem="pay-b") == sent  # a retry moves nothing twice
    assert (await ledger_of(b).balance(None))["balance"] == 120
    assert (await ledger_of(b).balance(a.did)) == {"account": wallet(a.did), "balance": 380}
    mine = await ledger_of(b).entries(None, 0, 100)
    assert [e["idem"] for e in mine["entries"]] == ["pay-b"]
    report = await ledger_of(b).verify()
    assert report["ok"] and report["agrees"] and report["entries"] == 2 and report["balance"] == 120
    assert report["sum"] == 0
    info = await ledger_of(a).info()
    assert info["hub"] == hub.did and info["operators"] == [hub.did] and info["head"] == 2


async def test_a_node_with_no_ledger_hub_says_so(tmp_path: Path, nodes: list[Node]) -> None:
    hub = Node(node_config(tmp_path / "hub", hub=HubSettings(port=0), ledger=LedgerSettings(serve=False)))
    await hub.start()
    nodes.append(hub)
    assert ledger_of(hub).service is None and ledger_of(hub).ledger_hubs() == []
    await raises("ledger_unavailable", ledger_of(hub).balance(None))


async def test_hub_nodes_of_a_cluster_share_a_replicated_journal_and_outlive_one_hub(
    tmp_path: Path, nodes: list[Node]
) -> None:
    ports, cluster_ports = [free_port() for _ in range(3)], [free_port() for _ in range(3)]
    urls = [f"nats://127.0.0.1:{p}" for p in ports]
    routes = [f"nats://127.0.0.1:{p}" for p in cluster_ports]
    hubs = []
    for i in range(3):
        settings = HubSettings(port=ports[i], cluster_port=cluster_ports[i], routes=routes)
        others = [u for j, u in enumerate(urls) if j != i]
        hubs.append(Node(node_config(tmp_path / f"hub{i}", hub=settings, hubs=others)))
    await asyncio.gather(*(h.start() for h in hubs))
    nodes.extend(hubs)
    member = Node(node_config(tmp_path / "member", hubs=urls))
    await member.start()
    nodes.append(member)
    for h in hubs:
        await knows_its_ledger_hub(member, h.did)
    assert ledger_of(member).ledger_hubs() == [h.did for h in hubs]  # in the order it dials their hubs

    await ledger_of(hubs[0]).mint(member.did, 100, idem="fund")
    hub0 = hubs[0].hub
    assert hub0 is not None
    assert isinstance(hubs[1].transport, NatsTransport)
    info = await hubs[1].transport.nats_client.jetstream().stream_info(hub0.config.ledger_stream or "")
    assert info.config.num_replicas == 3
    for i in range(3):
        await ledger_of(member).transfer(hubs[1].did, 10, idem=f"before-{i}")

    hub0.kill_now()  # the first hub's nats-server dies (SIGKILL); its node and the others go on
    async with asyncio.timeout(DEADLINE):
        for i in range(3):
            await ledger_of(member).transfer(hubs[2].did, 10, idem=f"after-{i}")
        report = await ledger_of(member).verify()
    assert report["ok"] and report["agrees"] and report["entries"] == 7 and report["balance"] == 40
    assert (await ledger_of(hubs[2]).balance(hubs[1].did))["balance"] == 30
