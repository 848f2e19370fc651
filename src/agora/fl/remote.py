"""Rounds across nodes: the data provider's behaviors and the owner's link to them, over the node runtime.

    /agora/fl/ads     (public, read)   this node's signed `DataAd` (its data-set offers), or none
    /agora/fl/join    (public, write)  start the warm trainer for a contract: {contract_id, run_id, offer_id,
                                       training}; the invoker is the owner (custom code only where the offer
                                       allows it: `custom_code_refused`)
    /agora/fl/fit     (public, write)  one round: {contract_id, round, weights | weights_ref, timeout_s} ->
                                       {update, receipt, usage}; only the contract's owner may ask
    /agora/fl/leave   (public, write)  stop the contract's trainer (its owner only)

Every call is a signed invocation; the answer's receipts are signed by the provider and checked by the
owner (`TrainingRun._verify`), so the transport carries nothing the owner has to trust.

The global weights travel in the call up to `INLINE_WEIGHTS_MAX` bytes. Larger ones go through the hub
object store (`WeightsShelf`: put once per round whatever the number of providers, content-addressed):
the call carries `weights_ref` (sha256, size, hub:// URI) and the provider reads the bytes from the hub,
checks their sha256 against the ref (the hub is not trusted) and trains on exactly those bytes. Without a
hub object store, weights go inline (the runtime's message limit then bounds the model's size).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

from agora.actor import Actor, CallContext, Runtime, behavior
from agora.clock import SYSTEM_CLOCK, Clock
from agora.errors import AgoraError
from agora.fl.datasets import DatasetBook
from agora.fl.rounds import Delivery, FlProvider
from agora.identity import Keypair
from agora.models.training import training_from_dict
from agora.storage import ContentRef, Storage
from agora.wire.fl import DataAd

ADS_CMD = "/agora/fl/ads"
JOIN_CMD = "/agora/fl/join"
FIT_CMD = "/agora/fl/fit"
LEAVE_CMD = "/agora/fl/leave"
AD_TTL_S = 3600
MAX_CONTRACTS = 64
INLINE_WEIGHTS_MAX = 256 * 1024  # above this the weights go through the hub object store (when there is one)
MAX_WEIGHTS_BYTES = 256 * 1024 * 1024  # what a provider reads from the hub for one round, at most


def _str(args: dict[str, Any], key: str) -> str:
    v = args.get(key)
    if not isinstance(v, str) or not 0 < len(v) <= 128:
        raise AgoraError("invalid_argument", f"{key}: a string of 1-128 characters")
    return v


class FlService(Actor):
    """The data provider's side of federated learning, reached by owners over the runtime."""

    name = "fl"

    def __init__(
        self,
        keypair: Keypair,
        datasets: DatasetBook,
        provider: FlProvider,
        *,
        clock: Clock = SYSTEM_CLOCK,
        objects: Storage | None = None,
    ) -> None:
        self.keypair = keypair
        self.datasets = datasets
        self.provider = provider
        self.clock = clock
        self.objects = objects  # the hub object store, where large global weights come from
        self.weights_from_hub = 0  # rounds whose weights were read from the hub (verified)
        self.owners: dict[str, str] = {}  # contract -> owner DID
        self._seq = 0

    async def data_ad(self) -> DataAd | None:
        offers = await self.datasets.list()
        if not offers:
            return None
        self._seq = max(self._seq + 1, int(self.clock.now()))  # newer than any ad of an earlier run
        return DataAd.issue(self.keypair, seq=self._seq, iat=int(self.clock.now()), ttl_s=AD_TTL_S, offers=offers)

    @behavior(ADS_CMD, public=True, mutating=False)
    async def ads(self, ctx: CallContext) -> dict[str, Any]:
        """This node's data-set offers as a signed data ad (no paths)."""
        ad = await self.data_ad()
        return {"ad": ad.raw if ad is not None else None}

    @behavior(JOIN_CMD, public=True, mutating=True)
    async def join(self, ctx: CallContext) -> dict[str, Any]:
        """Start a warm sandboxed trainer for the invoker's contract on one of this node's data sets."""
        args = ctx.args
        contract_id, run_id, offer_id = _str(args, "contract_id"), _str(args, "run_id"), _str(args, "offer_id")
        if contract_id in self.owners:
            if self.owners[contract_id] != ctx.invoker:
                raise AgoraError("already_exists", f"contract {contract_id} belongs to another owner")
            return {"joined": contract_id}
        if len(self.owners) >= MAX_CONTRACTS:
            raise AgoraError("unavailable", "this provider trains for too many contracts now", retryable=True)
        spec = training_from_dict(args.get("training"))
        await self.provider.join(contract_id, owner=ctx.invoker, run_id=run_id, offer_id=offer_id, spec=spec)
        self.owners[contract_id] = ctx.invoker
        return {"joined": contract_id}

    def _own(self, ctx: CallContext) -> str:
        contract_id = _str(ctx.args, "contract_id")
        if self.owners.get(contract_id) != ctx.invoker:
            raise AgoraError("contract_not_found", f"no training contract {contract_id} of yours here")
        return contract_id

    @behavior(FIT_CMD, public=True, mutating=True)
    async def fit(self, ctx: CallContext) -> dict[str, Any]:
        """Train one round from the global weights; the update with its signed receipts."""
        contract_id = self._own(ctx)
        round_, weights, timeout_s = ctx.args.get("round"), ctx.args.get("weights"), ctx.args.get("timeout_s")
        if type(round_) is not int or round_ < 1:
            raise AgoraError("invalid_argument", "fit takes round (>= 1)")
        if not isinstance(timeout_s, int | float) or not 0 < timeout_s <= 24 * 3600:
            raise AgoraError("invalid_argument", "timeout_s: seconds, above 0")
        if weights is None and "weights_ref" in ctx.args:
            weights = await self._weights_from_hub(ctx.args["weights_ref"])
        if not isinstance(weights, bytes):
            raise AgoraError("invalid_argument", "fit takes weights (bytes) or weights_ref (a hub content ref)")
        d = await self.provider.fit(contract_id, round_, weights, float(timeout_s))
        return {"update": d.update, "receipt": d.receipt, "usage": d.usage}

    async def _weights_from_hub(self, raw: Any) -> bytes:
        """The round's weights read from the hub object store, checked against the ref's sha256."""
        ref = ContentRef.from_dict(raw)
        if ref.scheme != "hub" or ref.size is None or ref.size > MAX_WEIGHTS_BYTES:
            raise AgoraError("invalid_argument", f"weights_ref: a hub:// ref of at most {MAX_WEIGHTS_BYTES} bytes")
        if self.objects is None:
            raise AgoraError("config_invalid", "this provider has no hub object store to read the weights from")
        data = await self.objects.get(ref)
        if len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.sha256:
            raise AgoraError("storage_integrity", "the weights read from the hub do not hash to the ref's sha256")
        self.weights_from_hub += 1
        return data

    @behavior(LEAVE_CMD, public=True, mutating=True)
    async def leave(self, ctx: CallContext) -> dict[str, Any]:
        """Stop the contract's trainer."""
        contract_id = self._own(ctx)
        await self.provider.leave(contract_id)
        self.owners.pop(contract_id, None)
        return {"left": contract_id}


