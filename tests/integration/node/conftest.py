from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from agora.node import HubSettings, Node, NodeConfig

NodeFactory = Callable[..., Awaitable[Node]]


@pytest.fixture
async def make_node(tmp_path: Path) -> AsyncIterator[NodeFactory]:
    """Start real nodes (SQLite store, NATS transport); the first with hub=True runs nats-server.
    The onboarding benchmark is off: these tests are about the network, and it would compete for the CPU."""
    started: list[Node] = []

    async def factory(name: str, *, hub: bool = False, hubs: list[str] | None = None, **kw: object) -> Node:
        config = NodeConfig(
            home=tmp_path / name,
            hubs=hubs or [],
            hub=HubSettings(port=0) if hub else None,
            api_port=0,
            announce_interval=0.2,
            lost_after=1.0,
            expire_after=5.0,
            **{"benchmark": "off", **kw},  # type: ignore[arg-type]
        )
        node = Node(config)
        await node.start()
        started.append(node)
        return node

    yield factory
    for node in reversed(started):
        if node.started_at is not None:
            await node.stop()


FUNDS = 100_000


async def fund(hub: Node, did: str, amount: int = FUNDS) -> None:
    """Money for a requester, as the devnet gives it: an issuance signed off by the hub node (its operator),
    through the hub's own ledger (market jobs lock their price in escrow there: `settlement: hub`)."""
    from agora.node.ledger import ledger_of

    await ledger_of(hub).settlement.mint(did, amount, actor=hub.did, idem=f"fund:{did}", memo="test funds")
