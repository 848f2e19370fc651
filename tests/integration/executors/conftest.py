"""Fixtures of the executor integration tests.

Shared: `programs_dir` (session): examples/wasm/*.c compiled once per session with zig (see
wasm_build.py), and the wasm fixtures `wasm_executor`, `wasm_catalog`, `wasm_env`.

Other engines: their fixtures live in their own modules, imported below, so that each author owns
one file. Contract (see conformance.py): `<engine>_env` yields an `ExecutorEnv`, and the engine's
test module subclasses `ConformanceSuite` overriding `env`. The process/docker modules are
conftest_process.py and conftest_docker.py (owned by the process/docker executor author).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from agora.executors.interfaces import ExecRequest, Limits
from agora.executors.wasm import WasmExecutor
from tests.integration.executors.conformance import ExecutorEnv, NetworkMode
from tests.integration.executors.wasm_build import EXAMPLES, compile_c

# ---- fixtures of the other engines (owned by the process/docker executor author) -----------------
# Imported by name so pytest sees their fixtures; a module that does not exist yet is simply absent.
for _name in ("conftest_process", "conftest_docker"):
    try:
        _mod = importlib.import_module(f"tests.integration.executors.{_name}")
    except ModuleNotFoundError as _e:
        if _e.name != f"tests.integration.executors.{_name}":
            raise  # a broken import inside the module must fail loudly
        continue
    globals().update({k: v for k, v in vars(_mod).items() if not k.startswith("_")})
# ---- end of the other engines' space ----------------------------------------------------------------


WASM_PROGRAMS = ("agora_test", "hello")


@pytest.fixture(scope="session")
def programs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our C examples compiled to wasm32-wasi, once per session (the first compile on a machine
    builds wasi-libc into zig's cache and takes tens of seconds)."""
    out = tmp_path_factory.mktemp("wasm-programs")
    for name in WASM_PROGRAMS:
        compile_c(EXAMPLES / f"{name}.c", out / f"{name}.wasm")
    return out


class WasmCatalog:
    """The conformance programs as one compiled C program whose first argument picks the behavior."""

    network_mode: NetworkMode = "unsupported"
    _programs = {
        "echo_args",
        "print_env",
        "cat_stdin",
        "cat_input",
        "write_input",
        "write_output",
        "exit_code",
        "sleep_forever",
        "ignore_sigterm",
        "alloc_memory",
        "fill_disk",
        "connect_tcp",
        "many_lines",
        "spin",
        "sleep_long",
        "trap",
    }

    def __init__(self, module: Path) -> None:
        self.module = module

    def supports(self, program: str) -> bool:
        return program in self._programs

    def request(
        self,
        program: str,
        work_dir: Path,
        args: Sequence[str] = (),
        *,
        task_id: str,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        limits: Limits | None = None,
        network: bool = False,
    ) -> ExecRequest:
        return ExecRequest(
            task_id=task_id,
            engine="wasm",
            work_dir=work_dir,
            module=str(self.module),
            args=[program, *args],
            env=dict(env or {}),
            stdin=stdin,
            limits=limits or Limits(timeout_s=30.0),
            network=network,
        )


@pytest.fixture
def wasm_cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "wasm-cache"


@pytest.fixture
def wasm_executor(wasm_cache_dir: Path) -> WasmExecutor:
    return WasmExecutor(wasm_cache_dir)


@pytest.fixture
def wasm_catalog(programs_dir: Path) -> WasmCatalog:
    return WasmCatalog(programs_dir / "agora_test.wasm")


def wasm_leftovers(ex: WasmExecutor) -> list[str]:
    return ex.leftovers()


@pytest.fixture
def wasm_env(wasm_executor: WasmExecutor, wasm_catalog: WasmCatalog, tmp_path: Path) -> Iterator[ExecutorEnv]:
    work_root = tmp_path / "work"
    work_root.mkdir()
    yield ExecutorEnv(wasm_executor, wasm_catalog, wasm_executor.leftovers, work_root)
