"""A hub routing inference for its members (SPEC §10): `/agora/inference/route`.

A member that names its hub as its router (`--inference-router DID`) sends the request there instead of
quoting and routing itself. The hub does exactly what a node routing for itself does, with its own
`InferenceRequester`: candidates from its market index (it sees every ad), its measured provider stats,
the strategy and controls the member sent, signed quotes (for the hub: the hub is the provider's
requester), fallback, the provider's metering record verified, the provider paid (pay-after escrow
released against the record the hub countersigns). The reply carries the provider's signed quote and
record unchanged, so the member verifies them itself (`InferenceRequester` via a router: the provider's
signature, that the provider offers the model in a live ad, the hash of what it sent and what it got, the
counts, the quoted prices applied, `max_price`) and then pays the hub the record's price, citing it. A
record that does not verify is refused and nothing is paid to the hub.

The hub advances the provider's money; it routes only for a caller whose balance covers the request's
`max_price` (or is positive without one), so a member risks nothing and the hub at most one request.
Prompts and outputs cross the hub only inside the signed invocations, never into its logs or stores.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from agora.actor import Actor, CallContext, behavior
from agora.errors import AgoraError
from agora.inference.requester import InferenceRequester
from agora.inference.rpc import ROUTE_CMD, check_version, policy_from_wire, request_from_wire, result_to_wire
from agora.ledger import Settlement


class InferenceRouter(Actor):
    name = "inference_router"

    def __init__(self, requester: InferenceRequester, settlement: Settlement | None = None) -> None:
        self.requester = requester
        self.settlement = settlement
        self.routed: Counter[str] = Counter()

    async def _admit(self, member: str, max_price: int | None) -> None:
        if member == self.requester.did:
            raise AgoraError("invalid_argument", "a node routes its own requests itself, not through its router")
        if self.settlement is None:
            return
        need = 1 if max_price is None else max_price
        balance = await self.settlement.balance(member)
        if balance < need:
            raise AgoraError(
                "insufficient_funds",
                f"the router advances the provider's price only to a member whose balance covers it ({need})",
                details={"needed": need, "balance": balance},
            )

    @behavior(ROUTE_CMD, public=True, mutating=True)
    async def route(self, ctx: CallContext) -> dict[str, Any]:
        return await self.handle(ctx.invoker, ctx.args)

    async def handle(self, member: str, args: Any) -> dict[str, Any]:
        """Route one request of `member` (the invocation's signer) and hand back the provider's evidence."""
        if not isinstance(args, dict):
            raise AgoraError("invalid_argument", "inference RPC: args must be a map")
        check_version(args)
        req = request_from_wire(args.get("request"))
        policy = policy_from_wire(args.get("policy"))
        await self._admit(member, policy.max_price)
        out = await self.requester.run_direct(req, policy)
        self.routed[member] += 1
        return {
            "provider": out.provider,
            "quote": out.quote.raw,
            "result": result_to_wire(out.result),
            "meter": out.record.raw,
        }


__all__ = ["InferenceRouter"]
