"""Sandboxes that run one task each, behind one interface (placeholder; filled in with the registry)."""

from agora.executors.interfaces import (
    MAX_CAPTURE,
    Availability,
    EndReason,
    Engine,
    ExecHandle,
    ExecRequest,
    ExecResult,
    ExecStats,
    Executor,
    Limits,
    LogLine,
)

__all__ = [
    "MAX_CAPTURE",
    "Availability",
    "EndReason",
    "Engine",
    "ExecHandle",
    "ExecRequest",
    "ExecResult",
    "ExecStats",
    "Executor",
    "Limits",
    "LogLine",
]
