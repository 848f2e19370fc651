"""Wiring of the inference marketplace into a Node (`attach_inference(node)`, after compute).

- provider side: the `ModelBook` (models this node serves, in its store) and the `InferenceProvider`
  actor (quote and run behaviors); the model offers ride in compute's capacity ad (`compute.model_offers`),
  republished on every `agora model add/remove`. A node sells through the market only while it has an
  active offer (`--sell` / `agora offer create`): without one it publishes no ad at all.
- requester side: an `InferenceRequester` that reads the hub's market index, calls providers over the
  node's RPC, verifies metering records, pays through the node's `Settlement` (compute's), and feeds
  failures into trust (evidence `failure` / `timeout`: the reliability penalty with cooldown), whose
  cooling providers routing leaves out. With `inference_router` set, its requests go to that hub.
- a hub node also routes for its members (`InferenceRouter`, `/agora/inference/route`, streams through
  `/agora/inference/route_stream` and `route_watch`).
The API reaches these through `inference_of(node)`.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from agora.errors import AgoraError
from agora.inference.offers import ModelBook
from agora.inference.provider import InferenceProvider
from agora.inference.requester import InferenceRequester
from agora.inference.router import InferenceRouter
from agora.node.compute import compute_of
from agora.wire.market import CapacityAd

if TYPE_CHECKING:
    from agora.node.node import Node


class InferenceFeature:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.book = ModelBook(node.store)
        self.provider = InferenceProvider(node.keypair, self.book, clock=node.clock)
        compute = compute_of(node)
        self.requester = InferenceRequester(
            node.did,
            self._call,
            self._ads,
            settlement=compute.settlement,
            payment=node.config.inference_payment,
            clock=node.clock,
            on_failure=self._on_failure,
            cooling=self._cooling,
            keypair=node.keypair,
            router=node.config.inference_router or None,
        )
        # a hub routes for its members (inference/router.py): `run_direct`, so it never forwards in turn
        self.router = InferenceRouter(self.requester, compute.settlement) if node.hub is not None else None

    async def start(self) -> None:
        await self.book.load()
        compute = compute_of(self.node)
        compute.model_offers = self.book.offers
        self.book.on_change(self._offers_changed)

    def _offers_changed(self) -> None:
        adv = compute_of(self.node).advertiser
        if adv is not None:
            adv.changed()

    async def _call(self, target: str, command: str, args: dict[str, Any], timeout: float) -> Any:
        runtime = self.node.runtime
        assert runtime is not None
        return await runtime.call(target, command, args, timeout=timeout)  # itself too: the same checks

    async def _ads(self) -> list[CapacityAd]:
        index = compute_of(self.node).market_index
        if index is None:
            raise AgoraError("unavailable", "this node has no market index (it runs without a hub)")
        return await index.ads()

    async def _on_failure(self, provider: str, exc: AgoraError) -> None:
        kind = "timeout" if exc.code == "timeout" else "failure"
        await compute_of(self.node).trust.record(
            provider, kind, {"event": f"inference:{uuid.uuid4().hex}"}, f"inference {exc.code}"
        )

    def _cooling(self, provider: str) -> bool:
        try:
            return compute_of(self.node).trust_book.report(provider).penalty.cooling(self.node.clock.now())
        except AgoraError:
            return False

    def summary(self) -> dict[str, Any]:
        t = self.requester.totals
        return {
            "inference_spend": t.spend,
            "inference_requests": t.requests,
            "inference_refused_records": t.refused_records,
            "inference_failures": t.failures,
            "inference_revenue": self.provider.revenue,
            "inference_served": self.provider.stats["served"],
        }


_FEATURES: WeakKeyDictionary[Node, InferenceFeature] = WeakKeyDictionary()


def inference_of(node: Node) -> InferenceFeature:
    feature = _FEATURES.get(node)
    if feature is None:
        raise AgoraError(
            "unavailable", "inference is not attached to this node (it is still starting?)", retryable=True
        )
    return feature


async def attach_inference(node: Node) -> InferenceFeature:
    feature = InferenceFeature(node)
    await feature.start()
    node.add_actor(feature.provider)  # its stop() closes the model book's runners
    if feature.router is not None:
        node.add_actor(feature.router)
    _FEATURES[node] = feature
    return feature


__all__ = ["InferenceFeature", "attach_inference", "inference_of"]
