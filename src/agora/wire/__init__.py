"""What travels on the wire between nodes (pure: encode, decode, sign, verify; no I/O).

- `messages.py`: `Request` (a UCAN invocation + its delegations), `Receipt` (the signed reply naming the
  invocation's CID with a result or an error), `Announcement` (signed presence), the message type registry.
- `usage.py`: `UsageReceipt` (the provider's signed account of one allocation: exit, time, CPU, memory,
  output hashes), `OutputDigest`.
- `alloc.py`: the `/agora/alloc/*` protocol, versioned: `StartArgs`, `WatchArgs`, `StatusReply`, `LogsPage`,
  `WatchReply`, the end states; imported as `agora.wire.alloc` by the provider (compute) and the
  requester (orchestrator), the one place its messages are built and checked.
- `market.py`: the market protocol (capacity ads, bid requests, bids, declines, awards, commits, releases);
  import from `agora.wire.market`.
- `ledger.py`: the ledger protocol `/agora/ledger/*` (the hub's ledger service and `RemoteSettlement`);
  import from `agora.wire.ledger`.
- `settle.py`: the metering receipt signed by both parties (`MeteringReceipt`: a usage receipt countersigned
  by the requester for one contract), `countersign`, `open_metering`; what an escrow is released against.
"""

from agora.wire.messages import (
    ANNOUNCE_TAG,
    DEFAULT_MAX_MESSAGE,
    MESSAGE_TYPES,
    RECEIPT_TAG,
    REQUEST_TAG,
    Announcement,
    Receipt,
    Request,
    build_request,
    check_size,
    raw_cid,
)
from agora.wire.settle import METERING_TAG, MeteringReceipt, countersign, open_metering
from agora.wire.usage import USAGE_TAG, OutputDigest, UsageReceipt

__all__ = [
    "ANNOUNCE_TAG",
    "DEFAULT_MAX_MESSAGE",
    "MESSAGE_TYPES",
    "METERING_TAG",
    "RECEIPT_TAG",
    "REQUEST_TAG",
    "USAGE_TAG",
    "Announcement",
    "MeteringReceipt",
    "OutputDigest",
    "Receipt",
    "Request",
    "UsageReceipt",
    "build_request",
    "check_size",
    "countersign",
    "open_metering",
    "raw_cid",
]
