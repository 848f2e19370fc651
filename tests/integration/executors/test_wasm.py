"""The wasm executor: the conformance suite on real wasmtime with our compiled C programs, plus what
only wasm has (traps, module validity, the compiled-module cache, fuel, CPU share)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agora.errors import AgoraError
from agora.executors.interfaces import ExecRequest, Limits
from agora.executors.wasm import WasmExecutor
from tests.integration.executors.conformance import WAIT, ConformanceSuite, ExecutorEnv, first_line, run

MiB = 1024 * 1024


class TestWasmConformance(ConformanceSuite):
    test_fork_bomb_is_contained = None  # type: ignore[assignment]  # WASI cannot start processes at all

    @pytest.fixture
    def env(self, wasm_env: ExecutorEnv) -> ExecutorEnv:
        return wasm_env


async def test_probe_reports_available(wasm_executor: WasmExecutor) -> None:
    av = wasm_executor.probe()
    assert av.engine == "wasm" and av.available and av.reason == ""
    assert av.details["wasi"] == "preview1"


async def test_trap_is_reported_with_its_message(wasm_env: ExecutorEnv) -> None:
    result = await run(wasm_env, wasm_env.request("trap"))
    assert result.reason == "trap" and result.error_code == "module_trap" and result.exit_code is None
    assert "unreachable" in result.message


async def test_busy_loop_times_out(wasm_env: ExecutorEnv) -> None:
    result = await run(wasm_env, wasm_env.request("spin", limits=Limits(timeout_s=0.5)))
    assert result.reason == "timeout" and result.error_code == "task_timeout"
    assert result.stats.cpu_seconds > 0


async def test_cancel_stops_a_busy_loop(wasm_env: ExecutorEnv) -> None:
    ex = wasm_env.executor
    handle = await ex.start(wasm_env.request("spin", limits=Limits(timeout_s=WAIT)))
    try:
        await asyncio.wait_for(first_line(wasm_env, handle), WAIT)
        await ex.cancel(handle)
        result = await asyncio.wait_for(ex.wait(handle), WAIT)
    finally:
        await ex.cleanup(handle)
    assert result.reason == "cancelled"
    assert wasm_env.leftovers() == []


async def test_cpu_share_below_one_core_throttles(wasm_env: ExecutorEnv) -> None:
    result = await run(wasm_env, wasm_env.request("spin", limits=Limits(timeout_s=1.0, cpu_millis=250)))
    assert result.reason == "timeout"
    # the throttle keeps thread CPU at the share of wall time, plus at most one slice of slack
    assert result.stats.cpu_seconds <= result.stats.wall_seconds * 0.25 + 0.15


async def test_fuel_budget_ends_as_timeout(wasm_cache_dir: Path, wasm_env: ExecutorEnv) -> None:
    ex = WasmExecutor(wasm_cache_dir / "fuel", fuel=5_000_000)
    req = wasm_env.request("spin", limits=Limits(timeout_s=WAIT))
    result = await asyncio.wait_for(ex.run(req), WAIT)
    assert result.reason == "timeout" and result.error_code == "task_timeout"
    assert "fuel" in result.message
    ok = await asyncio.wait_for(ex.run(wasm_env.request("echo_args", "x")), WAIT)
    assert ok.ok and ok.stdout == b"x\n"
    assert ex.leftovers() == []


async def test_initial_memory_over_the_limit_is_oom(wasm_env: ExecutorEnv) -> None:
    result = await run(wasm_env, wasm_env.request("echo_args", "x", limits=Limits(memory_bytes=64 * 1024)))
    assert result.reason == "oom" and result.error_code == "task_oom"
    assert "initial memory" in result.message


async def test_argv0_is_the_module_name_and_command_prefixes_args(wasm_env: ExecutorEnv, programs_dir: Path) -> None:
    wd = wasm_env.work_dir()
    req = ExecRequest(
        task_id="argv",
        engine="wasm",
        work_dir=wd,
        module=str(programs_dir / "hello.wasm"),
        command=["first"],
        args=["second"],
        env={"AGORA_WHO": "tester"},
    )
    result = await run(wasm_env, req)
    assert result.ok, result
    assert result.stdout == b"hello from wasm, tester!\narg 1: first\narg 2: second\n"
    assert (wd / "outputs" / "hello.txt").read_text() == "hello, tester: 2 argument(s)\n"


async def test_module_path_relative_to_work_dir(wasm_env: ExecutorEnv, programs_dir: Path) -> None:
    wd = wasm_env.work_dir()
    (wd / "inputs" / "prog.wasm").write_bytes((programs_dir / "agora_test.wasm").read_bytes())
    req = ExecRequest(task_id="rel", engine="wasm", work_dir=wd, module="inputs/prog.wasm", args=["exit_code", "9"])
    result = await run(wasm_env, req)
    assert result.exit_code == 9


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "cannot be read"),
        (b"\0asm\x01\0\0\0garbage", "does not compile"),
        (b"not wasm at all", "not a wasm binary"),
        (b"(module)", "not a wasm binary"),
        (b"", "not a wasm binary"),
    ],
)
async def test_invalid_modules_are_refused_at_start(
    wasm_env: ExecutorEnv, tmp_path: Path, content: bytes | None, needle: str
) -> None:
    path = tmp_path / "bad.wasm"
    if content is not None:
        path.write_bytes(content)
    req = ExecRequest(task_id="bad", engine="wasm", work_dir=wasm_env.work_dir(), module=str(path))
    with pytest.raises(AgoraError) as err:
        await wasm_env.executor.start(req)
    assert err.value.code == "module_invalid" and needle in err.value.message
    assert wasm_env.leftovers() == []


WAT_UNKNOWN_IMPORT = b'(module (import "env" "f" (func)) (func (export "_start")))'
WAT_NO_START = b'(module (memory (export "memory") 1))'


@pytest.mark.parametrize(("wat", "needle"), [(WAT_UNKNOWN_IMPORT, "unknown import"), (WAT_NO_START, "no _start")])
async def test_modules_that_are_not_wasi_commands_are_refused(
    wasm_env: ExecutorEnv, tmp_path: Path, wat: bytes, needle: str
) -> None:
    import wasmtime

    path = tmp_path / "m.wasm"
    path.write_bytes(wasmtime.wat2wasm(wat.decode()))
    req = ExecRequest(task_id="m", engine="wasm", work_dir=wasm_env.work_dir(), module=str(path))
    with pytest.raises(AgoraError) as err:
        await wasm_env.executor.start(req)
    assert err.value.code == "module_invalid" and needle in err.value.message
    assert wasm_env.leftovers() == []


async def test_requests_for_other_engines_or_without_module_are_refused(wasm_env: ExecutorEnv) -> None:
    wd = wasm_env.work_dir()
    for req in (
        ExecRequest(task_id="x", engine="process", work_dir=wd, command=["true"]),
        ExecRequest(task_id="x", engine="wasm", work_dir=wd),
    ):
        with pytest.raises(AgoraError) as err:
            await wasm_env.executor.start(req)
        assert err.value.code == "invalid_argument"


async def test_compiled_modules_are_cached_on_disk(wasm_cache_dir: Path, wasm_env: ExecutorEnv) -> None:
    first = WasmExecutor(wasm_cache_dir)
    req = wasm_env.request("exit_code", "0")
    assert (await asyncio.wait_for(first.run(req), WAIT)).ok
    assert (await asyncio.wait_for(first.run(wasm_env.request("exit_code", "0")), WAIT)).ok
    assert first.module_cache.compiled == 1  # the second run used the in-memory module
    artifacts = list((wasm_cache_dir / "modules").glob("*.cwasm"))
    assert len(artifacts) == 1

    second = WasmExecutor(wasm_cache_dir)  # a restarted node
    assert (await asyncio.wait_for(second.run(wasm_env.request("exit_code", "0")), WAIT)).ok
    assert second.module_cache.compiled == 0 and second.module_cache.loaded_from_disk == 1

    artifacts[0].write_bytes(b"damaged")  # a damaged artifact is recompiled, never trusted
    third = WasmExecutor(wasm_cache_dir)
    assert (await asyncio.wait_for(third.run(wasm_env.request("exit_code", "0")), WAIT)).ok
    assert third.module_cache.compiled == 1
    assert artifacts[0].read_bytes() != b"damaged"


async def test_stdin_spool_files_do_not_outlive_start(wasm_env: ExecutorEnv, wasm_cache_dir: Path) -> None:
    ex = wasm_env.executor
    handle = await ex.start(wasm_env.request("cat_stdin", stdin=b"spooled"))
    try:
        assert list((wasm_cache_dir / "tmp").iterdir()) == []
        result = await asyncio.wait_for(ex.wait(handle), WAIT)
    finally:
        await ex.cleanup(handle)
    assert result.stdout == b"spooled"


async def test_disk_limit_stops_a_writer_that_would_go_on(wasm_env: ExecutorEnv) -> None:
    """A writer far beyond the limit is stopped by the watcher while it runs, not only at the end."""
    wd = wasm_env.work_dir()
    req = wasm_env.request("fill_disk", "100000", work_dir=wd, limits=Limits(disk_bytes=4 * MiB, timeout_s=WAIT))
    result = await run(wasm_env, req)
    assert result.reason == "disk_limit", result
    assert (wd / "outputs" / "fill").stat().st_size < 100_000 * MiB


async def test_a_module_stuck_in_a_host_call_does_not_hang_wait(wasm_cache_dir: Path, wasm_env: ExecutorEnv) -> None:
    """No epoch can interrupt a WASI sleep; wait() still answers shortly after the deadline, and
    cleanup finishes once the host call returns (the epoch callback then traps at once)."""
    ex = WasmExecutor(wasm_cache_dir / "grace", host_call_grace_s=0.2)
    handle = await ex.start(wasm_env.request("sleep_long", "3", limits=Limits(timeout_s=0.2)))
    result = await asyncio.wait_for(ex.wait(handle), WAIT)
    assert result.reason == "timeout" and result.error_code == "task_timeout"
    assert "abandoned" in result.message, result
    assert result.stdout == b"started\n"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while ex.leftovers() and loop.time() < deadline:
        await ex.cleanup(handle)
    assert ex.leftovers() == []
    assert await ex.wait(handle) == result  # the late end of the thread changes nothing
