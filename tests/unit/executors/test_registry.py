"""The executor registry: availability with reasons, get() refusing with them, lazy engines."""

from __future__ import annotations

import sys
import types
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agora.errors import AgoraError
from agora.executors.interfaces import (
    Availability,
    Engine,
    ExecHandle,
    ExecRequest,
    ExecResult,
    ExecStats,
    Executor,
    LogLine,
)
from agora.executors.process import ProcessExecutor
from agora.executors.registry import ENGINES, ExecutorRegistry, build_lazy, default_registry
from agora.executors.wasm import WasmExecutor


class ProbeOnly(Executor):
    """Only probe() matters to the registry; running is the executors' own tests' business."""

    def __init__(self, engine: Engine, available: bool = True, reason: str = "", boom: bool = False) -> None:
        self.engine = engine
        self._av = Availability(engine, available, reason)
        self._boom = boom
        self.probes = 0

    def probe(self) -> Availability:
        self.probes += 1
        if self._boom:
            raise RuntimeError("probe exploded")
        return self._av

    async def start(self, req: ExecRequest) -> ExecHandle:
        raise NotImplementedError

    async def wait(self, handle: ExecHandle) -> ExecResult:
        raise NotImplementedError

    async def cancel(self, handle: ExecHandle) -> None:
        raise NotImplementedError

    def logs(self, handle: ExecHandle) -> AsyncIterator[LogLine]:
        raise NotImplementedError

    async def stats(self, handle: ExecHandle) -> ExecStats:
        raise NotImplementedError

    async def cleanup(self, handle: ExecHandle) -> None:
        raise NotImplementedError


def test_get_returns_available_and_refuses_unavailable_with_the_reason() -> None:
    wasm = ProbeOnly("wasm")
    reg = ExecutorRegistry([wasm, ProbeOnly("docker", False, "no docker engine at /var/run/docker.sock")])
    assert reg.get("wasm") is wasm
    with pytest.raises(AgoraError) as err:
        reg.get("docker")
    assert err.value.code == "executor_unavailable"
    assert err.value.message == "docker: no docker engine at /var/run/docker.sock"
    assert err.value.details == {"engine": "docker", "reason": "no docker engine at /var/run/docker.sock"}


def test_available_lists_every_engine_with_a_reason() -> None:
    reg = ExecutorRegistry([ProbeOnly("wasm")])
    reg.mark_unavailable("process", "not built")
    av = reg.available()
    assert list(av) == list(ENGINES)
    assert av["wasm"].available and av["wasm"].reason == ""
    assert (av["process"].available, av["process"].reason) == (False, "not built")
    assert (av["docker"].available, av["docker"].reason) == (False, "not configured on this node")
    assert reg.engines() == ["wasm", "process"]
    with pytest.raises(AgoraError) as err:
        reg.get("process")
    assert err.value.message == "process: not built"


def test_unknown_engine_is_invalid_argument() -> None:
    reg = ExecutorRegistry()
    for call in (lambda: reg.get("qemu"), lambda: reg.availability("qemu"), lambda: reg.mark_unavailable("x", "y")):
        with pytest.raises(AgoraError) as err:
            call()
        assert err.value.code == "invalid_argument" and "engines: wasm, process, docker, firecracker" in err.value.hint


def test_a_probe_that_raises_makes_the_engine_unavailable_not_the_node() -> None:
    reg = ExecutorRegistry([ProbeOnly("docker", boom=True)])
    av = reg.availability("docker")
    assert not av.available and "probe exploded" in av.reason
    with pytest.raises(AgoraError) as err:
        reg.get("docker")
    assert err.value.code == "executor_unavailable"


def test_probe_results_are_cached_for_the_ttl_and_refresh_forgets_them() -> None:
    now = [100.0]
    ex = ProbeOnly("wasm")
    reg = ExecutorRegistry([ex], probe_ttl_s=10.0, monotonic=lambda: now[0])
    reg.get("wasm")
    reg.get("wasm")
    assert ex.probes == 1
    now[0] += 10.0
    reg.get("wasm")
    assert ex.probes == 2
    reg.refresh()
    reg.available()
    assert ex.probes == 3


