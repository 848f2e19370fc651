"""agora: a decentralized compute network and marketplace."""

__version__ = "0.1.0"
