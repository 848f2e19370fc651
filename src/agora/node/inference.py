"""Wiring of the inference marketplace into a Node (`attach_inference(node)`, after compute).

- provider side: the `ModelBook` (models this node serves, in its store) and the `InferenceProvider`
  actor (quote and run behaviors); the model offers ride in compute's capacity ad (`compute.model_offers`).
  `add_model`/`remove_model` (`agora model add/remove`) return only after the ad with the change is
  published (`Advertiser.publish_now`), so whoever reads the index next sees it. A node sells through the
  market only while it has an active offer (`--sell` / `agora offer create`): without one it publishes no ad at all.
- requester side: an `InferenceRequester` that reads the hub's market index (with this node's own newest
  published ad in place of what the index shows of it: `routing.with_own_ad`), calls providers over the
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
from agora.inference.offers import ModelBook, ModelEntry
from agora.inference.provider import InferenceProvider
from agora.inference.requester import InferenceRequester
from agora.inference.router import InferenceRouter
from agora.inference.routing import with_own_ad
from agora.inference.runner import RunnerSpec
from agora.node.compute import compute_of
from agora.wire.market import CapacityAd
from agora.wire.model_offer import ModelOffer

if TYPE_CHECKING:
    from agora.node.node import Node

NOT_SELLING = "this node sells nothing (no active offer: --sell, or `agora offer create`)"


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

    async def add_model(self, offer: ModelOffer, runner: RunnerSpec) -> dict[str, Any]:
        """Serve a model and publish the ad that offers it before answering (what `ad` says: published, or
        why not)."""
        entry = await self.book.add(offer, runner)
        return self._answer(entry, await self.publish_ad())

    async def remove_model(self, model: str) -> dict[str, Any]:
        """Stop serving a model and publish the ad without it before answering."""
        await self.book.remove(model)
        return {"removed": model, "ad": await self.publish_ad()}

    @staticmethod
    def _answer(entry: ModelEntry, ad: dict[str, Any]) -> dict[str, Any]:
        return {**entry.to_dict(), "ad": ad}

    async def publish_ad(self) -> dict[str, Any]:
        """Publish this node's capacity ad now (with the model book as it is): its seq once the hub holds it,
        or why it is not in the market (no hub, no active offer, the hub refused or is away: the advertiser
        keeps retrying by itself)."""
        adv = compute_of(self.node).advertiser
        if adv is None:
            return {"published": False, "reason": "this node publishes no ads (no hub, or ads disabled)"}
        try:
            ad = await adv.publish_now()
        except AgoraError as exc:
            return {"published": False, "reason": f"{exc.code}: {exc.message}"}
        except Exception as exc:  # a hub error the index did not map: the advertiser retries by itself
            return {"published": False, "reason": f"{type(exc).__name__}: {exc}"}
        if ad is None:
            return {"published": False, "reason": NOT_SELLING}
        return {"published": True, "seq": ad.seq, "models": [m.model for m in ad.models]}

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
        adv = compute_of(self.node).advertiser
        return with_own_ad(await index.ads(), adv.last if adv is not None else None)

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
