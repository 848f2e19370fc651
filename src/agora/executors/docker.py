"""The `docker` executor: one container per task, through the Docker Engine API (the `docker` SDK).

The container (see README.md, "docker executor", for why): no network unless the task asks; a
read-only root with tmpfs /tmp and /work; inputs bound read-only at /work/inputs and outputs
read-write at /work/outputs; memory (swap included), CPU and pid limits; every capability dropped,
no new privileges, an unprivileged user; docker-init as pid 1 so SIGTERM reaches the task; a label
`agora.task` so that leftovers can always be found. Images are never pulled unless the request
allows it. The container is not auto-removed: its exit code and OOM flag are read first, then
`cleanup` removes it.

The SDK is blocking. Short calls run in `asyncio.to_thread`; the long-lived ones (wait, log follow,
stats stream, stdin) run on their own daemon threads, so a few running tasks cannot exhaust the
default thread pool that every other part of the node shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import docker
import docker.errors
from docker.types import Ulimit

from agora.errors import AgoraError
from agora.executors._common import (
    DiskWatcher,
    LogFanout,
    StreamSink,
    check_argv_env,
    chown_tree,
    error_code_for,
    safe_name,
    validate_work_dir,
)
from agora.executors.interfaces import (
    Availability,
    EndReason,
    ExecHandle,
    ExecRequest,
    ExecResult,
    ExecStats,
    Executor,
    LogLine,
)

SANDBOX_USER = "65534:65534"
LABEL = "agora.task"
SIGXFSZ_EXIT = 153  # 128 + SIGXFSZ: the fsize ulimit stopped a write
T = TypeVar("T")


class DockerHandle(ExecHandle):
    def __init__(self, request: ExecRequest) -> None:
        super().__init__(request)
        self.fanout = LogFanout()
        self.sinks = {"stdout": StreamSink("stdout", self.fanout), "stderr": StreamSink("stderr", self.fanout)}
        self.container_id: str | None = None
        self.started = time.monotonic()
        self.ended: float | None = None
        self.forced: EndReason | None = None
        self.result: ExecResult | None = None
        self.done = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.log_threads: list[asyncio.Future[None]] = []  # every thread of the task, joined at teardown
        self.followers: list[asyncio.Future[None]] = []  # the output reader: it ends with the container
        self.watcher: DiskWatcher | None = None
        self.cpu_seconds = 0.0
        self.peak_memory = 0
        self.outputs_owner: tuple[int, int] | None = None
        self.stop_streams = threading.Event()
        self.cleaned = False


def _in_thread(name: str, fn: Callable[[], T]) -> asyncio.Future[T]:
    """Run a long blocking call on its own daemon thread; the future resolves on the loop."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if fut.done():
            return
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)

    def body() -> None:
        try:
            value = fn()
        except BaseException as exc:  # handed to the awaiting coroutine
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, False, exc)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, True, value)

    threading.Thread(target=body, name=name, daemon=True).start()
    return fut


