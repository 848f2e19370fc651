"""The journal in a JetStream stream on real hubs: the JournalStore and Settlement conformance suites, the
allowlisted hub making the stream (members may not touch it), and a 3-hub cluster that loses a hub and
keeps every entry and goes on appending."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agora.clock import ManualClock
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.ledger import InternalLedgerSettlement, JournalStore, Ledger
from agora.ledger.journal_jetstream import JetStreamJournalStore
from agora.transport import ClusterConfig, HubProcess, NatsTransport, ReconnectPolicy, routes_for
from agora.transport.hub_config import DEFAULT_LEDGER_STREAM, LEDGER_SUBJECT
from tests.integration.transport.conftest import HubFactory
from tests.support import free_port
from tests.unit.ledger.journal_conformance import JournalConformance, entry, fill
from tests.unit.ledger.settlement_conformance import OPERATOR, PAYEE, PAYER, OpenStore, SettlementConformance

pytestmark = pytest.mark.integration

DEADLINE = 30.0
FAST = ReconnectPolicy(min_wait=0.02, max_wait=0.2)


@pytest.fixture
async def connect() -> AsyncIterator[object]:
    """`await connect(urls, key)`: a started transport (closed at the end)."""
    made: list[NatsTransport] = []

    async def make(urls: list[str], key: Keypair) -> NatsTransport:
        t = NatsTransport(key.did, urls, keypair=key, reconnect=FAST)
        await t.start()
        made.append(t)
        return t

    yield make
    for t in made:
        await t.close()


class TestJetStreamJournal(JournalConformance):
    @pytest.fixture
    async def store(self, hub: HubProcess, connect: object) -> JournalStore:
        t = await connect([hub.url], Keypair.generate())  # type: ignore[operator]
        return JetStreamJournalStore(t.nats_client, timeout=2.0)

    @pytest.fixture
    async def second(self, hub: HubProcess, connect: object) -> JournalStore:
        t = await connect([hub.url], Keypair.generate())  # type: ignore[operator]
        return JetStreamJournalStore(t.nats_client, timeout=2.0)


class TestSettlementOnJetStream(SettlementConformance):
    @pytest.fixture
    async def open_store(self, hub: HubProcess, connect: object) -> OpenStore:
        t = await connect([hub.url], Keypair.generate())  # type: ignore[operator]
        return lambda: JetStreamJournalStore(t.nats_client, timeout=2.0)


async def test_the_allowlisted_hub_makes_the_stream_and_only_its_admins_write_it(
    hub_factory: HubFactory, connect: object
) -> None:
    admin, member = Keypair.generate(), Keypair.generate()
    hub = await hub_factory(allowed_dids=(admin.did, member.did), admin_dids=(admin.did,))
    ta = await connect([hub.url], admin)  # type: ignore[operator]
    tm = await connect([hub.url], member)  # type: ignore[operator]
    journal = JetStreamJournalStore(ta.nats_client, create=False, timeout=2.0)
    written = await fill(journal, 2)
    info = await ta.nats_client.jetstream().stream_info(DEFAULT_LEDGER_STREAM)
    cfg = info.config
    assert (cfg.subjects, cfg.num_replicas, cfg.deny_delete, cfg.deny_purge) == ([LEDGER_SUBJECT], 1, True, True)

    forged = entry(3, written[-1].id, amount=10**6)
    on_member = JetStreamJournalStore(tm.nats_client, create=False, timeout=1.0)
    with pytest.raises(AgoraError) as raised:
        await on_member.append(forged, 2)
    assert raised.value.code in ("hub_unreachable", "hub_permission_denied")
    with pytest.raises(AgoraError):
        await on_member.read()
    await tm.nats_client.publish(LEDGER_SUBJECT, forged.encode())  # a plain publish: dropped by the hub
    await tm.nats_client.flush()
    assert await journal.read() == written
    # nor may anybody delete or purge an entry: the stream refuses it (append-only on the server too)
    js = ta.nats_client.jetstream(timeout=2.0)
    with pytest.raises(Exception):  # noqa: B017 -- nats-py raises its own APIError
        await js.delete_msg(DEFAULT_LEDGER_STREAM, 1)
    with pytest.raises(Exception):  # noqa: B017
        await js.purge_stream(DEFAULT_LEDGER_STREAM)
    assert await journal.read() == written


async def test_a_three_hub_cluster_keeps_every_entry_and_goes_on_when_one_hub_dies(
    hub_factory: HubFactory, connect: object
) -> None:
    admin = Keypair.generate()
    ports = [free_port() for _ in range(3)]
    routes = routes_for([f"nats://127.0.0.1:{p}" for p in ports])
    hubs = [
        await hub_factory(
            allowed_dids=(admin.did,), admin_dids=(admin.did,), cluster=ClusterConfig(name="ldg", port=p, routes=routes)
        )
        for p in ports
    ]
    for h in hubs:
        await h.market_ready(DEADLINE)  # the hub's provisioning task makes the bucket and the stream
    urls = [h.url for h in hubs]
    t_first = await connect(urls, admin)  # type: ignore[operator]
    t_second = await connect(urls[1:] + urls[:1], admin)  # type: ignore[operator]
    on_second = JetStreamJournalStore(t_second.nats_client, create=False, timeout=2.0)
    bank = InternalLedgerSettlement(
        Ledger(JetStreamJournalStore(t_first.nats_client, create=False, timeout=2.0), clock=ManualClock()), OPERATOR.did
    )
    info = await t_first.nats_client.jetstream().stream_info(DEFAULT_LEDGER_STREAM)
    assert info.config.num_replicas == 3
    await bank.mint(PAYER.did, 100, actor=OPERATOR.did, idem="m")
    for i in range(5):
        await bank.transfer(PAYER.did, PAYEE.did, 10, actor=PAYER.did, idem=f"t{i}")
    before = await on_second.read()
    assert len(before) == 6

    hubs[0].kill_now()  # SIGKILL: no goodbye to the cluster
    # a second ledger through the second hub: every entry is there, and appends go on
    other = InternalLedgerSettlement(Ledger(on_second, clock=ManualClock()), OPERATOR.did)
    async with asyncio.timeout(DEADLINE):
        while True:  # bounded: the stream may have to elect a new leader first
            try:
                await other.transfer(PAYER.did, PAYEE.did, 10, actor=PAYER.did, idem="after")
                break
            except AgoraError as exc:
                if exc.code != "hub_unreachable":
                    raise
    after = await on_second.read()
    assert after[:6] == before and len(after) == 7
    assert await other.balance(PAYEE.did) == 60 and await other.balance(PAYER.did) == 40
    report = await other.verify()
    assert report.ok and report.entries == 7


async def test_a_publish_retried_after_a_lost_acknowledgement_is_stored_once(hub: HubProcess, connect: object) -> None:
    t = await connect([hub.url], Keypair.generate())  # type: ignore[operator]
    journal = JetStreamJournalStore(t.nats_client, timeout=2.0)
    first = entry(1, "")
    await journal.append(first, 0)
    await journal.append(first, 0)  # the same entry again (its id is the message id): a duplicate, not a second
    assert await journal.read() == [first]
    with pytest.raises(AgoraError) as raised:  # another entry naming the same expected sequence still conflicts
        await journal.append(entry(1, "", amount=99), 0)
    assert raised.value.code == "ledger_conflict"
