"""The one conformance suite every executor passes (wasm, process, docker; firecracker when it exists).

How an engine plugs in (the agreement between the executor authors):

* its conftest module provides a fixture `<engine>_env` that yields an `ExecutorEnv`: the executor,
  a `ProgramCatalog` and a `leftovers()` check (processes, temp dirs, cgroups, containers, threads:
  anything of a finished task still alive, as human-readable strings; [] when clean);
* its test module subclasses `ConformanceSuite` and overrides the `env` fixture to return it:

      class TestWasmConformance(ConformanceSuite):
          @pytest.fixture
          def env(self, wasm_env: ExecutorEnv) -> ExecutorEnv:
              return wasm_env

The catalog turns a program name plus arguments into an `ExecRequest` (wasm: our compiled C program
examples/wasm/agora_test.c; process/docker: busybox sh snippets). Program contract, args after the name:

  echo_args A...        each A on its own line to stdout, then the line "stderr-line" to stderr; exit 0
  print_env NAME        "NAME=value" to stdout; exit 4 when NAME is unset
  cat_stdin             copy stdin to stdout
  cat_input NAME        copy inputs/NAME to stdout; exit 5 when it cannot be opened
  write_input NAME      try to append to inputs/NAME and to create inputs/NAME.new; print "denied" and
                        exit 0 when both fail, print "written" and exit 6 otherwise
  write_output NAME TXT write TXT to outputs/NAME; exit 0
  exit_code N           exit N
  sleep_forever         print "started" (flushed), then sleep forever
  ignore_sigterm        like sleep_forever, but SIGTERM is ignored (wasm: no signals, same program)
  alloc_memory MIB      allocate and touch MIB MiB; exit 0 when it could ("allocated ..."), else killed or
                        a non-zero exit
  fill_disk MIB         write MIB MiB to outputs/fill, print "filled"; exit 0
  connect_tcp PORT      connect to 127.0.0.1:PORT; print "connected" and exit 0, or exit non-zero
  fork_bomb             fork without bound (process only; others report supports() False)
  many_lines N          print N lines "line 0" ... "line N-1"

Timing: no assertion on durations; every wait is bounded by `asyncio.wait_for`.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import pytest

from agora.errors import AgoraError
from agora.executors.interfaces import ExecHandle, ExecRequest, ExecResult, Executor, Limits, LogLine

MiB = 1024 * 1024
#: bound on any single await in the suite: generous for slow CI machines, never a timing assertion
WAIT = 60.0

NetworkMode = Literal["loopback", "unsupported", "no_host_loopback"]


class ProgramCatalog(Protocol):
    #: "loopback": with network=True a task reaches a listener on the host's 127.0.0.1;
    #: "unsupported": start() refuses network=True with AgoraError("invalid_argument") (wasm);
    #: "no_host_loopback": the task gets a network but not the host's loopback (docker bridge)
    network_mode: NetworkMode

    def supports(self, program: str) -> bool: ...

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
    ) -> ExecRequest: ...


@dataclass
class ExecutorEnv:
    executor: Executor
    catalog: ProgramCatalog
    leftovers: Callable[[], list[str]]
    work_root: Path

    def work_dir(self, name: str = "task") -> Path:
        d = self.work_root / f"{name}-{uuid.uuid4().hex[:8]}"
        (d / "inputs").mkdir(parents=True)
        (d / "outputs").mkdir()
        return d

    def request(self, program: str, *args: str, work_dir: Path | None = None, **kw: object) -> ExecRequest:
        if not self.catalog.supports(program):
            pytest.skip(f"{self.executor.engine} has no {program} program")
        wd = work_dir if work_dir is not None else self.work_dir(program)
        return self.catalog.request(program, wd, args, task_id=f"{program}-{uuid.uuid4().hex[:8]}", **kw)  # type: ignore[arg-type]


async def run(env: ExecutorEnv, req: ExecRequest) -> ExecResult:
    handle = await asyncio.wait_for(env.executor.start(req), WAIT)
    try:
        return await asyncio.wait_for(env.executor.wait(handle), WAIT)
    finally:
        await asyncio.wait_for(env.executor.cleanup(handle), WAIT)


async def collect_logs(env: ExecutorEnv, handle: ExecHandle, limit: int = 100_000) -> list[LogLine]:
    out: list[LogLine] = []
    async for line in env.executor.logs(handle):
        out.append(line)
        assert len(out) <= limit, "logs() did not end"
    return out


async def first_line(env: ExecutorEnv, handle: ExecHandle) -> LogLine:
    async for line in env.executor.logs(handle):
        return line
    raise AssertionError("logs() ended without a line")


@dataclass
class Listener:
    port: int
    accepted: list[str]


def _listen() -> Iterator[Listener]:
    """A loopback TCP listener in a thread that records every connection it accepts."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.05)
    stop = threading.Event()
    listener = Listener(srv.getsockname()[1], [])

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, addr = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            listener.accepted.append(f"{addr[0]}:{addr[1]}")
            conn.close()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield listener
    finally:
        stop.set()
        t.join(5)
        srv.close()


