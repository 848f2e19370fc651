"""Wiring of federated learning into a Node: the data sets it offers, its sandboxed trainer, its runs.

`attach_fl(node)` is called from `Node._attach_features` after compute (the training contracts live in
compute's `ContractBook` and settle through the same settlement). `fl_of(node)` is how the API reaches it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from agora.actor import Actor
from agora.errors import AgoraError
from agora.fl.ads import DataAdvertiser, DataIndex, NatsDataIndex
from agora.fl.datasets import DatasetBook
from agora.fl.manager import TrainingManager
from agora.fl.remote import FlService
from agora.fl.rounds import FlProvider
from agora.node.compute import compute_of
from agora.transport import NatsTransport

if TYPE_CHECKING:
    from agora.node.node import Node


class FlFeature(Actor):
    """Holds the parts; an actor without behaviors so `Node.stop` stops it (its runs and trainers)."""

    name = "fl-feature"

    def __init__(self, node: Node) -> None:
        compute = compute_of(node)
        self.datasets = DatasetBook(node.store, node.did, clock=node.clock)
        # the hub's data-ad index (its own bucket beside the capacity ads'): providers publish, owners read
        self.index: DataIndex | None = None
        if isinstance(node.transport, NatsTransport):
            self.index = NatsDataIndex(node.transport.nats_client, ttl_s=node.config.ads.ttl_s)
        # a provider settling at the hub trains a priced round only once its escrow is locked there
        escrows = compute.settlement if node.config.settlement == "hub" else None
        self.provider = FlProvider(node.keypair, self.datasets, escrows=escrows)
        self.manager = TrainingManager(
            node.keypair,
            self.datasets,
            self.provider,
            compute.contracts,
            settlement=compute.settlement,
            events=node.events,
            trust=compute.trust,
            runtime=node.runtime,
            peers=lambda: [p.did for p in node.peer_table.alive()],
            clock=node.clock,
            objects=compute.stores.hub,  # large global weights through the hub object store
            index=self.index,
        )
        self.service = FlService(
            node.keypair, self.datasets, self.provider, clock=node.clock, objects=compute.stores.hub
        )
        self.advertiser: DataAdvertiser | None = None
        if self.index is not None:
            self.advertiser = DataAdvertiser(self.index, self.service.data_ad, node.did, ttl_s=node.config.ads.ttl_s)
            self.datasets.on_change.append(self.advertiser.changed)

    async def start(self) -> None:
        if self.advertiser is not None:
            await self.advertiser.start()

    async def stop(self) -> None:
        if self.advertiser is not None:
            await self.advertiser.stop()  # a clean stop takes the data ad out of the index
        await self.manager.close()


_FEATURES: WeakKeyDictionary[Node, FlFeature] = WeakKeyDictionary()


async def attach_fl(node: Node) -> FlFeature:
    feature = FlFeature(node)
    node.add_actor(feature.service)  # the provider's behaviors: ads, join, fit, leave
    node.add_actor(feature)
    compute_of(node).matcher.training = feature.manager.for_intent  # `agora match` on a training intent
    _FEATURES[node] = feature
    await feature.start()  # the data ad in the hub's index
    return feature


def fl_of(node: Node) -> FlFeature:
    feature = _FEATURES.get(node)
    if feature is None:
        raise AgoraError(
            "unavailable", "federated learning is not attached to this node (still starting?)", retryable=True
        )
    return feature


__all__ = ["FlFeature", "attach_fl", "fl_of"]