class DockerExecutor(Executor):
    engine = "docker"

    def __init__(
        self,
        base_url: str | None = None,
        *,
        user: str | None = None,
        network: str = "bridge",
        init: bool = True,
        term_grace_s: float = 2.0,
        api_timeout_s: float = 30.0,
    ) -> None:
        self.base_url = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        self.root_mode = os.geteuid() == 0
        # as root the container runs as nobody and gets the outputs dir for the run; otherwise it runs
        # as the node's own uid, which already owns the work dir
        self.user = user or (SANDBOX_USER if self.root_mode else f"{os.getuid()}:{os.getgid()}")
        self.network = network  # the network a task with network=True joins
        self.init = init
        self.term_grace_s = term_grace_s
        self.api_timeout_s = api_timeout_s
        self._client: docker.DockerClient | None = None

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker.DockerClient(base_url=self.base_url, timeout=int(self.api_timeout_s))
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ------------------------------------------------------------------ probe

    def probe(self) -> Availability:
        sock = self.base_url[len("unix://") :] if self.base_url.startswith("unix://") else None
        if sock is not None and not os.path.exists(sock):
            return Availability(
                "docker", False, f"no docker engine: {sock} does not exist (install docker.io and start dockerd)"
            )
        if sock is not None and not os.access(sock, os.R_OK | os.W_OK):
            return Availability("docker", False, f"no permission on {sock} (add the node's user to the docker group)")
        try:
            client = docker.DockerClient(base_url=self.base_url, timeout=5)
        except Exception as exc:
            return Availability("docker", False, f"cannot use docker engine address {self.base_url}: {exc}")
        try:
            client.ping()
            version = client.version()
        except Exception as exc:
            return Availability("docker", False, f"docker engine at {self.base_url} does not answer: {exc}")
        finally:
            client.close()
        return Availability(
            "docker",
            True,
            "",
            {
                "base_url": self.base_url,
                "server_version": str(version.get("Version", "")),
                "api_version": str(version.get("ApiVersion", "")),
                "user": self.user,
            },
        )

    # ------------------------------------------------------------------ start

    async def start(self, req: ExecRequest) -> ExecHandle:
        _validate(req)
        validate_work_dir(req)
        h = DockerHandle(req)
        try:
            await asyncio.to_thread(self._ensure_image, req)
            await self._launch(h)
        except BaseException:
            await self._teardown(h)
            raise
        return h

    def _ensure_image(self, req: ExecRequest) -> None:
        assert req.image is not None
        try:
            self.client.images.get(req.image)
            return
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code == 400:
                raise AgoraError(
                    "invalid_argument", f"invalid image reference {req.image!r}: {exc.explanation}"
                ) from exc
            raise AgoraError("executor_failed", f"docker engine error looking up {req.image}: {exc}") from exc
        except docker.errors.DockerException as exc:
            raise AgoraError("executor_unavailable", f"docker engine at {self.base_url}: {exc}") from exc
        except OSError as exc:
            raise AgoraError("executor_unavailable", f"docker engine at {self.base_url}: {exc}") from exc
        if not req.allow_pull:
            raise AgoraError("image_not_found", f"image {req.image} is not on this node and pulling is not allowed")
        try:
            self.client.images.pull(req.image)
        except docker.errors.DockerException as exc:
            raise AgoraError("image_not_found", f"pulling {req.image} failed: {exc}") from exc

    def _create(self, req: ExecRequest) -> str:
        """Low-level API: the high-level one cannot set StdinOnce, without which the task never
        sees the end of its stdin."""
        api = self.client.api
        mem = req.limits.memory_bytes
        tmpfs_opts = f"rw,nosuid,nodev,size={mem},mode=1777"
        uid, _, gid = self.user.partition(":")
        # docker creates the working dir in the image, and runc then gives the tmpfs that dir's mode
        # (0755, root): owning the scratch tmpfs is what makes /work writable for the task's user
        work_opts = f"{tmpfs_opts},uid={uid},gid={gid or uid}" if uid.isdigit() else tmpfs_opts
        fsize = req.limits.disk_bytes
        host_config = api.create_host_config(
            # the same paths in every engine: /inputs and /outputs (as in wasm), and under /work
            binds=[
                f"{os.path.abspath(req.inputs_dir)}:/work/inputs:ro",
                f"{os.path.abspath(req.outputs_dir)}:/work/outputs:rw",
                f"{os.path.abspath(req.inputs_dir)}:/inputs:ro",
                f"{os.path.abspath(req.outputs_dir)}:/outputs:rw",
            ],
            tmpfs={"/tmp": tmpfs_opts, "/work": work_opts},
            network_mode=self.network if req.network else "none",
            read_only=True,
            mem_limit=mem,
            memswap_limit=mem,  # equal: no swap on top of the memory limit
            nano_cpus=req.limits.cpu_millis * 1_000_000,
            pids_limit=req.limits.pids,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            ulimits=[Ulimit(name="core", soft=0, hard=0), Ulimit(name="fsize", soft=fsize, hard=fsize)],
            init=self.init,
            auto_remove=False,
        )
        config = api.create_container_config(
            image=req.image,
            command=[*req.command, *req.args] or None,
            environment=dict(req.env),
            working_dir="/work",
            user=self.user,
            hostname="agora",
            labels={LABEL: req.task_id, "agora.executor": "docker"},
            stdin_open=req.stdin is not None,
            host_config=host_config,
        )
        config["StdinOnce"] = req.stdin is not None
        name = f"agora-{safe_name(req.task_id)}-{uuid.uuid4().hex[:8]}"
        return str(api.create_container_from_config(config, name=name)["Id"])

    async def _launch(self, h: DockerHandle) -> None:
        req = h.request
        if self.root_mode:
            st = req.outputs_dir.stat()
            h.outputs_owner = (st.st_uid, st.st_gid)
            uid, _, gid = self.user.partition(":")
            if uid.isdigit():
                await asyncio.to_thread(chown_tree, req.outputs_dir, int(uid), int(gid or uid))
        try:
            h.container_id = await asyncio.to_thread(self._create, req)
        except docker.errors.APIError as exc:
            raise AgoraError("executor_failed", f"docker could not create the container: {exc.explanation}") from exc
        cid = h.container_id
        # attached before start, so not one byte is missed; attach, unlike `docker logs`, gives the
        # raw bytes (the json-file log driver would turn invalid UTF-8 into U+FFFD)
        stdin_sock = None
        try:
            output = await asyncio.to_thread(
                lambda: self.client.api.attach(cid, stdout=True, stderr=True, stream=True, logs=False, demux=True)
            )
            if req.stdin is not None:
                stdin_sock = await asyncio.to_thread(self.client.api.attach_socket, cid, {"stdin": 1, "stream": 1})
            await asyncio.to_thread(self.client.api.start, cid)
        except docker.errors.APIError as exc:
            if stdin_sock is not None:
                stdin_sock.close()
            raise AgoraError("executor_failed", f"docker could not start the task: {exc.explanation}") from exc
        h.started = time.monotonic()
        if stdin_sock is not None:
            data, sock = req.stdin or b"", stdin_sock
            h.log_threads.append(_in_thread(f"agora-docker-stdin:{req.task_id}", lambda: _send_stdin(sock, data)))
        h.followers.append(_in_thread(f"agora-docker-output:{req.task_id}", _follower(h, output)))
        h.log_threads += h.followers
        h.log_threads.append(_in_thread(f"agora-docker-stats:{req.task_id}", self._stats_sampler(h)))
        loop = asyncio.get_running_loop()

        def over_disk(_usage: int) -> None:  # runs on the watcher's thread
            loop.call_soon_threadsafe(self._force, h, "disk_limit")

        h.watcher = DiskWatcher(req.outputs_dir, req.limits.disk_bytes, over_disk).start()
        h.tasks.append(asyncio.create_task(self._supervise(h)))

    def _stats_sampler(self, h: DockerHandle) -> Callable[[], None]:
        """The stats API streams about one sample a second: a task shorter than that may have no
        sample, and then its cpu/memory stats are 0 (documented in README.md)."""
        cid = h.container_id

        def sample() -> None:
            with contextlib.suppress(docker.errors.DockerException, OSError, ValueError):
                for doc in self.client.api.stats(cid, decode=True, stream=True):
                    if h.stop_streams.is_set():
                        return
                    cpu = doc.get("cpu_stats", {}).get("cpu_usage", {}).get("total_usage", 0) or 0
                    mem = doc.get("memory_stats", {})
                    peak = mem.get("max_usage") or mem.get("usage") or 0
                    h.cpu_seconds = max(h.cpu_seconds, cpu / 1e9)
                    h.peak_memory = max(h.peak_memory, int(peak))

        return sample

    # ------------------------------------------------------------------ running

    async def _supervise(self, h: DockerHandle) -> None:
        assert h.container_id is not None
        cid = h.container_id
        waiter = _in_thread(f"agora-docker-wait:{h.request.task_id}", lambda: self.client.api.wait(cid))
        remaining = h.request.limits.timeout_s - (time.monotonic() - h.started)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), max(0.0, remaining))
        except TimeoutError:
            await self._terminate(h, "timeout")
        except docker.errors.DockerException:
            pass
        with contextlib.suppress(docker.errors.DockerException, OSError):
            await waiter
        h.ended = time.monotonic()
        await self._finish(h)

    def _force(self, h: DockerHandle, reason: EndReason) -> None:
        if h.done.is_set() or h.ended is not None:
            return
        h.tasks.append(asyncio.create_task(self._terminate(h, reason)))

    async def _terminate(self, h: DockerHandle, reason: EndReason) -> None:
        """SIGTERM (docker-init passes it on to the task), SIGKILL after `term_grace_s`."""
        if h.container_id is None or h.ended is not None:
            return
        if h.forced is None:
            h.forced = reason
        await asyncio.to_thread(self._kill, h.container_id, "SIGTERM")
        deadline = time.monotonic() + self.term_grace_s
        while time.monotonic() < deadline and h.ended is None:
            if not await asyncio.to_thread(self._running, h.container_id):
                return
            await asyncio.sleep(0.05)
        await asyncio.to_thread(self._kill, h.container_id, "SIGKILL")

    def _kill(self, cid: str, sig: str) -> None:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            self.client.api.kill(cid, signal=sig)  # 409 when it is not running any more: fine

    def _running(self, cid: str) -> bool:
        try:
            return bool(self.client.api.inspect_container(cid)["State"]["Running"])
        except docker.errors.NotFound:
            return False

    async def _finish(self, h: DockerHandle) -> None:
        assert h.container_id is not None
        state: dict[str, Any] = {}
        with contextlib.suppress(docker.errors.DockerException):
            info = await asyncio.to_thread(self.client.api.inspect_container, h.container_id)
            state = info.get("State", {})
        if h.watcher is not None:
            h.watcher.stop()
            with contextlib.suppress(OSError):
                await asyncio.to_thread(h.watcher.check)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*h.followers, return_exceptions=True), 10.0)
        for sink in h.sinks.values():
            sink.close()
        h.fanout.close()
        h.result = self._result(h, state)
        h.done.set()

    def _result(self, h: DockerHandle, state: dict[str, Any]) -> ExecResult:
        exit_code: int | None = None
        reason: EndReason
        message = ""
        code = state.get("ExitCode")
        if h.forced is not None:
            reason = h.forced
        elif state.get("OOMKilled"):
            reason = "oom"
        elif h.watcher is not None and h.watcher.exceeded:
            reason = "disk_limit"
        elif not isinstance(code, int):
            reason, message = "error", f"the container vanished: {state.get('Error') or 'no state'}"
        elif code == SIGXFSZ_EXIT:
            reason = "disk_limit"
        else:
            reason, exit_code = "exited", code
        limits = h.request.limits
        if reason != "exited" and not message:
            message = {
                "timeout": f"ran past its timeout of {limits.timeout_s:g} s",
                "oom": f"went over its memory limit of {limits.memory_bytes} bytes",
                "disk_limit": f"wrote more than its disk limit of {limits.disk_bytes} bytes",
                "cancelled": "cancelled",
            }.get(reason, reason)
        elif reason == "exited" and exit_code:
            message = f"exited with code {exit_code}"
        return ExecResult(
            task_id=h.request.task_id,
            exit_code=exit_code,
            reason=reason,
            stats=self._snapshot(h),
            stdout=h.sinks["stdout"].capture.getvalue(),
            stderr=h.sinks["stderr"].capture.getvalue(),
            error_code=error_code_for(reason, exit_code),
            message=message,
        )

    def _snapshot(self, h: DockerHandle) -> ExecStats:
        wall = (h.ended if h.ended is not None else time.monotonic()) - h.started
        return ExecStats(cpu_seconds=h.cpu_seconds, peak_memory_bytes=h.peak_memory, wall_seconds=wall)

    # ------------------------------------------------------------------ interface

    async def wait(self, handle: ExecHandle) -> ExecResult:
        h = _own(handle)
        await h.done.wait()
        assert h.result is not None
        return h.result

    async def cancel(self, handle: ExecHandle) -> None:
        h = _own(handle)
        if h.done.is_set():
            return
        await self._terminate(h, "cancelled")
        await h.done.wait()

    def logs(self, handle: ExecHandle) -> AsyncIterator[LogLine]:
        return _own(handle).fanout.subscribe()

    async def stats(self, handle: ExecHandle) -> ExecStats:
        h = _own(handle)
        return h.result.stats if h.result is not None else self._snapshot(h)

    async def cleanup(self, handle: ExecHandle) -> None:
        h = _own(handle)
        if h.cleaned:
            return
        if h.container_id is not None and not h.done.is_set() and h.tasks:
            await self.cancel(h)
        await self._teardown(h)

    async def _teardown(self, h: DockerHandle) -> None:
        """Remove the container (which also ends every stream on it), then give back the outputs."""
        h.cleaned = True
        h.stop_streams.set()
        if h.watcher is not None:
            h.watcher.stop()
        if h.container_id is not None:
            cid = h.container_id
            with contextlib.suppress(docker.errors.NotFound):
                await asyncio.to_thread(lambda: self.client.api.remove_container(cid, v=True, force=True))
        current = asyncio.current_task()
        for task in h.tasks:
            if task is not current and not task.done():
                task.cancel()
        await asyncio.gather(*(t for t in h.tasks if t is not current), return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*h.log_threads, return_exceptions=True), 15.0)
        h.fanout.close()
        if h.outputs_owner is not None:
            uid, gid = h.outputs_owner
            await asyncio.to_thread(chown_tree, h.request.outputs_dir, uid, gid)

    def leftovers(self) -> list[str]:
        """Containers of agora tasks still on the engine (any state): nothing should outlive cleanup."""
        found = self.client.containers.list(all=True, filters={"label": LABEL})
        return [f"container {c.name} ({c.status}, task {c.labels.get(LABEL)})" for c in found]


