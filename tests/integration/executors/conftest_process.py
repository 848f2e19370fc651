"""Fixtures of the process executor: a real bubblewrap sandbox in real cgroups.

`process_executor` (session) uses its own cgroup parent (`agora-test-<pid>`) and stage dir so that
`leftovers()` can tell exactly what a test left: task cgroups, sandbox processes, stage mounts.
The conformance conftest imports `process_env`; the test modules import what they use.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from agora.executors.cgroups import Cgroups
from agora.executors.process import ProcessExecutor
from tests.integration.executors.busybox_programs import BusyboxCatalog
from tests.integration.executors.conformance import ExecutorEnv
from tests.support import require, require_binary

SANDBOX_MARKERS = ("bwrap", "agora-gate", "agora-stage")


def process_catalog() -> BusyboxCatalog:
    return BusyboxCatalog(engine="process", network_mode="loopback")


def process_leftovers(ex: ProcessExecutor) -> list[str]:
    found: list[str] = []
    support = ex.cgroups.detect()
    for root in sorted(set(support.roots.values())):
        with contextlib.suppress(FileNotFoundError):
            found += [f"cgroup {p}" for p in root.iterdir() if p.is_dir()]
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            cmd = " ".join(child.cmdline())
            if any(marker in cmd for marker in SANDBOX_MARKERS):
                found.append(f"process {child.pid}: {cmd[:200]}")
    stage = ex.stage_dir
    if stage.exists() and (os.path.ismount(stage) or any(stage.iterdir())):
        found.append(f"stage dir {stage} is mounted or not empty")
    return found


@pytest.fixture(scope="session")
def process_executor() -> Iterator[ProcessExecutor]:
    require_binary("bwrap", "bubblewrap")
    require_binary("busybox", "busybox-static")
    cgroups = Cgroups(parent=f"agora-test-{os.getpid()}")
    # the stage dir must be reachable by the sandbox uid: pytest's own tmp dirs are 0700
    stage = Path(tempfile.gettempdir()) / f"agora-test-stage-{os.getpid()}"
    ex = ProcessExecutor(cgroups=cgroups, stage_dir=stage, term_grace_s=1.0, host_network=True)
    availability = ex.probe()
    require(availability.available, f"process executor unavailable: {availability.reason}")
    try:
        yield ex
    finally:
        for root in sorted(set(cgroups.detect().roots.values())):
            with contextlib.suppress(FileNotFoundError):
                root.rmdir()
        with contextlib.suppress(FileNotFoundError):
            stage.rmdir()


@pytest.fixture
def process_env(process_executor: ProcessExecutor, tmp_path: Path) -> ExecutorEnv:
    return ExecutorEnv(
        executor=process_executor,
        catalog=process_catalog(),
        leftovers=lambda: process_leftovers(process_executor),
        work_root=tmp_path,
    )
