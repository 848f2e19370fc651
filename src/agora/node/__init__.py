"""The composition root: `Node` builds and runs every part of a node from a `NodeConfig`.

- `config.py`: `NodeConfig`, `HubSettings`, defaults and validation: the settings schema.
- `settings.py`: what derives from the schema: daemon flags, `AGORA_*` environment names, the loader.
- `node.py`: `Node` (start/stop, info, health, ping), identity bootstrap.
- `actor.py`: `NodeActor`: /agora/node/info, /agora/node/ping, /agora/node/peers.
"""

from agora.node import settings
from agora.node.config import LOOPBACK_HOSTS, HubSettings, NodeConfig, default_home, loopback_address
from agora.node.node import Node, load_or_create_identity

__all__ = [
    "LOOPBACK_HOSTS",
    "HubSettings",
    "Node",
    "NodeConfig",
    "default_home",
    "load_or_create_identity",
    "loopback_address",
    "settings",
]
