"""Actors: behaviors by command path, the dispatching runtime, supervision.

- `behaviors.py`: `Actor`, `@behavior(command, public=)`, `Behavior`, `CallContext`.
- `runtime.py`: `Runtime` — validates every incoming invocation before any handler runs, answers with
  signed receipts, and makes outgoing calls (`call`, `call_receipt`, `tell`).
- `supervisor.py`: `Supervisor` (one-for-one, all-for-one, rest-for-one, backoff, escalation) and
  `HeartbeatMonitor` (missed heartbeats -> lost).
"""

from agora.actor.behaviors import Actor, Behavior, CallContext, Handler, behavior
from agora.actor.runtime import DEFAULT_INVOCATION_TTL, MetricsSink, Runtime
from agora.actor.supervisor import ChildSpec, HeartbeatMonitor, Strategy, Supervisor

__all__ = [
    "DEFAULT_INVOCATION_TTL",
    "Actor",
    "Behavior",
    "CallContext",
    "ChildSpec",
    "Handler",
    "HeartbeatMonitor",
    "MetricsSink",
    "Runtime",
    "Strategy",
    "Supervisor",
    "behavior",
]
