"""The Node actor: the behaviors every node answers, public to any signed caller."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agora.actor import Actor, CallContext, behavior

if TYPE_CHECKING:
    from agora.node.node import Node


class NodeActor(Actor):
    name = "node"

    def __init__(self, node: Node) -> None:
        self.node = node

    @behavior("/agora/node/info", public=True, mutating=False)
    async def info(self, ctx: CallContext) -> dict[str, Any]:
        """Who this node is, its version, hubs, capabilities and commands."""
        return self.node.public_info()

    @behavior("/agora/node/ping", public=True, mutating=False)
    async def ping(self, ctx: CallContext) -> dict[str, Any]:
        """Echo back the caller's payload and this node's time (for round-trip measurements)."""
        return {"pong": True, "did": self.node.did, "echo": ctx.args.get("echo"), "ts": self.node.clock.now()}

    @behavior("/agora/node/peers", public=True, mutating=False)
    async def peers(self, ctx: CallContext) -> dict[str, Any]:
        """The peers this node currently sees."""
        return {"peers": self.node.peer_table.snapshot()}


__all__ = ["NodeActor"]
