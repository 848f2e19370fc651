"""A real hub and real nodes for the FL tests (the transport and node packages' fixtures)."""

from tests.integration.node.conftest import make_node  # noqa: F401
from tests.integration.transport.conftest import hub, hub_factory  # noqa: F401


async def index_holds(node: object, providers: list[str], *, timeout_s: float = 30.0) -> None:
    """Until the hub's data-ad index, as `node` reads it, holds exactly these providers' ads (bounded):
    a provider publishes its ad as its data sets change, a moment after `dataset add` returns."""
    import asyncio

    from agora.node.fl import fl_of

    index = fl_of(node).index  # type: ignore[arg-type]
    assert index is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while sorted(ad.provider for ad in await index.ads()) != sorted(providers):
        assert loop.time() < deadline, f"the index did not come to hold the ads of {providers}"
        await asyncio.sleep(0.05)
