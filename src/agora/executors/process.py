"""The `process` executor: a native command in a bubblewrap sandbox, bounded by a per-task cgroup.

The sandbox (see README.md, "process executor", for why each choice):
* every namespace is new (`--unshare-all`): no network unless the task asks (`--share-net`), its
  own pid namespace (when its first process ends, the kernel kills the rest), ipc, uts, cgroup;
* the root is a fresh tmpfs with only the system dirs bound read-only (/usr, /bin, /lib*, /sbin,
  /etc); /work is a RAM scratch dir holding inputs/ (read-only) and outputs/ (writable); /tmp is a
  fresh tmpfs; /proc and /dev are private; env is cleared; no capabilities; no new privileges;
* as root, bwrap itself runs as the unprivileged sandbox uid (setpriv), so the task is uid 65534
  on the host too, not just inside its user namespace. An unprivileged process cannot reach a work
  dir below a 0700 dir, so a root-owned helper namespace (unshare --mount) binds inputs/outputs
  onto a private tmpfs first; those mounts vanish with the namespace, nothing to clean up;
* limits come from a cgroup the gated launcher joins *before* it execs bwrap: the launcher is
  `sh -c 'read -r _ || exit 125; exec "$@"'`, which waits for one line on stdin that the executor
  writes only after it has put the pid into the cgroup and lowered its rlimits. The rest of stdin
  is the task's stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import psutil

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
from agora.executors.cgroups import Cgroups, TaskCgroup
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

SANDBOX_UID = 65534  # "nobody": owns nothing on the host
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")
SIGXFSZ_EXIT = 128 + signal.SIGXFSZ  # bwrap reports a child killed by signal N as exit 128+N
_GATE = 'read -r _ || exit 125; exec "$@"'
_STAGE = (
    'mount -t tmpfs -o mode=0755,size=64k agora-stage "$1" && mkdir "$1/inputs" "$1/outputs" && '
    'mount --bind "$2" "$1/inputs" && mount --bind "$3" "$1/outputs" && shift 3 && exec "$@"'
)
_READ_CHUNK = 64 * 1024


class ProcessHandle(ExecHandle):
    def __init__(self, request: ExecRequest) -> None:
        super().__init__(request)
        self.fanout = LogFanout()
        self.sinks = {"stdout": StreamSink("stdout", self.fanout), "stderr": StreamSink("stderr", self.fanout)}
        self.proc: asyncio.subprocess.Process | None = None
        self.cgroup: TaskCgroup | None = None
        self.status_fd: int | None = None
        self.status_buf = bytearray()
        self.readers: list[asyncio.Task[None]] = []
        self.child_pid: int | None = None  # the sandbox's pid 1, as the host sees it
        self.started = time.monotonic()
        self.ended: float | None = None
        self.forced: EndReason | None = None  # timeout / cancelled / disk_limit, decided by us
        self.result: ExecResult | None = None
        self.done = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.watcher: DiskWatcher | None = None
        self.outputs_owner: tuple[int, int] | None = None  # restored after a root-mode run
        self.cleaned = False


class ProcessExecutor(Executor):
    engine = "process"

    def __init__(
        self,
        *,
        bwrap: str | None = None,
        cgroups: Cgroups | None = None,
        sandbox_uid: int = SANDBOX_UID,
        term_grace_s: float = 2.0,
        stage_dir: Path | None = None,
        extra_ro_binds: tuple[str, ...] = (),
        host_network: bool = False,
        nested_userns: bool = False,
        cgroup_tag: str = "",
    ) -> None:
        # the node's own mark on its task cgroups, so that its next start can sweep what it left (and
        # only that) after a crash; "" (no mark): only old empty cgroups are swept
        self.cgroup_tag = cgroup_tag
        self._bwrap = bwrap
        # a user namespace inside the sandbox makes the task root of it (`unshare -r`): the kernel's whole
        # namespaced-root attack surface opens to it, so it takes the operator's explicit consent too
        self.nested_userns = nested_userns
        # bubblewrap's only network is the host's (--share-net): a task on it can reach 127.0.0.1, where the
        # node's own API and other local services listen, so it takes the operator's explicit consent
        self.host_network = host_network
        self.cgroups = cgroups if cgroups is not None else Cgroups()
        self.sandbox_uid = sandbox_uid
        self.term_grace_s = term_grace_s
        self.root_mode = os.geteuid() == 0
        self.stage_dir = stage_dir or Path(tempfile.gettempdir()) / f"agora-process-stage-{os.geteuid()}"
        self.extra_ro_binds = extra_ro_binds
        self._available: Availability | None = None
        self._bwrap_has_size = False
        self._swept = False

    @classmethod
    def for_node(cls, *, work_root: Path, cache_dir: Path) -> ProcessExecutor:
        """A node's executor: its task cgroups carry a tag of its work root (stable across restarts)."""
        del cache_dir  # nothing cached
        tag = "n" + hashlib.sha256(str(work_root.absolute()).encode()).hexdigest()[:10]
        return cls(cgroup_tag=tag)

    # ------------------------------------------------------------------ probe

    def probe(self) -> Availability:
        try:
            return self._probe()
        except Exception as exc:  # probe never raises
            return Availability("process", False, f"probe failed: {exc}")

    def _probe(self) -> Availability:
        bwrap = self._bwrap or shutil.which("bwrap")
        if bwrap is None:
            return Availability("process", False, "bwrap not found on PATH (install the bubblewrap package)")
        details = {"bwrap": bwrap, "mode": "root: sandbox uid on the host" if self.root_mode else "user"}
        prefix: list[str] = []
        if self.root_mode:
            tools = {t: shutil.which(t) for t in ("setpriv", "unshare", "mount")}
            missing = [t for t, p in tools.items() if p is None]
            if missing:
                return Availability("process", False, f"{', '.join(missing)} not found (install util-linux)", details)
            prefix = self._setpriv()
        try:
            helptext = subprocess.run([bwrap, "--help"], capture_output=True, timeout=10).stdout
            userns = [] if self.nested_userns or b"--disable-userns" not in helptext else ["--disable-userns"]
            check = subprocess.run(
                [*prefix, bwrap, "--unshare-all", "--unshare-user", *userns, "--ro-bind", "/", "/", "true"],
                capture_output=True,
                timeout=10,
                env={"PATH": DEFAULT_PATH},
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Availability("process", False, f"running {bwrap} failed: {exc}", details)
        if check.returncode != 0:
            why = check.stderr.decode(errors="replace").strip() or f"exit {check.returncode}"
            return Availability(
                "process", False, f"bwrap cannot create namespaces here ({why}); enable unprivileged user namespaces"
            )
        self._bwrap_has_size = b"--size" in helptext
        if not self.nested_userns and b"--disable-userns" not in helptext:
            return Availability(
                "process",
                False,
                f"{bwrap} cannot disable user namespaces inside the sandbox (bubblewrap 0.8 or newer can); "
                "upgrade bubblewrap, or let tasks create them (allow_task_userns)",
                details,
            )
        details["nested_userns"] = "allowed" if self.nested_userns else "disabled"
        support = self.cgroups.detect()
        details["cgroup"] = support.version or "none"
        if support.version is None:
            details["cgroup_reason"] = support.reason
            details["limits"] = "rlimits only: no memory accounting, OOM shows as a failed allocation"
        else:
            details["cgroup_parent"] = ",".join(sorted({str(p) for p in support.roots.values()}))
            if not self._swept:  # once per executor, at start-up: what a killed node left behind
                self._swept = True
                mine = f"{self.cgroup_tag}-" if self.cgroup_tag else ""
                details["stale_cgroups_removed"] = str(self.cgroups.sweep(mine))
        self._bwrap = bwrap
        return Availability("process", True, "", details)

    def _setpriv(self) -> list[str]:
        uid = str(self.sandbox_uid)
        return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs", "--"]

    # ------------------------------------------------------------------ start

    async def start(self, req: ExecRequest) -> ExecHandle:
        _validate(req)
        validate_work_dir(req)
        if req.network and not self.host_network:
            raise AgoraError("network_forbidden", "process tasks do not get the host's network on this node")
        if self._available is None or not self._available.available:
            self._available = await asyncio.to_thread(self.probe)
        if not self._available.available:
            raise AgoraError("executor_unavailable", f"process: {self._available.reason}")
        h = ProcessHandle(req)
        try:
            await self._launch(h)
        except BaseException:
            await self._teardown(h)
            raise
        return h

    async def _launch(self, h: ProcessHandle) -> None:
        req = h.request
        if self.cgroups.detect().version is not None:
            tag = f"{self.cgroup_tag}-" if self.cgroup_tag else ""
            name = f"{tag}{safe_name(req.task_id)}-{uuid.uuid4().hex[:8]}"
            try:
                h.cgroup = await asyncio.to_thread(self.cgroups.create, name, req.limits)
            except OSError as exc:
                raise AgoraError("executor_failed", f"cannot create the task's cgroup: {exc}") from exc
        if self.root_mode:
            await asyncio.to_thread(self._prepare_stage_dir)
            st = req.outputs_dir.stat()
            h.outputs_owner = (st.st_uid, st.st_gid)
            await asyncio.to_thread(chown_tree, req.outputs_dir, self.sandbox_uid, self.sandbox_uid)
        status_r, status_w = os.pipe()
        h.status_fd = status_r
        args_fd = -1
        try:
            argv, sandbox_args = self._argv(req, status_w)
            args_fd = _args_file(sandbox_args)
            h.proc = await asyncio.create_subprocess_exec(
                *argv,
                "--args",
                str(args_fd),
                "--",
                *req.command,
                *req.args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(status_w, args_fd),
                env={"PATH": DEFAULT_PATH},
                start_new_session=True,
            )
        except OSError as exc:
            raise AgoraError("executor_failed", f"cannot spawn the sandbox: {exc}") from exc
        finally:
            os.close(status_w)
            if args_fd >= 0:
                os.close(args_fd)
        proc = h.proc
        h.started = time.monotonic()
        try:
            if h.cgroup is not None:
                await asyncio.to_thread(h.cgroup.add_pid, proc.pid)
            self._set_rlimits(proc.pid, h)
        except OSError as exc:
            raise AgoraError("executor_failed", f"cannot confine the sandbox: {exc}") from exc
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        h.tasks.append(asyncio.create_task(_feed_stdin(proc.stdin, req.stdin)))  # the gate line, then stdin
        h.readers = [
            asyncio.create_task(_pump(proc.stdout, h.sinks["stdout"])),
            asyncio.create_task(_pump(proc.stderr, h.sinks["stderr"])),
        ]
        h.tasks += h.readers
        loop = asyncio.get_running_loop()
        os.set_blocking(status_r, False)
        loop.add_reader(status_r, _on_status, h)

        def over_disk(_usage: int) -> None:  # runs on the watcher's thread
            loop.call_soon_threadsafe(self._force, h, "disk_limit")

        h.watcher = DiskWatcher(req.outputs_dir, req.limits.disk_bytes, over_disk).start()
        h.tasks.append(asyncio.create_task(self._supervise(h)))

    def _argv(self, req: ExecRequest, status_fd: int) -> tuple[list[str], list[str]]:
        """The launcher's argv up to bwrap, and bwrap's options (the mounts, the env); the command follows.

        The latter reach bwrap through `--args FD`, not its argv: bwrap is the sandbox's pid 1, and its
        /proc/1/cmdline would show the task every host path it binds (the node's work dir, the stage dir)."""
        assert self._bwrap is not None
        if self.root_mode:
            stage = str(self.stage_dir)
            inputs, outputs = f"{stage}/inputs", f"{stage}/outputs"
            prefix = [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                _STAGE,
                "agora-stage",
                stage,
                os.path.abspath(req.inputs_dir),
                os.path.abspath(req.outputs_dir),
                *self._setpriv(),
            ]
        else:
            inputs, outputs, prefix = os.path.abspath(req.inputs_dir), os.path.abspath(req.outputs_dir), []
        size = ["--size", str(req.limits.memory_bytes)] if self._bwrap_has_size else []
        args = ["--unshare-all", "--unshare-user", *(["--share-net"] if req.network else [])]
        if not self.nested_userns:
            args += ["--disable-userns"]  # no `unshare -r` inside: the task stays unprivileged in every ns
        args += ["--die-with-parent", "--new-session", "--hostname", "agora", "--tmpfs", "/"]
        for name in SYSTEM_DIRS:
            path = Path("/") / name
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                args += ["--ro-bind", str(path), str(path)]
        for extra in self.extra_ro_binds:
            args += ["--ro-bind", extra, extra]
        args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", *size, "--tmpfs", "/tmp"]
        args += ["--perms", "0755", *size, "--tmpfs", "/work", "--ro-bind", inputs, "/work/inputs"]
        args += ["--bind", outputs, "/work/outputs"]
        # the same paths in every engine: /inputs and /outputs (as in wasm), and under /work
        args += ["--ro-bind", inputs, "/inputs", "--bind", outputs, "/outputs", "--chdir", "/work", "--remount-ro", "/"]
        args += [
            "--clearenv",
            "--setenv",
            "PATH",
            DEFAULT_PATH,
            "--setenv",
            "HOME",
            "/work",
            "--setenv",
            "TMPDIR",
            "/tmp",
        ]
        for key, value in req.env.items():
            args += ["--setenv", key, value]
        uid = str(self.sandbox_uid)
        args += ["--uid", uid, "--gid", uid, "--cap-drop", "ALL", "--json-status-fd", str(status_fd)]
        return ["sh", "-c", _GATE, "agora-gate", *prefix, self._bwrap], args

    def _prepare_stage_dir(self) -> None:
        """The mount point the helper namespace covers with its tmpfs; it must be ours, not a link."""
        with contextlib.suppress(FileExistsError):
            self.stage_dir.mkdir(mode=0o755)
        st = self.stage_dir.lstat()
        if not self.stage_dir.is_dir() or self.stage_dir.is_symlink() or st.st_uid != os.geteuid():
            raise AgoraError("executor_failed", f"{self.stage_dir} is not a directory owned by this node")
        for parent in self.stage_dir.absolute().parents:  # the sandbox uid must be able to walk to it
            if not parent.stat().st_mode & 0o001:
                raise AgoraError(
                    "executor_failed",
                    f"the sandbox uid cannot traverse {parent} to reach {self.stage_dir}",
                    hint="choose a stage_dir whose parent directories are world-searchable (o+x)",
                )

    def _set_rlimits(self, pid: int, h: ProcessHandle) -> None:
        """Lowered on the gated launcher, inherited by bwrap and the task. RLIMIT_FSIZE bounds any one
        file (the watcher bounds the total); AS and NPROC only without cgroups: AS breaks runtimes
        that reserve address space, and NPROC counts every process of the uid, not of the task."""
        limits = h.request.limits
        pairs = [(resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, limits.disk_bytes)]
        if h.cgroup is None:
            pairs += [
                (resource.RLIMIT_AS, limits.memory_bytes + 64 * 1024 * 1024),
                (resource.RLIMIT_NPROC, limits.pids),
            ]
        for res, value in pairs:
            _soft, hard = resource.prlimit(pid, res)
            cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.prlimit(pid, res, (cap, cap))

    # ------------------------------------------------------------------ running

    async def _supervise(self, h: ProcessHandle) -> None:
        proc = h.proc
        assert proc is not None
        remaining = h.request.limits.timeout_s - (time.monotonic() - h.started)
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), max(0.0, remaining))
        except TimeoutError:
            await self._terminate(h, "timeout")
        await proc.wait()
        h.ended = time.monotonic()
        await self._finish(h)

    def _force(self, h: ProcessHandle, reason: EndReason) -> None:
        if h.done.is_set() or (h.proc is not None and h.proc.returncode is not None):
            return
        h.tasks.append(asyncio.create_task(self._terminate(h, reason)))

    async def _terminate(self, h: ProcessHandle, reason: EndReason) -> None:
        """SIGTERM to the task's processes (not to bwrap: it would tear the sandbox down at once and
        skip the grace), then SIGKILL to everything after `term_grace_s`."""
        proc = h.proc
        if proc is None or proc.returncode is not None:
            return
        if h.forced is None:
            h.forced = reason
        spare = {proc.pid, h.child_pid}
        for pid in await asyncio.to_thread(self._members, h):
            if pid not in spare:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(proc.wait()), self.term_grace_s)
        await self._kill_all(h)

    def _members(self, h: ProcessHandle) -> set[int]:
        if h.cgroup is not None:
            return h.cgroup.pids()
        out: set[int] = set()
        if h.proc is not None:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(h.proc.pid)
                out = {root.pid, *(c.pid for c in root.children(recursive=True))}
        return out

    async def _kill_all(self, h: ProcessHandle) -> None:
        if h.proc is not None and h.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                h.proc.kill()  # bwrap: --die-with-parent takes the sandbox's pid 1 and so its namespace
        if h.cgroup is not None:
            await asyncio.to_thread(h.cgroup.kill)

    async def _finish(self, h: ProcessHandle) -> None:
        await self._kill_all(h)  # stragglers, if any escaped the pid namespace's end
        if h.watcher is not None:
            h.watcher.stop()
            with contextlib.suppress(OSError):
                await asyncio.to_thread(h.watcher.check)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*h.readers, return_exceptions=True), 10.0)
        for sink in h.sinks.values():
            sink.close()
        h.fanout.close()
        status = _read_status(h)
        oom = False
        if h.cgroup is not None:
            oom = await asyncio.to_thread(h.cgroup.oom_kills) > 0
        h.result = self._result(h, status, oom, await self._stats(h))
        h.done.set()

    def _result(self, h: ProcessHandle, status: dict[str, int], oom: bool, stats: ExecStats) -> ExecResult:
        rc = h.proc.returncode if h.proc is not None else None
        exit_code: int | None = None
        message = ""
        reason: EndReason
        if h.forced is not None:
            reason = h.forced
        elif oom:
            reason = "oom"
        elif h.watcher is not None and h.watcher.exceeded:
            reason = "disk_limit"
        elif "exit-code" not in status:
            reason = "error"  # bwrap never ran the command: its own message is on stderr
            message = _bwrap_message(h.sinks["stderr"].capture.getvalue()) or f"sandbox ended with status {rc}"
        elif status["exit-code"] == SIGXFSZ_EXIT:
            reason = "disk_limit"
        else:
            reason, exit_code = "exited", status["exit-code"]
        if reason != "exited" and not message:
            message = {
                "timeout": f"ran past its timeout of {h.request.limits.timeout_s:g} s",
                "oom": f"went over its memory limit of {h.request.limits.memory_bytes} bytes",
                "disk_limit": f"wrote more than its disk limit of {h.request.limits.disk_bytes} bytes",
                "cancelled": "cancelled",
            }.get(reason, reason)
        return ExecResult(
            task_id=h.request.task_id,
            exit_code=exit_code,
            reason=reason,
            stats=stats,
            stdout=h.sinks["stdout"].capture.getvalue(),
            stderr=h.sinks["stderr"].capture.getvalue(),
            error_code=error_code_for(reason, exit_code),
            message=message,
        )

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
        if h.result is not None:
            return h.result.stats
        return await self._stats(h)

    async def _stats(self, h: ProcessHandle) -> ExecStats:
        wall = (h.ended if h.ended is not None else time.monotonic()) - h.started
        if h.cgroup is None:
            return ExecStats(wall_seconds=wall)
        cg = h.cgroup
        cpu, peak = await asyncio.to_thread(lambda: (cg.cpu_seconds(), cg.peak_memory()))
        return ExecStats(cpu_seconds=cpu, peak_memory_bytes=peak, wall_seconds=wall)

    async def cleanup(self, handle: ExecHandle) -> None:
        h = _own(handle)
        if h.cleaned:
            return
        if h.proc is not None and not h.done.is_set():
            await self.cancel(h)
        await self._teardown(h)

    async def _teardown(self, h: ProcessHandle) -> None:
        """Everything a task can leave: processes, its cgroup, the status pipe, outputs owned by the
        sandbox uid. Also the rollback of a failed start, so it copes with any half-made state."""
        h.cleaned = True
        if h.proc is not None and h.proc.returncode is None:
            await self._kill_all(h)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(h.proc.wait(), 10.0)
        if h.watcher is not None:
            h.watcher.stop()
        current = asyncio.current_task()
        for task in h.tasks:
            if task is not current and not task.done():
                task.cancel()
        await asyncio.gather(*(t for t in h.tasks if t is not current), return_exceptions=True)
        h.fanout.close()
        if h.cgroup is not None:
            await asyncio.to_thread(h.cgroup.remove)
        if h.outputs_owner is not None:
            uid, gid = h.outputs_owner
            await asyncio.to_thread(chown_tree, h.request.outputs_dir, uid, gid)
        _close_status(h)


