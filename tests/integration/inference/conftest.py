"""A real hub and real nodes for the inference tests (the transport and node packages' fixtures)."""

from tests.integration.node.conftest import make_node  # noqa: F401
from tests.integration.transport.conftest import hub, hub_factory  # noqa: F401
