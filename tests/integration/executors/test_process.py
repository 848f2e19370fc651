"""The process executor: the shared conformance suite plus what only a bubblewrap sandbox promises."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import tempfile
from pathlib import Path

import psutil
import pytest

from agora.errors import AgoraError
from agora.executors.cgroups import Cgroups
from agora.executors.interfaces import ExecRequest, Limits
from agora.executors.process import ProcessExecutor
from tests.integration.executors.conformance import WAIT, ConformanceSuite, ExecutorEnv, assert_clean, run
from tests.integration.executors.conftest_process import process_catalog, process_leftovers
from tests.support import require


class TestProcessConformance(ConformanceSuite):
    @pytest.fixture
    def env(self, process_env: ExecutorEnv) -> ExecutorEnv:
        return process_env


def _cg_file(handle: object, ctrl: str, name: str) -> str:
    cg = handle.cgroup  # type: ignore[attr-defined]
    assert cg is not None, "the task runs without a cgroup"
    path = cg.dirs["" if cg.version == "v2" else ctrl] / name
    return path.read_text().strip()


async def test_limits_are_written_into_the_task_cgroup(process_env: ExecutorEnv) -> None:
    ex = process_env.executor
    limits = Limits(memory_bytes=96 * 1024 * 1024, cpu_millis=500, pids=21, timeout_s=WAIT)
    handle = await ex.start(process_env.request("sleep_forever", limits=limits))
    try:
        async for _ in ex.logs(handle):
            break
        cg = handle.cgroup  # type: ignore[attr-defined]
        if cg.version == "v2":
            assert _cg_file(handle, "memory", "memory.max") == str(96 * 1024 * 1024)
            assert _cg_file(handle, "cpu", "cpu.max") == "50000 100000"
        else:
            assert _cg_file(handle, "memory", "memory.limit_in_bytes") == str(96 * 1024 * 1024)
            assert _cg_file(handle, "cpu", "cpu.cfs_quota_us") == "50000"
        assert _cg_file(handle, "pids", "pids.max") == "21"
        members = cg.pids()
        assert len(members) >= 3  # bwrap, the sandbox's init, the task (sh and its sleep)
        assert handle.proc.pid in members  # type: ignore[attr-defined]
    finally:
        await ex.cancel(handle)
        await ex.cleanup(handle)
    assert not cg.exists()
    assert_clean(process_env)


async def test_fork_bomb_hits_the_pids_limit_and_is_ended(process_env: ExecutorEnv) -> None:
    ex = process_env.executor
    handle = await ex.start(process_env.request("fork_bomb", limits=Limits(pids=16, timeout_s=3.0)))
    try:
        result = await asyncio.wait_for(ex.wait(handle), WAIT)
        events = _cg_file(handle, "pids", "pids.events")  # "max N": forks refused at the limit
        assert int(events.split()[1]) > 0, events
    finally:
        await ex.cleanup(handle)
    assert not result.ok
    assert_clean(process_env)


async def test_cancel_kills_a_task_that_ignores_sigterm(process_env: ExecutorEnv) -> None:
    ex = process_env.executor
    handle = await ex.start(process_env.request("ignore_sigterm", limits=Limits(timeout_s=WAIT)))
    try:
        async for line in ex.logs(handle):
            assert line.line == "started"
            break
        await asyncio.wait_for(ex.cancel(handle), WAIT)
        result = await asyncio.wait_for(ex.wait(handle), WAIT)
        assert handle.cgroup.pids() == set()  # type: ignore[attr-defined]
    finally:
        await ex.cleanup(handle)
    assert result.reason == "cancelled" and result.exit_code is None
    assert_clean(process_env)


async def test_background_children_die_with_the_task(process_env: ExecutorEnv) -> None:
    result = await run(process_env, process_env.request("spawn_and_exit", "5"))
    assert result.ok and result.stdout == b"spawned\n"
    assert_clean(process_env)


@pytest.mark.parametrize("path", ["/usr/agora-test", "/etc/agora-test", "/agora-test", "/work/inputs/x"])
async def test_the_root_is_read_only(process_env: ExecutorEnv, path: str) -> None:
    result = await run(process_env, process_env.request("write_system", path))
    assert result.ok and result.stdout == b"denied\n", result


async def test_scratch_dirs_are_writable(process_env: ExecutorEnv) -> None:
    for path in ("/tmp/x", "/work/scratch"):
        result = await run(process_env, process_env.request("write_system", path))
        assert result.ok and result.stdout == b"written\n", (path, result)


async def test_privileges_are_dropped(process_env: ExecutorEnv) -> None:
    result = await run(process_env, process_env.request("whoami"))
    assert result.ok, result
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "uid=65534 gid=65534"
    caps = dict(line.split(":\t") for line in lines[1:])
    assert set(caps) == {"CapPrm", "CapEff", "CapBnd", "CapAmb"}
    assert all(int(v, 16) == 0 for v in caps.values()), caps


async def test_as_root_the_task_is_unprivileged_on_the_host_too(process_env: ExecutorEnv) -> None:
    ex = process_env.executor
    assert isinstance(ex, ProcessExecutor)
    if not ex.root_mode:
        pytest.skip("the node is not root: the task runs as the node's own uid")
    wd = process_env.work_dir()
    handle = await ex.start(process_env.request("sleep_forever", work_dir=wd, limits=Limits(timeout_s=WAIT)))
    try:
        async for _ in ex.logs(handle):
            break
        uids = {psutil.Process(pid).uids().real for pid in handle.cgroup.pids() - {handle.proc.pid}}  # type: ignore[attr-defined]
        assert uids == {65534}
        assert (wd / "outputs").stat().st_uid == 65534  # only while it runs
    finally:
        await ex.cancel(handle)
        await ex.cleanup(handle)
    assert (wd / "outputs").stat().st_uid == 0  # given back to its owner


async def test_only_loopback_without_network(process_env: ExecutorEnv) -> None:
    result = await run(process_env, process_env.request("net_ifaces"))
    assert result.ok and result.stdout.split() == [b"lo"], result


async def test_the_host_environment_does_not_leak(
    process_env: ExecutorEnv,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGORA_HOST_SECRET", "s3cret")
    leaked = await run(process_env, process_env.request("print_env", "AGORA_HOST_SECRET"))
    assert leaked.reason == "exited" and leaked.exit_code == 4
    home = await run(process_env, process_env.request("print_env", "HOME"))
    assert home.stdout == b"HOME=/work\n"


async def test_a_missing_command_is_an_executor_error(process_env: ExecutorEnv) -> None:
    req = process_env.request("exit_code", "0")
    req = dataclasses.replace(req, command=["/no/such/binary"], args=[])
    result = await run(process_env, req)
    assert result.reason == "error" and result.error_code == "executor_failed"
    assert "/no/such/binary" in result.message
    assert_clean(process_env)


@pytest.mark.parametrize(
    "change",
    [
        {"command": []},
        {"command": [""]},
        {"env": {"A=B": "x"}},
        {"env": {"": "x"}},
        {"args": ["nul\0byte"]},
        {"engine": "wasm"},
    ],
)
async def test_bad_requests_are_refused_before_anything_runs(
    process_env: ExecutorEnv,
    change: dict[str, object],
) -> None:
    req = dataclasses.replace(process_env.request("exit_code", "0"), **change)  # type: ignore[arg-type]
    with pytest.raises(AgoraError) as err:
        await process_env.executor.start(req)
    assert err.value.code == "invalid_argument"
    assert_clean(process_env)


async def test_probe_and_start_report_a_missing_bwrap(tmp_path: Path) -> None:
    ex = ProcessExecutor(bwrap=str(tmp_path / "no-bwrap"), cgroups=Cgroups(parent=f"agora-test-{os.getpid()}"))
    availability = ex.probe()
    assert not availability.available and "no-bwrap" in availability.reason
    wd = tmp_path / "w"
    (wd / "inputs").mkdir(parents=True)
    (wd / "outputs").mkdir()
    with pytest.raises(AgoraError) as err:
        await ex.start(ExecRequest("t", "process", wd, command=["true"]))
    assert err.value.code == "executor_unavailable"


async def test_without_cgroups_it_says_so_and_still_runs(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text("22 1 0:5 / / rw - ext4 /dev/vda rw\n")
    stage = Path(tempfile.gettempdir()) / f"agora-test-stage-nocg-{os.getpid()}"
    ex = ProcessExecutor(cgroups=Cgroups(mountinfo=info), stage_dir=stage, term_grace_s=0.5)
    try:
        availability = ex.probe()
        assert availability.available, availability
        assert availability.details["cgroup"] == "none"
        assert "no cgroup filesystem" in availability.details["cgroup_reason"]
        env = ExecutorEnv(ex, process_catalog(), lambda: process_leftovers(ex), tmp_path)
        ok = await run(env, env.request("echo_args", "x"))
        assert ok.ok and ok.stdout == b"x\n"
        # rlimits stand in: RLIMIT_AS makes the allocation fail instead of an OOM kill
        big = await run(env, env.request("alloc_memory", "256", limits=Limits(memory_bytes=32 * 1024 * 1024)))
        assert not big.ok and b"allocated" not in big.stdout
        slow = await run(env, env.request("ignore_sigterm", limits=Limits(timeout_s=1.0)))
        assert slow.reason == "timeout"
        assert_clean(env)
    finally:
        with contextlib.suppress(FileNotFoundError):
            stage.rmdir()


async def test_the_host_network_takes_the_operators_consent(process_env: ExecutorEnv) -> None:
    """bubblewrap's only network is the host's, where the node's API listens on 127.0.0.1: by default a process
    task asking for a network is refused, with the way to allow it."""
    strict = ProcessExecutor(stage_dir=process_env.executor.stage_dir)  # type: ignore[attr-defined]
    with pytest.raises(AgoraError) as err:
        await strict.start(process_env.request("connect_tcp", "1", network=True))
    assert err.value.code == "network_forbidden" and "--allow-task-network" in err.value.hint
    assert process_env.leftovers() == []


async def test_a_task_cannot_create_a_user_namespace_unless_the_operator_allows_it(process_env: ExecutorEnv) -> None:
    denied = await run(process_env, process_env.request("nested_userns"))
    assert denied.ok and denied.stdout == b"denied\n", denied  # `unshare -r` would make it root of a namespace
    ex = process_env.executor
    assert isinstance(ex, ProcessExecutor)
    lax = ProcessExecutor(cgroups=ex.cgroups, stage_dir=ex.stage_dir, term_grace_s=1.0, nested_userns=True)
    availability = lax.probe()
    assert availability.available and availability.details["nested_userns"] == "allowed", availability
    allowed = await run(dataclasses.replace(process_env, executor=lax), process_env.request("nested_userns"))
    assert allowed.ok and allowed.stdout == b"0\n", allowed
    assert process_env.leftovers() == []


async def test_the_sandboxs_pid_1_shows_no_host_path(process_env: ExecutorEnv) -> None:
    wd = process_env.work_dir("cmdline")
    result = await run(process_env, process_env.request("pid1_cmdline", work_dir=wd))
    assert result.ok, result
    shown = result.stdout.decode()
    assert "bwrap --args" in shown, shown
    ex = process_env.executor
    assert isinstance(ex, ProcessExecutor)
    for host_path in (str(wd), str(ex.stage_dir), "/work/inputs", "--ro-bind"):
        assert host_path not in shown, shown


async def test_stale_task_cgroups_are_swept_and_live_ones_kept(process_env: ExecutorEnv) -> None:
    """A node killed with -9 leaves its tasks' (empty) cgroups behind; the next start removes them, but
    never one that has members (a task of another node sharing the parent) or that was just made."""
    ex = process_env.executor
    assert isinstance(ex, ProcessExecutor)
    support = ex.cgroups.detect()
    require(support.version is not None, f"no cgroup filesystem here: {support.reason}")
    stale = [root / "stale-task-0123abcd" for root in sorted(set(support.roots.values()))]
    for path in stale:
        path.mkdir()
    handle = await ex.start(process_env.request("sleep_forever", limits=Limits(timeout_s=WAIT)))
    try:
        async for _ in ex.logs(handle):
            break
        assert ex.cgroups.sweep(min_age_s=3600) == 0  # all too young
        assert all(p.exists() for p in stale)
        assert ex.cgroups.sweep(min_age_s=0) == len(stale)
        assert not any(p.exists() for p in stale)
        assert handle.cgroup is not None and handle.cgroup.exists()  # type: ignore[attr-defined]
    finally:
        await ex.cancel(handle)
        await ex.cleanup(handle)
    assert process_env.leftovers() == []


async def test_a_nodes_next_start_sweeps_its_own_cgroups_at_any_age(process_env: ExecutorEnv, tmp_path: Path) -> None:
    """After a kill -9 the node restarts at once: its own (tagged) empty task cgroups go at the first probe,
    however young; another node's stay."""
    ex = process_env.executor
    assert isinstance(ex, ProcessExecutor)
    support = ex.cgroups.detect()
    require(support.version is not None, f"no cgroup filesystem here: {support.reason}")
    node = ProcessExecutor.for_node(work_root=tmp_path / "work", cache_dir=tmp_path / "cache")
    node.cgroups, node.stage_dir = ex.cgroups, ex.stage_dir
    assert (
        node.cgroup_tag
        and node.cgroup_tag == ProcessExecutor.for_node(work_root=tmp_path / "work", cache_dir=tmp_path).cgroup_tag
    )
    roots = sorted(set(support.roots.values()))
    mine = [root / f"{node.cgroup_tag}-alloc-1-0123abcd" for root in roots]
    other = [root / "nffffffffff-alloc-2-0123abcd" for root in roots]
    for path in (*mine, *other):
        path.mkdir()
    try:
        availability = node.probe()
        assert availability.details["stale_cgroups_removed"] == str(len(mine))
        assert not any(p.exists() for p in mine) and all(p.exists() for p in other)
    finally:
        for path in other:
            path.rmdir()
    handle = await node.start(process_env.request("sleep_forever", limits=Limits(timeout_s=WAIT)))
    try:
        assert handle.cgroup is not None  # type: ignore[attr-defined]
        assert all(d.name.startswith(f"{node.cgroup_tag}-") for d in handle.cgroup.unique_dirs())  # type: ignore[attr-defined]
    finally:
        await node.cancel(handle)
        await node.cleanup(handle)
    assert process_env.leftovers() == []