def test_register_replaces_a_missing_mark() -> None:
    reg = ExecutorRegistry()
    reg.mark_unavailable("wasm", "not built")
    ex = ProbeOnly("wasm")
    reg.register(ex)
    assert reg.get("wasm") is ex


@pytest.fixture
def fake_module() -> Iterator[types.ModuleType]:
    """A module that exists only in sys.modules, to exercise the lazy import paths."""
    mod = types.ModuleType("agora_test_lazy_engine")
    sys.modules[mod.__name__] = mod
    try:
        yield mod
    finally:
        del sys.modules[mod.__name__]


def test_build_lazy_reasons(tmp_path: Path, fake_module: types.ModuleType) -> None:
    name = fake_module.__name__
    assert build_lazy("docker", "agora.executors.no_such_engine.X", tmp_path, tmp_path) == "not built"
    assert build_lazy("docker", f"{name}.Missing", tmp_path, tmp_path).startswith("failed to import")

    class Broken(ProbeOnly):
        def __init__(self) -> None:
            raise OSError("docker.sock: permission denied")

    class Built(ProbeOnly):
        seen: dict[str, Path] = {}

        @classmethod
        def for_node(cls, work_root: Path, cache_dir: Path) -> Built:
            cls.seen = {"work_root": work_root, "cache_dir": cache_dir}
            return cls("docker")

    fake_module.Broken = Broken  # type: ignore[attr-defined]
    fake_module.Built = Built  # type: ignore[attr-defined]
    fake_module.NotAnExecutor = dict  # type: ignore[attr-defined]
    assert build_lazy("docker", f"{name}.Broken", tmp_path, tmp_path) == (
        "failed to initialize: docker.sock: permission denied"
    )
    assert build_lazy("docker", f"{name}.NotAnExecutor", tmp_path, tmp_path).startswith("failed to import")
    built = build_lazy("docker", f"{name}.Built", tmp_path / "w", tmp_path / "c")
    assert isinstance(built, Built)
    assert Built.seen == {"work_root": tmp_path / "w", "cache_dir": tmp_path / "c"}


def test_build_lazy_reports_a_missing_dependency_as_an_import_failure(tmp_path: Path) -> None:
    # a module whose own import fails on a third-party package is broken, not "not built"
    src = tmp_path / "agora_test_lazy_dep.py"
    src.write_text("import agora_no_such_dependency_xyz\n")
    sys.path.insert(0, str(tmp_path))
    try:
        reason = build_lazy("docker", "agora_test_lazy_dep.X", tmp_path, tmp_path)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("agora_test_lazy_dep", None)
    assert reason.startswith("failed to import") and "agora_no_such_dependency_xyz" in reason


def test_default_registry_has_every_engine_and_wasm_runs_anywhere(tmp_path: Path) -> None:
    reg = default_registry(tmp_path / "work", tmp_path / "cache")
    av = reg.available()
    assert set(av) == set(ENGINES)
    assert av["wasm"].available
    wasm = reg.get("wasm")
    assert isinstance(wasm, WasmExecutor) and wasm.cache_dir == tmp_path / "cache" / "wasm"
    for engine in ENGINES:
        assert av[engine].available or av[engine].reason, f"{engine} unavailable without a reason"
    assert not av["firecracker"].available


def test_the_operators_sandbox_opt_ins_reach_the_process_executor(tmp_path: Path) -> None:
    for network, userns in ((False, False), (True, True)):
        reg = default_registry(tmp_path / "work", tmp_path / "cache", task_host_network=network, task_userns=userns)
        process = reg._executors.get("process")  # present whenever psutil imports (it is a dependency)
        assert isinstance(process, ProcessExecutor)
        assert (process.host_network, process.nested_userns) == (network, userns)
