"""Actors: behaviors by command path, the dispatching runtime, supervision.

- `behaviors.py`: `Actor`, `@behavior(command, public=, mutating=)`, `Behavior`, `CallContext`.
- `runtime.py`: `Runtime` — validates every incoming invocation before any handler runs, answers with
  signed receipts, and makes outgoing calls (`call`, `call_receipt`, `tell`).
- `limits.py`: `AdmissionSettings` (replay-cache shares, per-issuer quotas, public rate and lifetime),
  `RateLimiter`, `LimitLog` (what /health reports).
- `journal.py`: `ReplayJournal`, `StoreReplayJournal`: CIDs of mutating invocations on disk until they
  expire, written before the handler runs.
- `supervisor.py`: `Supervisor` (one-for-one, all-for-one, rest-for-one, backoff, escalation) and
  `HeartbeatMonitor` (missed heartbeats -> lost).
"""

from agora.actor.behaviors import Actor, Behavior, CallContext, Handler, behavior
from agora.actor.journal import ReplayJournal, StoreReplayJournal
from agora.actor.limits import AdmissionSettings
from agora.actor.runtime import DEFAULT_INVOCATION_TTL, DEFAULT_PUBLIC_INVOCATION_TTL, MetricsSink, Runtime
from agora.actor.supervisor import ChildSpec, HeartbeatMonitor, Strategy, Supervisor

__all__ = [
    "DEFAULT_INVOCATION_TTL",
    "DEFAULT_PUBLIC_INVOCATION_TTL",
    "Actor",
    "AdmissionSettings",
    "Behavior",
    "CallContext",
    "ChildSpec",
    "Handler",
    "HeartbeatMonitor",
    "MetricsSink",
    "ReplayJournal",
    "Runtime",
    "StoreReplayJournal",
    "Strategy",
    "Supervisor",
    "behavior",
]