# ---------------------------------------------------------------------- helpers


def _args_file(args: list[str]) -> int:
    """bwrap's arguments, NUL-separated, in an anonymous file read from offset 0 (a pipe could fill up
    before bwrap starts reading); the caller passes the descriptor on and closes its copy."""
    data = b"".join(a.encode() + b"\0" for a in args)
    fd = os.memfd_create("agora-bwrap-args")
    try:
        os.write(fd, data)  # one write: a memfd takes all of it
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _own(handle: ExecHandle) -> ProcessHandle:
    if not isinstance(handle, ProcessHandle):
        raise AgoraError("invalid_argument", "not a handle of the process executor")
    return handle


def _validate(req: ExecRequest) -> None:
    if req.engine != "process":
        raise AgoraError("invalid_argument", f"the process executor cannot run engine {req.engine!r}")
    if not req.command or not req.command[0]:
        raise AgoraError("invalid_argument", "a process task needs a command")
    check_argv_env(req)


async def _feed_stdin(stream: asyncio.StreamWriter, data: bytes | None) -> None:
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stream.write(b"\n" + (data or b""))
        await stream.drain()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stream.close()
        await stream.wait_closed()


async def _pump(stream: asyncio.StreamReader, sink: StreamSink) -> None:
    while chunk := await stream.read(_READ_CHUNK):
        sink.feed(chunk)


