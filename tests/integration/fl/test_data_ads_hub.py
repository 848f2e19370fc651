"""The data-ad bucket on an allowlisted hub: the hub creates it at start (nodes may not create streams), each
member reads every provider's data ad and writes only its own, and a DID off the list reaches nothing. Real
nodes: a member adds a data set, another member's training intent finds it through the bucket (`index`),
not by asking each peer."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import nats.errors
import numpy as np
import pytest

from agora.errors import AgoraError
from agora.fl.ads import NatsDataIndex
from agora.identity import Keypair
from agora.models.intent import intent_from_dict
from agora.node import HubSettings, Node, NodeConfig
from agora.node.fl import fl_of
from agora.transport import NatsTransport, ReconnectPolicy
from agora.transport.hub_config import DEFAULT_DATA_BUCKET, market_key
from agora.wire.fl import DataAd
from tests.integration.fl.conftest import index_holds
from tests.integration.transport.conftest import HubFactory
from tests.unit.fl.helpers import NOW, offer

pytestmark = pytest.mark.integration

FAST = ReconnectPolicy(min_wait=0.02, max_wait=0.2)


def ad(kp: Keypair, seq: int) -> DataAd:
    return DataAd.issue(kp, seq=seq, iat=NOW, ttl_s=3600, offers=[offer(kp)])


@pytest.fixture
async def transports() -> AsyncIterator[list[NatsTransport]]:
    made: list[NatsTransport] = []
    yield made
    for t in made:
        await t.close()


async def test_the_allowlisted_hub_opens_the_data_bucket_each_member_writes_only_its_own_key(
    hub_factory: HubFactory, transports: list[NatsTransport]
) -> None:
    a, b, outsider = Keypair.generate(), Keypair.generate(), Keypair.generate()
    hub = await hub_factory(allowed_dids=(a.did, b.did), market_ttl_s=90)
    for key in (a, b):
        t = NatsTransport(key.did, [hub.url], keypair=key, reconnect=FAST)
        await t.start()
        transports.append(t)
    ta, tb = transports
    on_a, on_b = NatsDataIndex(ta.nats_client, timeout=1.0), NatsDataIndex(tb.nats_client, timeout=1.0)
    await on_a.publish(ad(a, 1).raw)
    await on_b.publish(ad(b, 1).raw)
    assert sorted(x.provider for x in await on_a.ads()) == sorted([a.did, b.did])  # each reads every ad

    status = await (await on_a._kv()).status()  # the hub made it: the market bucket's shape and TTL
    assert (status.bucket, status.history, status.ttl) == (DEFAULT_DATA_BUCKET, 1, 90)

    # a cannot overwrite b's key (not even with b's own newer signed ad), delete or purge it
    for attempt in (on_a._write(market_key(b.did), ad(b, 7).raw), on_a.withdraw(b.did)):
        with pytest.raises(AgoraError) as raised:
            await attempt
        assert raised.value.code in ("hub_unreachable", "hub_permission_denied")
    assert ("publish", f"$kv.{DEFAULT_DATA_BUCKET}.{market_key(b.did)}".lower()) in ta._denied
    kv = await ta.nats_client.jetstream(timeout=1.0).key_value(DEFAULT_DATA_BUCKET)
    with pytest.raises(nats.errors.TimeoutError):  # the hub drops a refused publish: no answer comes
        await kv.purge(market_key(b.did))
    assert [x.seq for x in await on_b.ads() if x.provider == b.did] == [1]

    # its own key a may replace and withdraw
    await on_a.publish(ad(a, 2).raw)
    await on_a.withdraw(a.did)
    assert [x.provider for x in await on_b.ads()] == [b.did]

    # a DID off the allowlist cannot connect, so it cannot write (or read) the bucket at all
    intruder = NatsTransport(outsider.did, [hub.url], keypair=outsider, connect_deadline=5.0)
    with pytest.raises(AgoraError) as raised:
        await intruder.start()
    assert raised.value.code == "hub_auth_failed"


def node_config(home: Path, **kw: object) -> NodeConfig:
    settings: dict[str, object] = {"api_port": 0, "benchmark": "off", "announce_interval": 0.2, **kw}
    return NodeConfig(home=home, **settings)  # type: ignore[arg-type]


@pytest.fixture
async def nodes() -> AsyncIterator[list[Node]]:
    started: list[Node] = []
    yield started
    for node in reversed(started):
        if node.started_at is not None:
            await node.stop()


async def test_a_training_intent_on_an_allowlisted_hub_finds_a_members_data_set_in_the_bucket(
    tmp_path: Path, nodes: list[Node]
) -> None:
    provider = Node(node_config(tmp_path / "provider", hubs=["nats://127.0.0.1:1"]))  # DIDs first: the allowlist
    owner = Node(node_config(tmp_path / "owner", hubs=["nats://127.0.0.1:1"]))
    hub = Node(node_config(tmp_path / "hub", hub=HubSettings(port=0, allow=[provider.did, owner.did])))
    await hub.start()
    nodes.append(hub)
    assert hub.hub is not None
    for member in (provider, owner):
        member.config.hubs = [hub.hub.url]
        await member.start()
        nodes.append(member)

    rng = np.random.default_rng(0)
    data = tmp_path / "part.npz"
    np.savez(data, x=rng.random((40, 4)), y=np.arange(40) % 2)
    await fl_of(provider).datasets.add(data, tags=["toy"], licence="CC0-1.0", price_per_update=2)
    await index_holds(owner, [provider.did])  # the provider's ad reached the hub's bucket; the owner reads it

    now = int(time.time())
    training = {
        "schema": {"features": [f"x{i}" for i in range(4)], "label": "y", "classes": ["0", "1"]},
        "data_tags": ["toy"],
        "rounds": 1,
        "min_providers": 1,
        "max_providers": 1,
        "min_fit": 1,
        "round_deadline_s": 60,
        "max_price_per_update": 5,
    }
    intent = intent_from_dict(
        {
            "intent_id": "train-toy",
            "kind": "training",
            "requester": owner.did,
            "training": training,
            "budget": 50,
            "valid_from": now,
            "valid_until": now + 3600,
        }
    )
    preview = await fl_of(owner).manager.for_intent(intent, preview=True)
    assert preview["matched"] is True, preview
    assert preview["match"]["ads_from"] == "index"  # through the hub's data-ad bucket, not asked of each peer
    assert [c["provider"] for c in preview["match"]["chosen"]] == [provider.did]
