"""The SSRF opt-in travels from the daemon flag through NodeConfig into the fetcher compute uses."""

from __future__ import annotations

import pytest

from agora.daemon.main import build_config, parse_args
from agora.errors import AgoraError
from agora.node import Node
from agora.node.compute import compute_of
from agora.storage import HttpFetcher
from tests.integration.node.conftest import NodeFactory, make_node  # noqa: F401 - fixture reused here
from tests.integration.storage.conftest import HttpServer

pytestmark = pytest.mark.integration


def _fetcher_of(node: Node) -> HttpFetcher:
    """The fetcher the node's allocations stage HTTP inputs with."""
    manager = compute_of(node).manager
    assert manager is not None
    return manager.storages.http


def test_the_daemon_flag_sets_the_node_option() -> None:
    assert build_config(parse_args(["--hub"])).allow_private_inputs is False
    assert build_config(parse_args(["--hub", "--allow-private-inputs"])).allow_private_inputs is True


async def test_a_node_refuses_loopback_inputs_unless_its_operator_allows_them(
    make_node: NodeFactory,  # noqa: F811 - the imported fixture
    http_server: HttpServer,
) -> None:
    url = http_server.serve("/in.txt", b"from the operator's own network")
    hub = await make_node("hub", hub=True)
    assert hub.hub is not None
    lan = await make_node("lan", hubs=[hub.hub.url], allow_private_inputs=True)

    with pytest.raises(AgoraError) as info:
        await _fetcher_of(hub).fetch(url)
    assert info.value.code == "input_forbidden"
    assert await _fetcher_of(lan).fetch(url) == b"from the operator's own network"
