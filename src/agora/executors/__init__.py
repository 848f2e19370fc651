"""Sandboxes that run one task each, behind one interface.

Files:
  interfaces.py   the contract: ExecRequest, Limits, ExecResult, ExecStats, ExecHandle, Executor,
                  Availability, LogLine (everything else here implements or composes it)
  registry.py     ExecutorRegistry (engine -> executor, availability with reasons) and
                  default_registry(work_root, cache_dir), the node's wiring of all engines
  _common.py      what every executor shares: bounded capture, log fan-out, output-dir disk watcher,
                  work-dir checks, end reason -> error code
  wasm.py         WasmExecutor: WASI preview1 modules on wasmtime (the default engine, runs anywhere)
  _wasmrt.py      its wasmtime plumbing: engine, epoch ticker, module cache, epoch-deadline callback
  process.py      ProcessExecutor: a native command in bubblewrap with cgroup limits (cgroups.py)
  docker.py       DockerExecutor: containers through the Docker Engine API
  firecracker.py  FirecrackerExecutor: the probe that says why micro-VMs are unavailable here

process and docker are imported lazily by the registry (they pull in more of the system), so they
are not re-exported here; import them from their modules.
"""

from agora.executors.firecracker import FirecrackerExecutor
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
from agora.executors.registry import ExecutorRegistry, default_registry
from agora.executors.wasm import WasmExecutor

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
    "ExecutorRegistry",
    "FirecrackerExecutor",
    "Limits",
    "LogLine",
    "WasmExecutor",
    "default_registry",
]
