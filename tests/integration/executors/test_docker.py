"""The docker executor against a private dockerd: the conformance suite plus container specifics."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path

import pytest

from agora.errors import AgoraError
from agora.executors.docker import LABEL, DockerExecutor
from agora.executors.interfaces import ExecRequest, Limits
from tests.integration.executors.conformance import WAIT, ConformanceSuite, ExecutorEnv, assert_clean, first_line, run


class TestDockerConformance(ConformanceSuite):
    @pytest.fixture
    def env(self, docker_env: ExecutorEnv) -> ExecutorEnv:
        return docker_env


async def test_probe_reports_the_engine(docker_executor: DockerExecutor) -> None:
    availability = docker_executor.probe()
    assert availability.available and availability.details["server_version"]


async def test_an_unreachable_engine_is_unavailable_with_its_address(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/no-docker.sock"
    ex = DockerExecutor(url)
    availability = ex.probe()
    assert not availability.available and str(tmp_path) in availability.reason
    wd = tmp_path / "w"
    (wd / "inputs").mkdir(parents=True)
    (wd / "outputs").mkdir()
    with pytest.raises(AgoraError) as err:
        await ex.start(ExecRequest("t", "docker", wd, image="busybox", command=["true"]))
    assert err.value.code == "executor_unavailable"


async def test_a_missing_image_is_not_pulled(docker_env: ExecutorEnv) -> None:
    req = dataclasses.replace(docker_env.request("exit_code", "0"), image="agora-test/not-here:1")
    with pytest.raises(AgoraError) as err:
        await docker_env.executor.start(req)
    assert err.value.code == "image_not_found"
    assert_clean(docker_env)
    # allowed to pull, but no registry is reachable from the private daemon: still image_not_found
    with pytest.raises(AgoraError) as err:
        await docker_env.executor.start(dataclasses.replace(req, allow_pull=True))
    assert err.value.code == "image_not_found" and "pulling" in err.value.message
    assert_clean(docker_env)


@pytest.mark.parametrize(
    "change",
    [{"image": None}, {"image": "Bad Reference!"}, {"engine": "process"}, {"env": {"A=B": "x"}}],
)
async def test_bad_requests_are_refused(docker_env: ExecutorEnv, change: dict[str, object]) -> None:
    req = dataclasses.replace(docker_env.request("exit_code", "0"), **change)  # type: ignore[arg-type]
    with pytest.raises(AgoraError) as err:
        await docker_env.executor.start(req)
    assert err.value.code == "invalid_argument"
    assert_clean(docker_env)


async def test_a_missing_command_exits_127_with_the_reason(docker_env: ExecutorEnv) -> None:
    """docker-init (pid 1) is what execs the command, so a missing binary is its exit 127, like a shell."""
    req = dataclasses.replace(docker_env.request("exit_code", "0"), command=["/no/such/binary"], args=[])
    result = await run(docker_env, req)
    assert result.reason == "exited" and result.exit_code == 127 and result.error_code == "task_failed"
    assert b"/no/such/binary" in result.stderr
    assert_clean(docker_env)


async def test_cancel_kills_a_task_that_ignores_sigterm(docker_env: ExecutorEnv) -> None:
    ex = docker_env.executor
    handle = await ex.start(docker_env.request("ignore_sigterm", limits=Limits(timeout_s=WAIT)))
    try:
        assert (await asyncio.wait_for(first_line(docker_env, handle), WAIT)).line == "started"
        await asyncio.wait_for(ex.cancel(handle), WAIT)
        result = await asyncio.wait_for(ex.wait(handle), WAIT)
    finally:
        await ex.cleanup(handle)
    assert result.reason == "cancelled" and result.exit_code is None
    assert_clean(docker_env)


@pytest.mark.parametrize("path", ["/bin/agora-test", "/etc/agora-test", "/agora-test", "/work/inputs/x"])
async def test_the_root_is_read_only(docker_env: ExecutorEnv, path: str) -> None:
    result = await run(docker_env, docker_env.request("write_system", path))
    assert result.ok and result.stdout == b"denied\n", result


async def test_scratch_dirs_are_writable(docker_env: ExecutorEnv) -> None:
    for path in ("/tmp/x", "/work/scratch"):
        result = await run(docker_env, docker_env.request("write_system", path))
        assert result.ok and result.stdout == b"written\n", (path, result)


async def test_privileges_are_dropped(docker_env: ExecutorEnv) -> None:
    result = await run(docker_env, docker_env.request("whoami"))
    assert result.ok, result
    lines = result.stdout.decode().splitlines()
    assert lines[0] == ("uid=65534 gid=65534" if os.geteuid() == 0 else f"uid={os.getuid()} gid={os.getgid()}")
    caps = dict(line.split(":\t") for line in lines[1:])
    assert set(caps) == {"CapPrm", "CapEff", "CapBnd", "CapAmb"}
    assert all(int(v, 16) == 0 for v in caps.values()), caps


async def test_network_only_when_asked(docker_env: ExecutorEnv) -> None:
    without = await run(docker_env, docker_env.request("net_ifaces"))
    assert without.ok and without.stdout.split() == [b"lo"], without
    with_net = await run(docker_env, docker_env.request("net_ifaces", network=True))
    assert with_net.ok and sorted(with_net.stdout.split()) == [b"eth0", b"lo"], with_net


async def test_the_container_carries_the_limits(docker_env: ExecutorEnv, docker_executor: DockerExecutor) -> None:
    limits = Limits(memory_bytes=96 * 1024 * 1024, cpu_millis=500, pids=21, timeout_s=WAIT)
    handle = await docker_env.executor.start(docker_env.request("sleep_forever", limits=limits))
    try:
        info = await asyncio.to_thread(docker_executor.client.api.inspect_container, handle.container_id)  # type: ignore[attr-defined]
    finally:
        await docker_env.executor.cleanup(handle)
    hc = info["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"], hc["NanoCpus"], hc["PidsLimit"]) == (96 << 20, 96 << 20, 500_000_000, 21)
    assert hc["NetworkMode"] == "none" and hc["ReadonlyRootfs"] and hc["CapDrop"] == ["ALL"]
    assert hc["SecurityOpt"] == ["no-new-privileges"] and hc["AutoRemove"] is False
    assert info["Config"]["Labels"][LABEL] == handle.request.task_id
    assert_clean(docker_env)


async def test_outputs_are_given_back_to_their_owner(docker_env: ExecutorEnv) -> None:
    wd = docker_env.work_dir()
    owner = (wd / "outputs").stat().st_uid
    result = await run(docker_env, docker_env.request("write_output", "f.txt", "x", work_dir=wd))
    assert result.ok
    assert (wd / "outputs").stat().st_uid == owner and (wd / "outputs" / "f.txt").stat().st_uid == owner