# ---------------------------------------------------------------------- helpers


def _own(handle: ExecHandle) -> DockerHandle:
    if not isinstance(handle, DockerHandle):
        raise AgoraError("invalid_argument", "not a handle of the docker executor")
    return handle


def _validate(req: ExecRequest) -> None:
    if req.engine != "docker":
        raise AgoraError("invalid_argument", f"the docker executor cannot run engine {req.engine!r}")
    if not req.image:
        raise AgoraError("invalid_argument", "a docker task needs an image")
    check_argv_env(req)


def _follower(h: DockerHandle, output: Any) -> Callable[[], None]:
    def follow() -> None:
        try:
            for out, err in output:
                if out:
                    h.sinks["stdout"].feed(out)
                if err:
                    h.sinks["stderr"].feed(err)
        finally:
            with contextlib.suppress(Exception):
                output.close()

    return follow


def _send_stdin(sock: Any, data: bytes) -> None:
    raw: socket.socket = getattr(sock, "_sock", sock)
    try:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            raw.sendall(data)
        with contextlib.suppress(OSError):
            raw.shutdown(socket.SHUT_WR)  # with stdin_once the task now reads EOF
    finally:
        with contextlib.suppress(OSError):
            sock.close()


__all__ = ["LABEL", "SANDBOX_USER", "DockerExecutor", "DockerHandle"]
