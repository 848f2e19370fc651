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

Streams (`/agora/inference/route_stream`, then `/agora/inference/route_watch` calls, `inference/sessions.py`):
the hub opens a session that runs its requester's `stream` (the same selection, fallback before the first
text, escrow per request released on the record the hub countersigns) and passes each of the provider's
deltas on unchanged, so the member holds exactly the text the provider metered; the last watch carries the
provider, its signed quote and record, which the member verifies as above (a `partial` record may count no
more tokens than deltas delivered) before it pays the hub. A provider that fails mid-way ends the member's
stream with its error, and nobody pays. A member that stops watching for `abandon_after_s` is taken to have
gone: the hub stops reading, and the provider's escrow is refunded.

The hub advances the provider's money; it routes only for a caller whose balance covers the request's
`max_price` (or is positive without one), so a member risks nothing and the hub at most one request.
Prompts and outputs cross the hub only inside the signed invocations, never into its logs or stores.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

from agora.actor import Actor, CallContext, behavior
from agora.errors import AgoraError
from agora.inference.requester import InferenceRequester
from agora.inference.routing import RoutingPolicy
from agora.inference.rpc import (
    ROUTE_CMD,
    ROUTE_STREAM_CMD,
    ROUTE_WATCH_CMD,
    check_version,
    policy_from_wire,
    request_from_wire,
    result_to_wire,
)
from agora.inference.runner import Delta, RunRequest
from agora.inference.sessions import Session, Sessions, wait_arg
from agora.ledger import Settlement


@dataclass(frozen=True)
class RouterSettings:
    max_sessions: int = 256  # routed streams open or finished-but-unread at once
    session_keep_s: float = 60.0  # a finished stream its member does not read is dropped after this
    watch_wait_max_s: float = 10.0  # longest a watch call waits for new text
    watch_batch_s: float = 0.1  # after new text, wait this long for more
    abandon_after_s: float = 30.0  # a member that has not watched for this long is gone: stop reading


class InferenceRouter(Actor):
    name = "inference_router"

    def __init__(
        self,
        requester: InferenceRequester,
        settlement: Settlement | None = None,
        *,
        settings: RouterSettings | None = None,
    ) -> None:
        self.requester = requester
        self.settlement = settlement
        self.settings = settings or RouterSettings()
        self.routed: Counter[str] = Counter()
        self.sessions = Sessions(
            self.settings,
            requester.clock,
            final_keys=("provider", "quote", "meter"),
            name="inference-route",
            where="on this router",
        )

    async def stop(self) -> None:
        """The node stops: the routed streams end (each refunds its provider's escrow)."""
        await self.sessions.close()

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

    @behavior(ROUTE_STREAM_CMD, public=True, mutating=True)
    async def route_stream(self, ctx: CallContext) -> dict[str, Any]:
        return {"session": await self.open_stream(ctx.invoker, ctx.args)}

    @behavior(ROUTE_WATCH_CMD, public=True, mutating=False)
    async def route_watch(self, ctx: CallContext) -> dict[str, Any]:
        return await self.watch(ctx.invoker, ctx.args)

    async def _admitted(self, member: str, args: Any) -> tuple[RunRequest, RoutingPolicy]:
        if not isinstance(args, dict):
            raise AgoraError("invalid_argument", "inference RPC: args must be a map")
        check_version(args)
        req = request_from_wire(args.get("request"))
        policy = policy_from_wire(args.get("policy"))
        await self._admit(member, policy.max_price)
        return req, policy

    async def handle(self, member: str, args: Any) -> dict[str, Any]:
        """Route one request of `member` (the invocation's signer) and hand back the provider's evidence."""
        req, policy = await self._admitted(member, args)
        out = await self.requester.run_direct(req, policy)
        self.routed[member] += 1
        return {
            "provider": out.provider,
            "quote": out.quote.raw,
            "result": result_to_wire(out.result),
            "meter": out.record.raw,
        }

    async def open_stream(self, member: str, args: Any) -> str:
        """Start streaming one request of `member` through this hub; follow it with `watch`."""
        self.sessions.check_room()
        req, policy = await self._admitted(member, args)
        if req.kind == "embeddings":
            raise AgoraError("invalid_argument", "embeddings are not streamed")

        async def pump(s: Session) -> None:
            await self._pump(s, member, req, policy)

        return self.sessions.open(member, pump)

    async def _pump(self, s: Session, member: str, req: RunRequest, policy: RoutingPolicy) -> None:
        """Follow the provider's stream with this hub's requester (selection, fallback, escrow, the record
        verified and countersigned), handing each delta on as it came."""
        try:
            async with contextlib.aclosing(self.requester.stream(req, policy)) as events:
                async for ev in events:
                    if not isinstance(ev, Delta):
                        s.final = {"provider": ev.provider, "quote": ev.quote.raw, "meter": ev.record.raw}
                        self.routed[member] += 1
                        return
                    s.push(ev.text)
                    if self.requester.clock.monotonic() - s.watched_at > self.settings.abandon_after_s:
                        raise AgoraError("timeout", "the member stopped reading the stream; the hub stopped too")
        except AgoraError as exc:
            s.error = exc
        except Exception as exc:  # the member hears of a broken path as an error, never the hub's crash
            s.error = AgoraError("runner_failed", f"the routed stream failed ({type(exc).__name__})")

    async def watch(self, member: str, args: Any) -> dict[str, Any]:
        """What `member`'s routed stream has after its cursor, and at its end the provider's evidence."""
        if not isinstance(args, dict):
            raise AgoraError("invalid_argument", "inference RPC: args must be a map")
        check_version(args)
        return await self.sessions.watch(member, str(args.get("session")), args.get("cursor", 0), wait_arg(args))


__all__ = ["InferenceRouter", "RouterSettings"]
