"""The provider side of agora: running tasks for other nodes, and the grants that allow it.

- `manager.py`: `AllocationManager`, the actor behind /agora/alloc/{start,status,logs,cancel,fetch,upload};
  `ComputeSettings`.
- `allocation.py`: `Allocation`, the record of one task on this node, and its state machine.
- `taskprep.py`: a task spec (as sent) -> validated `TaskSpec`, the capacity it needs, the executor
  request, the storage layer's input specs, output naming.
- `logring.py`: `LogRing`, a bounded per-allocation log read by cursor (long-poll).
- `transfer.py`: chunked uploads into the CAS and chunked output reads.
- `stores.py`: `NodeStores`, which store a task's inputs come from and its outputs go to (local CAS, the hub's
  object store, the operator's S3), checked before any I/O; `publish_outputs`; `S3Settings`, `HubBuckets`.
- `lifecycle.py`: `AllocationRun`, one allocation's life: its task group (body, log pump) and the exit
  stack of what it holds (reservation, work dir, executor handle), given back in reverse order.
- `ending.py`: how an allocation ends (state, cause, error) and its signed usage receipt, including the
  signed interruption of one found in flight after a restart.
- `outputs.py`: bounds on a task's outputs (count, listing size, disk) before they are collected.
- `quota.py`: `StoreLedger`, `StoreLimits`: each requester's share of the CAS, retention and the sweep.
- `grants.py`: `DelegationBook` (delegations issued and held, `proofs_for`), `GrantsActor` (the public
  /agora/node/delegation/offer behavior), token text helpers.
"""

from agora.compute.allocation import STATES, TERMINAL, Allocation
from agora.compute.grants import (
    DEFAULT_COMMAND,
    DEFAULT_TTL_S,
    OFFER_COMMAND,
    DelegationBook,
    GrantsActor,
    describe,
    parse_token,
    token_text,
)
from agora.compute.logring import LogEntry, LogPage, LogRing
from agora.compute.manager import AllocationManager, ComputeSettings
from agora.compute.quota import StoreLedger, StoreLimits
from agora.compute.stores import HubBuckets, HubOpener, NodeStores, S3Settings, publish_outputs
from agora.compute.taskprep import need_of, parse_task
from agora.compute.transfer import CHUNK

__all__ = [
    "CHUNK",
    "DEFAULT_COMMAND",
    "DEFAULT_TTL_S",
    "OFFER_COMMAND",
    "STATES",
    "TERMINAL",
    "Allocation",
    "AllocationManager",
    "ComputeSettings",
    "DelegationBook",
    "GrantsActor",
    "HubBuckets",
    "HubOpener",
    "LogEntry",
    "LogPage",
    "LogRing",
    "NodeStores",
    "S3Settings",
    "StoreLedger",
    "StoreLimits",
    "describe",
    "need_of",
    "parse_task",
    "parse_token",
    "publish_outputs",
    "token_text",
]
