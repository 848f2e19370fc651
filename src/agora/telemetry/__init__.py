"""What a node tells its operator: structured logs, Prometheus metrics, the recorded event trail.

- `logging.py`: `configure_logging` (JSON lines), `log_event`, `redact` (secrets never reach a log).
- `metrics.py`: `Metrics`, one node's counters, gauges and RPC latency histogram in its own registry.
- `events.py`: `EventRecorder`, stores an event through any `append_event` sink and logs it.
- `seqlog.py`: `SeqLog`, a bounded sequence-numbered log read by cursor with long-poll (task and job logs).
"""

from agora.telemetry.events import (
    ALLOC_STATE,
    CONTRACT_STATE,
    JOB_STATE,
    NODE_STARTED,
    NODE_STOPPED,
    PEER_JOINED,
    PEER_LOST,
    POOL_STATE,
    EventRecorder,
    EventSink,
)
from agora.telemetry.logging import REDACTED, configure_logging, is_sensitive_key, log_event, redact
from agora.telemetry.metrics import RPC_BUCKETS, Metrics
from agora.telemetry.seqlog import SeqLog, SeqPage

__all__ = [
    "ALLOC_STATE",
    "CONTRACT_STATE",
    "JOB_STATE",
    "NODE_STARTED",
    "NODE_STOPPED",
    "PEER_JOINED",
    "PEER_LOST",
    "POOL_STATE",
    "REDACTED",
    "RPC_BUCKETS",
    "EventRecorder",
    "EventSink",
    "Metrics",
    "SeqLog",
    "SeqPage",
    "configure_logging",
    "is_sensitive_key",
    "log_event",
    "redact",
]
