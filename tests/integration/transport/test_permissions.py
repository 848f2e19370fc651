"""Per-node subject permissions on an allowlisted hub, against a real nats-server.

The attacker here is an allowlisted member speaking raw NATS (nats-py) with its own valid key: it
tries to read another node's inbox and replies, to answer first in its place, to make a node reply
onto another subject, and to create a JetStream stream that captures inboxes. Each attack is shown
to work on an open hub (which has no identities to restrict: documented) and to fail on an
allowlisted one, so these tests fail if the permissions are ever dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import nats
import nats.aio.client
import nats.errors
import pytest
from nats.aio.msg import Msg

from agora.discovery import Change, Discovery, PeerTable
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.transport import HubConfig, HubProcess, NatsTransport
from agora.transport.hub_config import render
from agora.transport.subjects import PUBLIC_TOPICS, inbox_subject, reply_inbox_prefix
from tests.integration.transport.conformance import DEADLINE, TEST_TOPICS, Collector, echo
from tests.integration.transport.conftest import HubFactory

pytestmark = pytest.mark.integration


@dataclass
class Raw:
    """A raw nats-py client as one allowlisted key (what a hostile member would run)."""

    nc: nats.aio.client.Client
    refusals: list[str] = field(default_factory=list)

    async def refused(self, kind: str, subject: str) -> None:
        """Wait (bounded) until the hub has refused `kind` ("subscription" | "publish") on `subject`."""
        needle = f'permissions violation for {kind} to "{subject.lower()}"'
        async with asyncio.timeout(DEADLINE):
            while not any(needle in r for r in self.refusals):
                await self.nc.flush(timeout=DEADLINE)
                await asyncio.sleep(0.01)


@dataclass
class Net:
    hub: HubProcess
    keys: list[Keypair]
    transports: list[NatsTransport]
    raws: list[Raw]

    async def node(self, i: int) -> NatsTransport:
        key = self.keys[i]
        t = NatsTransport(key.did, [self.hub.url], keypair=key)
        self.transports.append(t)
        await t.start()
        return t

    async def raw(self, i: int, *, own_prefix: bool = True) -> Raw:
        raw = Raw(nats.aio.client.Client())

        async def on_error(exc: Exception) -> None:
            raw.refusals.append(str(exc).lower())

        key = self.keys[i]
        options: dict[str, Any] = {"nkeys_seed_str": key.nkey_seed()} if self.hub.config.allowed_dids else {}
        if own_prefix:
            options["inbox_prefix"] = reply_inbox_prefix(key.did)
        await raw.nc.connect(self.hub.url, error_cb=on_error, allow_reconnect=False, **options)
        self.raws.append(raw)
        return raw


MakeNet = Callable[..., Awaitable[Net]]


@pytest.fixture
async def make_net(hub_factory: HubFactory) -> AsyncIterator[MakeNet]:
    nets: list[Net] = []

    async def make(*, allowlist: bool = True, count: int = 3, admins: tuple[int, ...] = (), **hub_options: Any) -> Net:
        keys = [Keypair.generate() for _ in range(count)]
        if allowlist:
            hub_options.setdefault("allowed_dids", tuple(k.did for k in keys))
            hub_options.setdefault("admin_dids", tuple(keys[i].did for i in admins))
        hub_options.setdefault("topics", (*PUBLIC_TOPICS, *TEST_TOPICS))
        net = Net(await hub_factory(**hub_options), keys, [], [])
        nets.append(net)
        return net

    yield make
    for net in nets:
        for t in net.transports:
            await t.close()
        for raw in net.raws:
            await raw.nc.close()


async def _snoop(raw: Raw, subject: str) -> list[Msg]:
    got: list[Msg] = []

    async def keep(msg: Msg) -> None:
        got.append(msg)

    await raw.nc.subscribe(subject, cb=keep)
    await raw.nc.flush(timeout=DEADLINE)
    return got


# -- reading what is not yours ---------------------------------------------------------------


async def test_open_hub_lets_any_client_read_inboxes_and_replies(make_net: MakeNet) -> None:
    """The documented limit of an open hub, and the control that the snooping below really works."""
    net = await make_net(allowlist=False)
    a, b, c = await net.raw(0), await net.node(1), await net.node(2)
    await b.serve(echo)
    requests, replies = await _snoop(a, "agora.node.>"), await _snoop(a, "_INBOX.>")
    assert await c.request(b.local_did, b"secret", timeout=DEADLINE) == b"echo:secret"
    async with asyncio.timeout(DEADLINE):
        while not (requests and replies):
            await a.nc.flush(timeout=DEADLINE)
    assert requests[0].data == b"secret" and replies[0].data == b"echo:secret"


async def test_a_node_cannot_read_another_nodes_inbox_or_replies(make_net: MakeNet) -> None:
    net = await make_net()
    a, b, c = await net.raw(0), await net.node(1), await net.node(2)
    await b.serve(echo)
    attempts = [
        inbox_subject(b.local_did),
        "agora.node.>",
        "agora.node.*",
        "agora.>",
        ">",
        "_INBOX.>",
        reply_inbox_prefix(c.local_did) + ".>",
    ]
    seen = [await _snoop(a, subject) for subject in attempts]
    for subject in attempts:
        await a.refused("subscription", subject)
    for i in range(5):
        assert await c.request(b.local_did, b"secret%d" % i, timeout=DEADLINE) == b"echo:secret%d" % i
    await b.send(c.local_did, b"direct")
    await c.publish("agora.test.news", b"public")
    await a.nc.flush(timeout=DEADLINE)  # anything the hub routed to a before this is delivered by now
    assert all(not got for got in seen), "a refused subscription still delivered messages"


async def test_a_node_reads_its_own_inbox_replies_and_public_topics(make_net: MakeNet) -> None:
    net = await make_net()
    a, b = await net.raw(0), await net.node(1)
    await b.serve(echo)
    mine, news = await _snoop(a, inbox_subject(net.keys[0].did)), await _snoop(a, "agora.announce.>")
    await b.send(net.keys[0].did, b"to a")
    await b.publish("agora.announce.hello", b"hi")
    reply = await a.nc.request(inbox_subject(b.local_did), b"ping", timeout=DEADLINE)
    assert reply.data == b"echo:ping"
    async with asyncio.timeout(DEADLINE):
        while not (mine and news):
            await a.nc.flush(timeout=DEADLINE)
    assert mine[0].data == b"to a" and news[0].data == b"hi"
    assert not a.refusals


async def test_a_client_with_the_default_reply_prefix_gets_no_replies(make_net: MakeNet) -> None:
    """nats-py's default `_INBOX.` prefix is another node's namespace: the hub refuses it."""
    net = await make_net()
    a, b = await net.raw(0, own_prefix=False), await net.node(1)
    await b.serve(echo)
    with pytest.raises(nats.errors.TimeoutError):
        await a.nc.request(inbox_subject(b.local_did), b"ping", timeout=0.5)
    assert any('permissions violation for subscription to "_inbox.' in r for r in a.refusals)


# -- answering in someone else's place -------------------------------------------------------


async def test_a_node_cannot_answer_a_request_meant_for_another(make_net: MakeNet) -> None:
    """Even with the reply subject in hand (leaked here on purpose), a third node cannot answer."""
    net = await make_net()
    attacker, provider, requester = await net.raw(0), await net.raw(1), await net.node(2)
    reply_subjects: asyncio.Queue[str] = asyncio.Queue()

    async def slow_provider(msg: Msg) -> None:
        await reply_subjects.put(msg.reply)

    await provider.nc.subscribe(inbox_subject(net.keys[1].did), cb=slow_provider)
    await provider.nc.flush(timeout=DEADLINE)
    pending = asyncio.create_task(requester.request(net.keys[1].did, b"work", timeout=DEADLINE))
    reply_to = await asyncio.wait_for(reply_subjects.get(), DEADLINE)
    assert reply_to.startswith(reply_inbox_prefix(requester.local_did) + ".")
    await attacker.nc.publish(reply_to, b"forged")
    await attacker.refused("publish", reply_to)
    await provider.nc.publish(reply_to, b"genuine")  # allow_responses: the addressee may answer once
    assert await pending == b"genuine"


class _Seen(logging.Handler):
    """Sets an event when a log record containing `needle` is emitted."""

    def __init__(self, needle: str) -> None:
        super().__init__(logging.WARNING)
        self.needle = needle
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.needle in record.getMessage():
            self.event.set()


async def test_a_node_does_not_reply_onto_a_subject_the_sender_chose(make_net: MakeNet) -> None:
    """A request whose reply subject is not a reply inbox would make the node publish there with its
    own permissions (allow_responses); the transport refuses to answer it."""
    net = await make_net()
    sender, b = await net.raw(0), await net.node(1)
    sink = await _snoop(sender, "agora.test.sink")
    seen = _Seen("did not answer")
    logger = logging.getLogger("agora.transport")
    logger.addHandler(seen)
    try:
        await b.serve(echo)
        await sender.nc.publish(inbox_subject(b.local_did), b"q", reply="agora.test.sink")
        await asyncio.wait_for(seen.event.wait(), DEADLINE)
    finally:
        logger.removeHandler(seen)
    await b.nats_client.flush(timeout=DEADLINE)  # had b published, the hub routed it before this PONG
    await sender.nc.flush(timeout=DEADLINE)
    assert sink == []
    assert (await sender.nc.request(inbox_subject(b.local_did), b"q", timeout=DEADLINE)).data == b"echo:q"


# -- JetStream -------------------------------------------------------------------------------


async def test_a_node_cannot_create_a_stream_that_captures_inboxes(make_net: MakeNet) -> None:
    net = await make_net(count=2)
    attacker = await net.raw(0)
    js = attacker.nc.jetstream(timeout=1.0)
    with pytest.raises(nats.errors.TimeoutError):
        await js.add_stream(name="CAPTURE", subjects=["agora.node.>", "_INBOX.>"])
    await attacker.refused("publish", "$JS.API.STREAM.CREATE.CAPTURE")


async def test_an_admin_did_may_manage_streams(make_net: MakeNet) -> None:
    net = await make_net(count=2, admins=(0,))
    admin, member = await net.raw(0), await net.raw(1)
    info = await admin.nc.jetstream(timeout=DEADLINE).add_stream(name="OPS", subjects=["agora.test.ops"])
    assert info.config.name == "OPS"
    with pytest.raises(nats.errors.TimeoutError):
        await member.nc.jetstream(timeout=1.0).delete_stream("OPS")
    await member.refused("publish", "$JS.API.STREAM.DELETE.OPS")


# -- the Transport API -----------------------------------------------------------------------


async def test_transport_maps_refused_topics_to_hub_permission_denied(make_net: MakeNet) -> None:
    net = await make_net(topics=PUBLIC_TOPICS)
    a, b = await net.node(0), await net.node(1)
    for attempt in (a.subscribe("agora.private", Collector()), a.publish("agora.private", b"x")):
        with pytest.raises(AgoraError) as info:
            await attempt
        assert info.value.code == "hub_permission_denied"
        assert info.value.details["subject"] == "agora.private"
    with pytest.raises(AgoraError) as info:
        await a.publish("agora.private", b"again")  # still refused, not remembered as fine
    assert info.value.code == "hub_permission_denied"
    # the refusal leaves the node fully usable
    got = Collector()
    await b.subscribe("agora.announce.>", got)
    await a.publish("agora.announce.x", b"ok")
    assert await got.wait_for(1) == [b"ok"]
    await b.serve(echo)
    assert await a.request(b.local_did, b"still", timeout=DEADLINE) == b"echo:still"


async def test_requests_and_topics_survive_a_hub_restart(make_net: MakeNet) -> None:
    net = await make_net()
    a, b = await net.node(0), await net.node(1)
    await b.serve(echo)
    got = Collector()
    await b.subscribe("agora.announce", got)
    assert await a.request(b.local_did, b"before", timeout=DEADLINE) == b"echo:before"
    await net.hub.restart()
    async with asyncio.timeout(DEADLINE):
        while True:
            try:
                reply = await a.request(b.local_did, b"after", timeout=0.5)
                break
            except AgoraError as exc:
                assert exc.code in ("timeout", "peer_unreachable", "hub_unreachable"), exc
                await asyncio.sleep(0.02)
    assert reply == b"echo:after"
    async with asyncio.timeout(DEADLINE):
        while not got.items:
            await a.publish("agora.announce", b"back")
            await asyncio.sleep(0.05)
    assert got.items[0] == b"back"


def test_rendered_config_confines_each_user(tmp_path: Any) -> None:
    """What the file says, for a reader of these tests (the tests above show the server enforces it)."""
    a, b = Keypair.generate(), Keypair.generate()
    config = HubConfig(home=tmp_path, allowed_dids=(a.did, b.did))
    text = render(config, ports_dir=tmp_path)
    assert text.count("allow_responses") == 2
    assert f'"subscribe": {{"allow": ["{inbox_subject(a.did)}", "{reply_inbox_prefix(a.did)}.>"' in text
    assert '"_INBOX.>"' not in text and '"agora.node.>"' not in text and '"$JS.API.>"' not in text


async def test_discovery_works_with_the_default_permissions(make_net: MakeNet) -> None:
    """agora's own topics are open by default: two confined nodes find each other."""
    net = await make_net(count=2, topics=PUBLIC_TOPICS)
    a, b = await net.node(0), await net.node(1)
    changes: asyncio.Queue[Change] = asyncio.Queue()
    tables = [PeerTable(self_did=a.local_did), PeerTable(self_did=b.local_did)]
    found = [
        Discovery(net.keys[i], t, tables[i], interval=60.0, on_change=changes.put_nowait) for i, t in enumerate((a, b))
    ]
    try:
        for d in found:
            await d.start(run_loop=False)
        async with asyncio.timeout(DEADLINE):
            while tables[0].get(b.local_did) is None or tables[1].get(a.local_did) is None:
                await changes.get()
    finally:
        for d in found:
            await d.stop()
