"""Rounds across nodes: the data provider's behaviors and the owner's link to them, over the node runtime.

    /agora/fl/ads     (public, read)   this node's signed `DataAd` (its data-set offers), or none
    /agora/fl/join    (public, write)  start the warm trainer for a contract: {contract_id, run_id, offer_id,
                                       training}; the invoker is the owner (custom code only where the offer
                                       allows it: `custom_code_refused`)
    /agora/fl/fit     (public, write)  one round: {contract_id, round, weights, timeout_s} -> {update, receipt,
                                       usage}; only the contract's owner may ask
    /agora/fl/leave   (public, write)  stop the contract's trainer (its owner only)

Every call is a signed invocation; the answer's receipts are signed by the provider and checked by the
owner (`TrainingRun._verify`), so the transport carries nothing the owner has to trust. The global
weights travel in the call (small models; the hub object store for large ones comes next).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from agora.actor import Actor, CallContext, Runtime, behavior
from agora.clock import SYSTEM_CLOCK, Clock
from agora.errors import AgoraError
from agora.fl.datasets import DatasetBook
from agora.fl.rounds import Delivery, FlProvider
from agora.identity import Keypair
from agora.models.training import training_from_dict
from agora.wire.fl import DataAd

ADS_CMD = "/agora/fl/ads"
JOIN_CMD = "/agora/fl/join"
FIT_CMD = "/agora/fl/fit"
LEAVE_CMD = "/agora/fl/leave"
AD_TTL_S = 3600
MAX_CONTRACTS = 64


def _str(args: dict[str, Any], key: str) -> str:
    v = args.get(key)
    if not isinstance(v, str) or not 0 < len(v) <= 128:
        raise AgoraError("invalid_argument", f"{key}: a string of 1-128 characters")
    return v


class FlService(Actor):
    """The data provider's side of federated learning, reached by owners over the runtime."""

    name = "fl"

    def __init__(
        self, keypair: Keypair, datasets: DatasetBook, provider: FlProvider, *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.keypair = keypair
        self.datasets = datasets
        self.provider = provider
        self.clock = clock
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
        if type(round_) is not int or round_ < 1 or not isinstance(weights, bytes):
            raise AgoraError("invalid_argument", "fit takes round (>= 1) and weights (bytes)")
        if not isinstance(timeout_s, int | float) or not 0 < timeout_s <= 24 * 3600:
            raise AgoraError("invalid_argument", "timeout_s: seconds, above 0")
        d = await self.provider.fit(contract_id, round_, weights, float(timeout_s))
        return {"update": d.update, "receipt": d.receipt, "usage": d.usage}

    @behavior(LEAVE_CMD, public=True, mutating=True)
    async def leave(self, ctx: CallContext) -> dict[str, Any]:
        """Stop the contract's trainer."""
        contract_id = self._own(ctx)
        await self.provider.leave(contract_id)
        self.owners.pop(contract_id, None)
        return {"left": contract_id}


class RemoteLink:
    """The owner's link to one provider node."""

    def __init__(self, runtime: Runtime, provider: str) -> None:
        self.runtime = runtime
        self.provider = provider

    async def join(
        self, contract_id: str, *, run_id: str, offer_id: str, training: dict[str, Any], timeout_s: float
    ) -> None:
        args = {"contract_id": contract_id, "run_id": run_id, "offer_id": offer_id, "training": training}
        await self.runtime.call(self.provider, JOIN_CMD, args, timeout=timeout_s)

    async def fit(self, contract_id: str, round_: int, weights: bytes, timeout_s: float) -> Delivery:
        args = {"contract_id": contract_id, "round": round_, "weights": weights, "timeout_s": timeout_s}
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


__all__ = ["ADS_CMD", "FIT_CMD", "JOIN_CMD", "LEAVE_CMD", "FlService", "RemoteLink", "fetch_ads"]
