"""Wiring of federated learning into a Node: the data sets it offers, its sandboxed trainer, its runs.

`attach_fl(node)` is called from `Node._attach_features` after compute (the training contracts live in
compute's `ContractBook` and settle through the same settlement). `fl_of(node)` is how the API reaches it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from agora.actor import Actor
from agora.errors import AgoraError
from agora.fl.datasets import DatasetBook
from agora.fl.manager import TrainingManager
from agora.fl.remote import FlService
from agora.fl.rounds import FlProvider
from agora.node.compute import compute_of

if TYPE_CHECKING:
    from agora.node.node import Node


class FlFeature(Actor):
    """Holds the parts; an actor without behaviors so `Node.stop` stops it (its runs and trainers)."""

    name = "fl-feature"

    def __init__(self, node: Node) -> None:
        compute = compute_of(node)
        self.datasets = DatasetBook(node.store, node.did, clock=node.clock)
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
        )
        self.service = FlService(
            node.keypair, self.datasets, self.provider, clock=node.clock, objects=compute.stores.hub
        )

    async def stop(self) -> None:
        await self.manager.close()


_FEATURES: WeakKeyDictionary[Node, FlFeature] = WeakKeyDictionary()


async def attach_fl(node: Node) -> FlFeature:
    feature = FlFeature(node)
    node.add_actor(feature.service)  # the provider's behaviors: ads, join, fit, leave
    node.add_actor(feature)
    compute_of(node).matcher.training = feature.manager.for_intent  # `agora match` on a training intent
    _FEATURES[node] = feature
    return feature


def fl_of(node: Node) -> FlFeature:
    feature = _FEATURES.get(node)
    if feature is None:
        raise AgoraError(
            "unavailable", "federated learning is not attached to this node (still starting?)", retryable=True
        )
    return feature


__all__ = ["FlFeature", "attach_fl", "fl_of"]
