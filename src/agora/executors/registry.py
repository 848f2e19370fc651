"""Which engines this node has, and the one place that says why an engine is missing.

`ExecutorRegistry.get(engine)` is what `compute` calls before starting a task: it returns the
executor or raises `executor_unavailable` with the engine's own reason, the same words that
`available()` puts into the node's capacity ad and that placement diagnostics show.

Probes are cheap but not free (docker pings its engine), so a probe result is kept for `probe_ttl_s`;
`refresh()` forgets them (e.g. after `agora node bench` or when an operator installed docker).

`default_registry` is the node's wiring of the four engines. Engines written elsewhere in this
package are imported lazily by module path, so a missing or broken one makes only that engine
unavailable ("not built" / "failed to initialize: ...") instead of breaking the node. Such a class is
built with `cls.for_node(work_root=..., cache_dir=...)` when it defines that classmethod, else `cls()`.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import get_args

from agora.errors import AgoraError
from agora.executors.firecracker import FirecrackerExecutor
from agora.executors.interfaces import Availability, Engine, Executor
from agora.executors.wasm import WasmExecutor

ENGINES: tuple[Engine, ...] = get_args(Engine)

#: engines implemented in modules that may be absent, by import path of their class
LAZY_EXECUTORS: dict[Engine, str] = {
    "process": "agora.executors.process.ProcessExecutor",
    "docker": "agora.executors.docker.DockerExecutor",
}


class ExecutorRegistry:
    def __init__(
        self,
        executors: Iterable[Executor] = (),
        *,
        probe_ttl_s: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._executors: dict[Engine, Executor] = {}
        self._missing: dict[Engine, str] = {}
        self._cache: dict[Engine, tuple[float, Availability]] = {}
        self._ttl = probe_ttl_s
        self._now = monotonic
        for ex in executors:
            self.register(ex)

    def register(self, executor: Executor) -> None:
        engine = _engine(executor.engine)
        self._executors[engine] = executor
        self._missing.pop(engine, None)
        self._cache.pop(engine, None)

    def mark_unavailable(self, engine: str, reason: str) -> None:
        """An engine this node cannot even construct, with the reason to show for it."""
        e = _engine(engine)
        self._executors.pop(e, None)
        self._cache.pop(e, None)
        self._missing[e] = reason

    def engines(self) -> list[Engine]:
        return [e for e in ENGINES if e in self._executors or e in self._missing]

    def refresh(self) -> None:
        self._cache.clear()

    def availability(self, engine: str) -> Availability:
        e = _engine(engine)
        if e in self._missing:
            return Availability(e, False, self._missing[e])
        ex = self._executors.get(e)
        if ex is None:
            return Availability(e, False, "not configured on this node")
        cached = self._cache.get(e)
        now = self._now()
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        try:
            av = ex.probe()
        except Exception as err:  # probes must not raise; if one does, say so instead of crashing
            av = Availability(e, False, f"probe failed: {err!r}")
        self._cache[e] = (now, av)
        return av

    def available(self) -> dict[Engine, Availability]:
        """Every engine agora knows, available or not, each with its reason."""
        return {e: self.availability(e) for e in ENGINES}

    def get(self, engine: str) -> Executor:
        av = self.availability(engine)
        if not av.available:
            raise AgoraError(
                "executor_unavailable", f"{av.engine}: {av.reason}", details={"engine": av.engine, "reason": av.reason}
            )
        return self._executors[av.engine]


def _engine(name: str) -> Engine:
    for e in ENGINES:
        if e == name:
            return e
    raise AgoraError("invalid_argument", f"unknown engine {name!r}", hint=f"engines: {', '.join(ENGINES)}")


def _load_class(path: str) -> type[Executor]:
    module_name, _, cls_name = path.rpartition(".")
    module = importlib.import_module(module_name)
    cls = getattr(module, cls_name)
    if not (isinstance(cls, type) and issubclass(cls, Executor)):
        raise TypeError(f"{path} is not an Executor class")
    return cls


def build_lazy(engine: Engine, path: str, work_root: Path, cache_dir: Path) -> Executor | str:
    """The executor, or the reason it cannot be had."""
    module_name = path.rpartition(".")[0]
    try:
        cls = _load_class(path)
    except ModuleNotFoundError as e:
        if e.name is not None and (module_name == e.name or module_name.startswith(e.name + ".")):
            return "not built"
        return f"failed to import: {e}"
    except Exception as e:
        return f"failed to import: {e!r}"
    try:
        factory = getattr(cls, "for_node", None)
        ex = factory(work_root=work_root, cache_dir=cache_dir) if callable(factory) else cls()
    except Exception as e:
        return f"failed to initialize: {e}"
    if not isinstance(ex, Executor):
        return f"failed to initialize: {path}.for_node returned {type(ex).__name__}"
    return ex


def default_registry(
    work_root: Path, cache_dir: Path, *, task_host_network: bool = False, task_userns: bool = False
) -> ExecutorRegistry:
    """All four engines as this node has them. `work_root` is where the node keeps task work dirs
    (engines may put scratch space under it), `cache_dir` its caches (wasm keeps modules in wasm/).
    `task_host_network`: the operator lets process tasks that ask for a network use the host's;
    `task_userns`: the operator lets process tasks create user namespaces inside their sandbox."""
    reg = ExecutorRegistry([WasmExecutor(cache_dir / "wasm")])
    for engine, path in LAZY_EXECUTORS.items():
        built = build_lazy(engine, path, work_root, cache_dir)
        if isinstance(built, str):
            reg.mark_unavailable(engine, built)
        else:
            if hasattr(built, "host_network"):
                built.host_network = task_host_network
            if hasattr(built, "nested_userns"):
                built.nested_userns = task_userns
            reg.register(built)
    reg.register(FirecrackerExecutor())
    return reg


__all__ = ["ENGINES", "LAZY_EXECUTORS", "ExecutorRegistry", "build_lazy", "default_registry"]
