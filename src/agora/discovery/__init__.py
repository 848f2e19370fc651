"""Discovery: signed announcements over the hub and the peer table they feed.

- `peers.py`: `PeerTable` (pure): observe announcements, last-seen, lost after silence, expiry.
- `announcer.py`: `Discovery`: join (+ hello so others re-announce), periodic heartbeats, leave on stop.
"""

from agora.discovery.announcer import HELLO_TOPIC, TOPIC, Discovery
from agora.discovery.peers import Change, Peer, PeerTable

__all__ = ["HELLO_TOPIC", "TOPIC", "Change", "Discovery", "Peer", "PeerTable"]