def assert_clean(env: ExecutorEnv) -> None:
    left = env.leftovers()
    assert left == [], f"left behind after cleanup: {left}"


class ConformanceSuite:
    """Subclass per engine and override `env` (see the module docstring)."""

    @pytest.fixture
    def env(self) -> ExecutorEnv:
        raise NotImplementedError("override the env fixture in the engine's test module")

    @pytest.fixture
    def tcp_listener(self) -> Iterator[Listener]:
        yield from _listen()

    # -- output ---------------------------------------------------------------------------------

    async def test_stdout_and_stderr_are_captured_and_streamed(self, env: ExecutorEnv) -> None:
        ex = env.executor
        handle = await ex.start(env.request("echo_args", "alpha", "two words", "ünï"))
        try:
            lines, result = await asyncio.wait_for(asyncio.gather(collect_logs(env, handle), ex.wait(handle)), WAIT)
        finally:
            await ex.cleanup(handle)
        assert result.ok and result.reason == "exited" and result.exit_code == 0 and result.error_code is None
        assert result.stdout == "alpha\ntwo words\nünï\n".encode()
        assert result.stderr == b"stderr-line\n"
        assert [(x.stream, x.line) for x in lines if x.stream == "stdout"] == [
            ("stdout", "alpha"),
            ("stdout", "two words"),
            ("stdout", "ünï"),
        ]
        assert [(x.stream, x.line) for x in lines if x.stream == "stderr"] == [("stderr", "stderr-line")]

    async def test_logs_are_live_while_the_task_runs(self, env: ExecutorEnv) -> None:
        ex = env.executor
        handle = await ex.start(env.request("sleep_forever", limits=Limits(timeout_s=WAIT)))
        try:
            line = await asyncio.wait_for(first_line(env, handle), WAIT)
            assert (line.stream, line.line) == ("stdout", "started")
            await ex.cancel(handle)
            result = await asyncio.wait_for(ex.wait(handle), WAIT)
        finally:
            await ex.cleanup(handle)
        assert result.reason == "cancelled" and result.error_code == "task_cancelled"
        assert result.exit_code is None

    async def test_many_lines_arrive_in_order(self, env: ExecutorEnv) -> None:
        ex = env.executor
        handle = await ex.start(env.request("many_lines", "2000"))
        try:
            lines, result = await asyncio.wait_for(asyncio.gather(collect_logs(env, handle), ex.wait(handle)), WAIT)
        finally:
            await ex.cleanup(handle)
        assert result.ok
        assert [x.line for x in lines if x.stream == "stdout"] == [f"line {i}" for i in range(2000)]

    async def test_late_log_reader_gets_the_history(self, env: ExecutorEnv) -> None:
        ex = env.executor
        handle = await ex.start(env.request("echo_args", "x", "y"))
        try:
            result = await asyncio.wait_for(ex.wait(handle), WAIT)
            lines = await asyncio.wait_for(collect_logs(env, handle), WAIT)
        finally:
            await ex.cleanup(handle)
        assert result.ok
        assert [x.line for x in lines if x.stream == "stdout"] == ["x", "y"]

    # -- exit codes, args, env, stdin -----------------------------------------------------------

    @pytest.mark.parametrize("code", [0, 1, 42])
    async def test_exit_codes(self, env: ExecutorEnv, code: int) -> None:
        result = await run(env, env.request("exit_code", str(code)))
        assert result.reason == "exited" and result.exit_code == code
        assert result.error_code == (None if code == 0 else "task_failed")
        assert result.ok is (code == 0)

    async def test_args_are_passed_verbatim(self, env: ExecutorEnv) -> None:
        args = ["plain", "with space", "", "quote'\"", "$HOME", "*", "--flag=1"]
        result = await run(env, env.request("echo_args", *args))
        assert result.ok
        assert result.stdout.decode().split("\n")[:-1] == args

    async def test_env_is_passed(self, env: ExecutorEnv) -> None:
        result = await run(env, env.request("print_env", "AGORA_X", env={"AGORA_X": "v a=l", "OTHER": "1"}))
        assert result.ok and result.stdout == b"AGORA_X=v a=l\n"
        unset = await run(env, env.request("print_env", "AGORA_NOT_SET", env={"OTHER": "1"}))
        assert unset.reason == "exited" and unset.exit_code == 4

    async def test_stdin_is_passed(self, env: ExecutorEnv) -> None:
        data = b"line one\n\x00binary\xff\nend"
        result = await run(env, env.request("cat_stdin", stdin=data))
        assert result.ok and result.stdout == data
        empty = await run(env, env.request("cat_stdin"))
        assert empty.ok and empty.stdout == b""

    # -- files ----------------------------------------------------------------------------------

    async def test_inputs_are_readable(self, env: ExecutorEnv) -> None:
        wd = env.work_dir()
        (wd / "inputs" / "data.txt").write_bytes(b"input content\n")
        result = await run(env, env.request("cat_input", "data.txt", work_dir=wd))
        assert result.ok and result.stdout == b"input content\n"
        missing = await run(env, env.request("cat_input", "nope.txt", work_dir=wd))
        assert missing.reason == "exited" and missing.exit_code == 5

    async def test_inputs_are_read_only(self, env: ExecutorEnv) -> None:
        wd = env.work_dir()
        (wd / "inputs" / "data.txt").write_bytes(b"original")
        result = await run(env, env.request("write_input", "data.txt", work_dir=wd))
        assert result.stdout.strip() == b"denied", result
        assert result.ok
        assert (wd / "inputs" / "data.txt").read_bytes() == b"original"
        assert not (wd / "inputs" / "data.txt.new").exists()

    async def test_outputs_are_collected(self, env: ExecutorEnv) -> None:
        wd = env.work_dir()
        result = await run(env, env.request("write_output", "result.txt", "the answer", work_dir=wd))
        assert result.ok
        assert (wd / "outputs" / "result.txt").read_text() == "the answer"

    async def test_missing_work_dirs_are_refused(self, env: ExecutorEnv, tmp_path: Path) -> None:
        wd = tmp_path / "no-outputs"
        (wd / "inputs").mkdir(parents=True)
        with pytest.raises(AgoraError) as err:
            await env.executor.start(env.request("echo_args", "x", work_dir=wd))
        assert err.value.code == "invalid_argument"
        assert_clean(env)

    # -- limits ---------------------------------------------------------------------------------

    @pytest.mark.parametrize("program", ["sleep_forever", "ignore_sigterm"])
    async def test_wall_clock_timeout_kills(self, env: ExecutorEnv, program: str) -> None:
        result = await run(env, env.request(program, limits=Limits(timeout_s=1.0)))
        assert result.reason == "timeout" and result.error_code == "task_timeout"
        assert result.exit_code is None and not result.ok
        assert result.stdout == b"started\n"  # what it printed before is kept
        assert_clean(env)

    async def test_memory_limit_kills(self, env: ExecutorEnv) -> None:
        result = await run(env, env.request("alloc_memory", "512", limits=Limits(memory_bytes=48 * MiB)))
        assert result.reason == "oom" and result.error_code == "task_oom", result
        assert not result.ok
        assert_clean(env)

    async def test_memory_within_limit_is_fine(self, env: ExecutorEnv) -> None:
        result = await run(env, env.request("alloc_memory", "8", limits=Limits(memory_bytes=128 * MiB)))
        assert result.ok, result
        assert b"allocated" in result.stdout

    async def test_disk_limit_ends_the_task(self, env: ExecutorEnv) -> None:
        wd = env.work_dir()
        result = await run(env, env.request("fill_disk", "64", work_dir=wd, limits=Limits(disk_bytes=2 * MiB)))
        assert result.reason == "disk_limit" and result.error_code == "task_disk_limit", result
        assert not result.ok
        assert_clean(env)

    async def test_disk_within_limit_is_fine(self, env: ExecutorEnv) -> None:
        wd = env.work_dir()
        result = await run(env, env.request("fill_disk", "1", work_dir=wd, limits=Limits(disk_bytes=8 * MiB)))
        assert result.ok, result
        assert (wd / "outputs" / "fill").stat().st_size == MiB

    async def test_no_network_by_default(self, env: ExecutorEnv, tcp_listener: Listener) -> None:
        result = await run(env, env.request("connect_tcp", str(tcp_listener.port)))
        assert result.reason == "exited" and result.exit_code not in (0, None), result
        assert b"connected" not in result.stdout
        assert tcp_listener.accepted == []

    async def test_network_when_asked(self, env: ExecutorEnv, tcp_listener: Listener) -> None:
        mode = env.catalog.network_mode
        if mode == "unsupported":
            with pytest.raises(AgoraError) as err:
                await env.executor.start(env.request("connect_tcp", str(tcp_listener.port), network=True))
            assert err.value.code == "invalid_argument"
            assert_clean(env)
            return
        if mode == "no_host_loopback":
            # a bridge of the task's own (docker): the only addresses tests may use are the host's loopback,
            # which is not on that network, so what is checked is that the task got a network at all
            result = await run(env, env.request("net_ifaces", network=True))
            assert result.ok and set(result.stdout.split()) - {b"lo"}, result
            assert_clean(env)
            return
        result = await run(env, env.request("connect_tcp", str(tcp_listener.port), network=True))
        assert result.ok and b"connected" in result.stdout, result
        assert len(tcp_listener.accepted) == 1

    async def test_fork_bomb_is_contained(self, env: ExecutorEnv) -> None:
        result = await run(env, env.request("fork_bomb", limits=Limits(pids=16, timeout_s=3.0)))
        assert not result.ok
        assert result.reason in ("exited", "timeout", "oom"), result
        assert_clean(env)

    # -- cancel, stats, cleanup -----------------------------------------------------------------

    async def test_cancel_is_idempotent_and_harmless_after_the_end(self, env: ExecutorEnv) -> None:
        ex = env.executor
        handle = await ex.start(env.request("sleep_forever", limits=Limits(timeout_s=WAIT)))
        try:
            await asyncio.wait_for(first_line(env, handle), WAIT)
            await ex.cancel(handle)
            await ex.cancel(handle)
            result = await asyncio.wait_for(ex.wait(handle), WAIT)
            await ex.cancel(handle)
            again = await asyncio.wait_for(ex.wait(handle), WAIT)
        finally:
            await ex.cleanup(handle)
        assert result.reason == "cancelled" and again == result

        done = await ex.start(env.request("exit_code", "0"))
        try:
            finished = await asyncio.wait_for(ex.wait(done), WAIT)
            await ex.cancel(done)
            assert await asyncio.wait_for(ex.wait(done), WAIT) == finished
        finally:
            await ex.cleanup(done)
        assert finished.ok
        assert_clean(env)

    async def test_stats_of_a_finished_task(self, env: ExecutorEnv) -> None:
        ex = env.executor
        handle = await ex.start(env.request("alloc_memory", "4", limits=Limits(memory_bytes=128 * MiB)))
        try:
            result = await asyncio.wait_for(ex.wait(handle), WAIT)
            stats = await ex.stats(handle)
        finally:
            await ex.cleanup(handle)
        assert result.ok
        assert stats == result.stats
        assert stats.wall_seconds > 0 and stats.cpu_seconds >= 0
        assert stats.peak_memory_bytes >= 4 * MiB

    async def test_stats_while_running(self, env: ExecutorEnv) -> None:
        ex = env.executor
        handle = await ex.start(env.request("sleep_forever", limits=Limits(timeout_s=WAIT)))
        try:
            await asyncio.wait_for(first_line(env, handle), WAIT)
            stats = await ex.stats(handle)
            assert stats.wall_seconds > 0
        finally:
            await ex.cancel(handle)
            await ex.cleanup(handle)

    async def test_cleanup_leaves_nothing_and_is_idempotent(self, env: ExecutorEnv) -> None:
        ex = env.executor
        handles = [
            await ex.start(env.request("echo_args", "x")),
            await ex.start(env.request("exit_code", "3")),
            await ex.start(env.request("sleep_forever", limits=Limits(timeout_s=WAIT))),
        ]
        await asyncio.wait_for(first_line(env, handles[2]), WAIT)
        await asyncio.wait_for(ex.wait(handles[0]), WAIT)
        # the sleeper is cleaned up while it still runs: cleanup must stop it first
        for h in handles:
            await asyncio.wait_for(ex.cleanup(h), WAIT)
        assert_clean(env)
        for h in handles:
            await asyncio.wait_for(ex.cleanup(h), WAIT)
        assert_clean(env)

    async def test_run_helper_and_parallel_tasks(self, env: ExecutorEnv) -> None:
        dirs = [env.work_dir(f"p{i}") for i in range(3)]
        reqs = [env.request("write_output", "o.txt", f"task {i}", work_dir=d) for i, d in enumerate(dirs)]
        results = await asyncio.wait_for(asyncio.gather(*(env.executor.run(r) for r in reqs)), WAIT)
        assert [r.ok for r in results] == [True, True, True]
        assert [r.task_id for r in results] == [r.task_id for r in reqs]
        assert [(d / "outputs" / "o.txt").read_text() for d in dirs] == ["task 0", "task 1", "task 2"]
        assert_clean(env)
