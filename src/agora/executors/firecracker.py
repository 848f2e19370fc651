"""The firecracker engine: micro-VMs, offered only where they can run.

Firecracker needs KVM (`/dev/kvm`, readable and writable by the node) and the `firecracker` binary.
Running VMs is not built yet, so even with both present the engine reports itself unavailable, with
that as the reason: a node must never advertise an engine it cannot run. What exists is the probe,
so that `agora node info`, capacity ads and placement diagnostics (`executor_unavailable:
firecracker`) can say precisely why a machine cannot take firecracker tasks.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from agora.errors import AgoraError
from agora.executors.interfaces import Availability, ExecHandle, ExecRequest, ExecResult, ExecStats, Executor, LogLine

NO_KVM = "no /dev/kvm (KVM not enabled or not permitted)"
KVM_DENIED = "/dev/kvm is not readable and writable by this user (add it to the kvm group)"
NO_BINARY = "firecracker binary not found"
NOT_IMPLEMENTED = "running firecracker micro-VMs is not implemented in this version of agora"


class FirecrackerExecutor(Executor):
    engine = "firecracker"

    def __init__(
        self,
        *,
        kvm_path: Path = Path("/dev/kvm"),
        binary: str = "firecracker",
        which: Callable[[str], str | None] = shutil.which,
        access: Callable[[Path, int], bool] = os.access,
    ) -> None:
        self.kvm_path = kvm_path
        self.binary = binary
        self._which = which
        self._access = access

    def probe(self) -> Availability:
        details: dict[str, str] = {"kvm": str(self.kvm_path)}
        if not self.kvm_path.exists():
            return Availability("firecracker", False, NO_KVM, details)
        if not self._access(self.kvm_path, os.R_OK | os.W_OK):
            return Availability("firecracker", False, KVM_DENIED, details)
        found = self._which(self.binary)
        if found is None:
            return Availability("firecracker", False, NO_BINARY, details)
        details["binary"] = found
        return Availability("firecracker", False, NOT_IMPLEMENTED, details)

    async def start(self, req: ExecRequest) -> ExecHandle:
        av = self.probe()
        raise AgoraError("executor_unavailable", f"firecracker: {av.reason}", details={"engine": "firecracker"})

    # No handle can exist (start always refuses); these only reject foreign handles cleanly.
    async def wait(self, handle: ExecHandle) -> ExecResult:
        raise _foreign(handle)

    async def cancel(self, handle: ExecHandle) -> None:
        raise _foreign(handle)

    def logs(self, handle: ExecHandle) -> AsyncIterator[LogLine]:
        raise _foreign(handle)

    async def stats(self, handle: ExecHandle) -> ExecStats:
        raise _foreign(handle)

    async def cleanup(self, handle: ExecHandle) -> None:
        raise _foreign(handle)


def _foreign(handle: ExecHandle) -> AgoraError:
    return AgoraError("invalid_argument", f"task {handle.request.task_id} is not a firecracker task")


__all__ = ["KVM_DENIED", "NOT_IMPLEMENTED", "NO_BINARY", "NO_KVM", "FirecrackerExecutor"]
