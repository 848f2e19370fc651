"""Two nodes on the memory transport: a provider running real executors (wasm on wasmtime, and the
firecracker probe, which reports why it cannot run here) and a requester with a job runner.

Everything is real except the network (in-process) and the store (MemoryStore): UCAN invocations,
signed receipts, the executor, the CAS on disk, the capacity tracker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agora.actor import Runtime
from agora.clock import SYSTEM_CLOCK
from agora.compute import AllocationManager, ComputeSettings, DelegationBook, GrantsActor
from agora.executors.firecracker import FirecrackerExecutor
from agora.executors.registry import ExecutorRegistry
from agora.executors.wasm import WasmExecutor
from agora.identity import Keypair
from agora.models.capability import Capability, GiB
from agora.orchestrator import JobRunner, RunnerSettings
from agora.resources import CapacityTracker
from agora.storage import LocalCAS
from agora.store import MemoryStore
from agora.transport import MemoryNetwork, MemoryTransport

TOTAL = Capability(
    cpu_millis=4000, memory_bytes=4 * GiB, disk_bytes=20 * GiB, arch="x86_64", executors=frozenset({"wasm", "process"})
)


@dataclass
class Side:
    keypair: Keypair
    runtime: Runtime
    store: MemoryStore
    book: DelegationBook
    cas: LocalCAS
    home: Path

    @property
    def did(self) -> str:
        return self.keypair.did


@dataclass
class Provider(Side):
    manager: AllocationManager
    capacity: CapacityTracker
    wasm: WasmExecutor
    registry: ExecutorRegistry


@dataclass
class Requester(Side):
    runner: JobRunner


async def _side(
    net: MemoryNetwork, home: Path, keypair: Keypair | None = None, store: MemoryStore | None = None
) -> tuple[Keypair, Runtime, MemoryStore, DelegationBook, LocalCAS]:
    kp = keypair or Keypair.generate()
    transport = MemoryTransport(net, kp.did)
    await transport.start()
    runtime = Runtime(kp, transport)
    if store is None:
        store = MemoryStore(SYSTEM_CLOCK)
        await store.open()
    book = DelegationBook(kp, store)
    runtime.register(GrantsActor(book))
    await asyncio.to_thread(home.mkdir, parents=True, exist_ok=True)
    return kp, runtime, store, book, LocalCAS(home / "cas")


async def make_provider(
    net: MemoryNetwork,
    home: Path,
    total: Capability = TOTAL,
    manager_cls: type[AllocationManager] = AllocationManager,
    *,
    restart_of: Provider | None = None,
) -> Provider:
    """A provider node; `restart_of`: that (stopped) node started again, with its keys, store and home."""
    if restart_of is not None:
        kp, runtime, store, book, cas = await _side(net, home, restart_of.keypair, restart_of.store)
    else:
        kp, runtime, store, book, cas = await _side(net, home)
    wasm = WasmExecutor(home / "cache" / "wasm")
    registry = ExecutorRegistry([wasm, FirecrackerExecutor()])
    capacity = CapacityTracker(total)
    manager = manager_cls(
        keypair=kp,
        store=store,
        registry=registry,
        capacity=capacity,
        cas=cas,
        work_root=home / "work",
        settings=ComputeSettings(max_wait_s=2.0, log_drain_s=2.0),
    )
    await manager.recover()
    runtime.register(manager)
    await runtime.start()
    return Provider(kp, runtime, store, book, cas, home, manager, capacity, wasm, registry)


async def make_requester(net: MemoryNetwork, home: Path) -> Requester:
    kp, runtime, store, book, cas = await _side(net, home)
    runner = JobRunner(
        runtime=runtime,
        store=store,
        jobs_dir=home / "jobs",
        proofs_for=book.proofs_for,
        settings=RunnerSettings(status_wait_s=1.0, call_timeout=5.0, log_drain_s=2.0),
    )
    runtime.register(runner)
    await runtime.start()
    return Requester(kp, runtime, store, book, cas, home, runner)


async def grant(provider: Provider, requester: Requester, **kw: object) -> None:
    """What `agora node grant` does: the provider signs, the requester's node receives it by offer."""
    d = await provider.book.issue(requester.did, **kw)  # type: ignore[arg-type]
    await provider.runtime.call(requester.did, "/agora/node/delegation/offer", {"token": d.raw})


async def until(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def leftovers(provider: Provider) -> list[str]:
    """What the provider still holds after its allocations ended: [] when clean."""
    out = [f"reservation {a}" for a in provider.capacity.allocations]
    work = provider.home / "work"
    if work.exists():
        out += [f"work dir {p.name}" for p in work.iterdir()]
    if provider.capacity.free != provider.capacity.total:
        out.append(f"free {provider.capacity.free.describe()} != total {provider.capacity.total.describe()}")
    out += provider.wasm.leftovers()
    return out