class WeightsShelf:
    """The owner's side of large weights: each round's bytes put in the hub object store once, shared by
    every provider's link of the run; small ones (or no hub) stay inline."""

    def __init__(self, objects: Storage | None, *, inline_max: int | None = None) -> None:
        self.objects = objects
        self.inline_max = INLINE_WEIGHTS_MAX if inline_max is None else inline_max
        self._last: tuple[str, dict[str, Any]] | None = None  # (sha256, ref) of the latest round's weights
        self._lock = asyncio.Lock()

    async def args_for(self, weights: bytes) -> dict[str, Any]:
        if self.objects is None or len(weights) <= self.inline_max:
            return {"weights": weights}
        digest = hashlib.sha256(weights).hexdigest()
        async with self._lock:  # the providers' fits start together: one put per round
            if self._last is None or self._last[0] != digest:
                ref = await self.objects.put(weights)
                self._last = (digest, ref.to_dict())
            return {"weights_ref": self._last[1]}


class RemoteLink:
    """The owner's link to one provider node."""

    def __init__(self, runtime: Runtime, provider: str, *, shelf: WeightsShelf | None = None) -> None:
        self.runtime = runtime
        self.provider = provider
        self.shelf = shelf or WeightsShelf(None)

    async def join(
        self, contract_id: str, *, run_id: str, offer_id: str, training: dict[str, Any], timeout_s: float
    ) -> None:
        args = {"contract_id": contract_id, "run_id": run_id, "offer_id": offer_id, "training": training}
        await self.runtime.call(self.provider, JOIN_CMD, args, timeout=timeout_s)

    async def fit(self, contract_id: str, round_: int, weights: bytes, timeout_s: float) -> Delivery:
        args = {"contract_id": contract_id, "round": round_, "timeout_s": timeout_s}
        args.update(await self.shelf.args_for(weights))
        reply = await self.runtime.call(self.provider, FIT_CMD, args, timeout=timeout_s + 1.0)
        if not isinstance(reply, dict) or not all(
            isinstance(reply.get(k), bytes) for k in ("update", "receipt", "usage")
        ):
            raise AgoraError(
                "training_update_rejected",
                "a fit reply is update, receipt and usage (bytes)",
                details={"reason": "receipt"},
            )
        return Delivery(reply["update"], reply["receipt"], reply["usage"])

    async def leave(self, contract_id: str, timeout_s: float = 5.0) -> None:
        await self.runtime.call(self.provider, LEAVE_CMD, {"contract_id": contract_id}, timeout=timeout_s)


async def fetch_ads(runtime: Runtime, peers: Sequence[str], *, timeout_s: float = 5.0) -> list[DataAd]:
    """Every peer's data ad, each verified against the peer that answered; silent or bad peers skipped."""

    async def one(did: str) -> DataAd | None:
        reply = await runtime.call(did, ADS_CMD, {}, timeout=timeout_s)
        raw = reply.get("ad") if isinstance(reply, dict) else None
        return DataAd.open(raw, expected_signer=did) if isinstance(raw, bytes) else None

    results = await asyncio.gather(*(one(d) for d in peers), return_exceptions=True)
    return [r for r in results if isinstance(r, DataAd)]


__all__ = [
    "ADS_CMD",
    "FIT_CMD",
    "INLINE_WEIGHTS_MAX",
    "JOIN_CMD",
    "LEAVE_CMD",
    "FlService",
    "RemoteLink",
    "WeightsShelf",
    "fetch_ads",
]
