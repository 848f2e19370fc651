"""Discovery: signed announcements over the hub and the peer table they feed.

- `peers.py`: `PeerTable` (pure): assess announcements and the passing of time into `Update`s (apply them
  after their events are recorded), lost after the peer's own interval, expiry, a bound with eviction, pins.
- `limits.py`: `EventBudget` (pure): the token bucket for events strangers cause.
- `announcer.py`: `Discovery`: join (+ hello so others re-announce, answered coalesced), periodic heartbeats,
  leave on stop; records each change's event before the table shows it.
"""

from agora.discovery.announcer import DEFAULT_REPLY_GAP, HELLO_TOPIC, TOPIC, ChangeSink, Discovery
from agora.discovery.limits import EventBudget
from agora.discovery.peers import DEFAULT_MAX_PEERS, Change, Peer, PeerTable, Update

__all__ = [
    "DEFAULT_MAX_PEERS",
    "DEFAULT_REPLY_GAP",
    "HELLO_TOPIC",
    "TOPIC",
    "Change",
    "ChangeSink",
    "Discovery",
    "EventBudget",
    "Peer",
    "PeerTable",
    "Update",
]