def _on_status(h: ProcessHandle) -> None:
    """bwrap's --json-status-fd: `child-pid` once it forked, `exit-code` only if the command ran."""
    if h.status_fd is None:
        return
    try:
        chunk = os.read(h.status_fd, 65536)
    except BlockingIOError:
        return
    except OSError:
        chunk = b""
    if not chunk or len(h.status_buf) > 1 << 20:
        asyncio.get_running_loop().remove_reader(h.status_fd)
        return
    h.status_buf += chunk
    if h.child_pid is None:
        h.child_pid = _parse_status(bytes(h.status_buf)).get("child-pid")


def _read_status(h: ProcessHandle) -> dict[str, int]:
    """Called once bwrap has exited, so whatever it wrote is in the pipe now."""
    if h.status_fd is not None:
        for _ in range(64):
            try:
                chunk = os.read(h.status_fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            h.status_buf += chunk
    _close_status(h)
    return _parse_status(bytes(h.status_buf))


def _close_status(h: ProcessHandle) -> None:
    if h.status_fd is None:
        return
    with contextlib.suppress(RuntimeError, ValueError):
        asyncio.get_running_loop().remove_reader(h.status_fd)
    with contextlib.suppress(OSError):
        os.close(h.status_fd)
    h.status_fd = None


def _parse_status(data: bytes) -> dict[str, int]:
    out: dict[str, int] = {}
    decoder = json.JSONDecoder()
    text, pos = data.decode(errors="replace"), 0
    while pos < len(text):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except ValueError:
            break
        if isinstance(doc, dict):
            out.update({k: v for k, v in doc.items() if isinstance(v, int)})
    return out


def _bwrap_message(stderr: bytes) -> str:
    lines = [x for x in stderr.decode(errors="replace").splitlines() if x.startswith("bwrap:")]
    return "; ".join(lines)[:500]


__all__ = ["SANDBOX_UID", "ProcessExecutor", "ProcessHandle"]
