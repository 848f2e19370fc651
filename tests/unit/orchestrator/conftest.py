from tests.unit.compute.conftest import net, provider, requester

__all__ = ["net", "provider", "requester"]
