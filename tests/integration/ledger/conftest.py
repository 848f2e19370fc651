"""A real hub for the ledger tests (the transport package's fixtures)."""

from tests.integration.transport.conftest import hub, hub_factory  # noqa: F401
