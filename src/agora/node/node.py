"""The composition root: builds a Node from its config. Nothing else in agora wires parts together.

A node owns: its identity (keystore), a store (SQLite under its home), telemetry (JSON logs, metrics,
the event log), a transport (NATS to its hubs; memory in tests and the simulator), the actor runtime
with the Node actor, and discovery. A hub node additionally runs the embedded nats-server.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from agora import __version__
from agora.actor import Actor, AdmissionSettings, ChildSpec, Runtime, StoreReplayJournal, Supervisor
from agora.clock import SYSTEM_CLOCK, Clock
from agora.discovery import Change, Discovery, PeerTable
from agora.errors import AgoraError
from agora.identity import Keypair, create_keystore, load_keystore, public_from_did
from agora.node.actor import NodeActor
from agora.node.config import NodeConfig
from agora.store import SqliteStore, Store
from agora.telemetry import EventRecorder, Metrics
from agora.transport import ConnectionState, HubProcess, NatsTransport, Transport, reachability_check

PING_MAX_PACE_S = 5.0  # longest wait, told by a rate_limited refusal, before a ping is sent again
PING_MAX_PACED = 20  # refusals per ping sent (a bound: the target's own rate decides the pace)
log = logging.getLogger("agora.node")


def load_or_create_identity(config: NodeConfig) -> Keypair:
    """A node keeps one identity for life; the first start creates it (`passphrase`: AGORA_PASSPHRASE)."""
    passphrase = config.passphrase or None
    if config.keystore_path.exists():
        return load_keystore(config.keystore_path, passphrase)
    return create_keystore(config.keystore_path, passphrase)


class Node:
    def __init__(
        self,
        config: NodeConfig,
        *,
        keypair: Keypair | None = None,
        transport: Transport | None = None,
        store: Store | None = None,
        clock: Clock = SYSTEM_CLOCK,
        admission: AdmissionSettings | None = None,
    ) -> None:
        config.validate()
        config.home = config.home.expanduser().resolve()  # paths written into hub configs must be absolute
        self.config = config
        self.clock = clock
        config.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(config.home, 0o700)  # keys, database and logs live here: the node's user only
        self._lock_fd: int | None = None
        self.keypair = keypair or load_or_create_identity(config)
        self.did = self.keypair.did
        self.metrics = Metrics()
        self.store: Store = store or SqliteStore(config.db_path, clock=clock)
        self.events = EventRecorder(self.store, logger=log)
        self.hub: HubProcess | None = None
        self._transport_override = transport
        self._admission = admission or config.admission  # replay-cache shares and public rate limits
        self.transport: Transport | None = None
        self.runtime: Runtime | None = None
        self.peer_table = PeerTable(
            self.did,
            lost_after=config.lost_after,
            expire_after=config.expire_after,
            clock=clock,
            pinned=frozenset(config.pinned_peers),
        )
        self.discovery: Discovery | None = None
        self.peer_listeners: list[Callable[[Change], None]] = []  # told of every peer change (e.g. peer.lost)
        self.supervisor = Supervisor(on_event=self._on_supervisor_event, clock=clock)
        self.started_at: float | None = None
        self.ready_s: float | None = None
        self.hub_check: dict[str, Any] = {}
        self.api_url: str | None = None
        self.capability_providers: list[Callable[[], dict[str, Any]]] = []
        self._actors: list[Actor] = []
        self._tasks: set[asyncio.Task[Any]] = set()  # background work the node owns; stop() waits for it

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        t0 = time.perf_counter()
        self._lock_home()
        try:
            await self._start(t0)
        except BaseException:
            await self._abort_start()
            raise

    async def _abort_start(self) -> None:
        """A failed start leaves nothing running: no hub process, no connection, no lock."""
        with contextlib.suppress(Exception):
            if self.transport is not None and self._transport_override is None:
                await self.transport.close()
        with contextlib.suppress(Exception):
            if self.hub is not None:
                await self.hub.stop()
        with contextlib.suppress(Exception):
            await self.store.close()
        self._unlock_home()

    def _lock_home(self) -> None:
        """One node per home: two would share an identity, a database and a run file."""
        path = self.config.home / "node.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise AgoraError(
                "home_in_use", f"another agora node (pid {other}) runs with home {self.config.home}"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _unlock_home(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the lock
            self._lock_fd = None

    async def _start(self, t0: float) -> None:
        await self.store.open()
        hub_urls = list(self.config.hubs)
        if self.config.hub is not None:
            self.hub = HubProcess(self.config.hub_process_config(self.did))
            await self.hub.start()
            hub_urls = [self.hub.url, *hub_urls]
        self.hub_urls = tuple(hub_urls)
        if self._transport_override is not None:
            self.transport = self._transport_override
        else:
            await self._self_test()
            self.transport = NatsTransport(
                self.did,
                list(self.hub_urls),
                keypair=self.keypair,
                tls=self.config.client_tls(),
                max_message_bytes=self.config.max_message_bytes,
            )
        self.transport.on_state_change(self._on_link_change)
        await self.transport.start()
        self.runtime = Runtime(
            self.keypair,
            self.transport,
            clock=self.clock,
            metrics=self.metrics,
            max_message_bytes=self.config.max_message_bytes,
            journal=StoreReplayJournal(self.store),  # mutating invocations are refused again after a restart
            limits=self._admission,
        )
        self.add_actor(NodeActor(self))
        await self._attach_features()
        await self.runtime.start()
        self.discovery = Discovery(
            self.keypair,
            self.transport,
            self.peer_table,
            hubs=self.hub_urls,
            capabilities=self.capability_summary,
            interval=self.config.announce_interval,
            on_change=self._on_peer_change,
            on_reject=self.metrics.count_reject,
            on_alive=self.metrics.set_peers,
        )
        await self.discovery.start(run_loop=False)
        discovery = self.discovery
        await self.supervisor.start_child(
            ChildSpec(
                "discovery",
                lambda: discovery.run(on_beat=lambda: self.supervisor.heartbeat("discovery")),
                heartbeat_timeout=3 * self.config.announce_interval + 5.0,
            )
        )
        self.started_at = self.clock.now()
        self.ready_s = time.perf_counter() - t0
        await self.events.record("node.started", self.did, version=__version__, hubs=list(self.hub_urls))

    async def _attach_features(self) -> None:
        """Wire the feature actors (compute, jobs, ...): each lives in its own module of this package and
        is attached here explicitly, after the Node actor and before the runtime serves."""
        from agora.node.compute import attach_compute  # compute: allocations, grants, the job runner
        from agora.node.ledger import attach_ledger  # the ledger: the hub's service, every node's settlement

        await attach_ledger(self)  # first: compute's contracts settle through it
        compute = await attach_compute(self)
        self.capability_providers.append(compute.capability_summary)
        from agora.node.fl import attach_fl  # federated learning: data sets, sandboxed trainers, runs

        await attach_fl(self)
        from agora.node.observability import attach_observability  # /metrics: hub link, market, escrow

        attach_observability(self, compute)
        from agora.node.inference import attach_inference  # inference: model offers, quotes, metering

        await attach_inference(self)

    async def _self_test(self) -> None:
        """Check the first hub answers before joining, so a wrong URL fails with a fix, not a hang."""
        url = self.hub_urls[0]
        ok, detail, hint = await reachability_check(url, 3.0, keypair=self.keypair, tls=self.config.client_tls())
        self.hub_check = {"url": url, "ok": ok, "detail": detail, "hint": hint}
        if not ok:
            code = "hub_auth_failed" if "auth" in detail.lower() else "hub_unreachable"
            raise AgoraError(code, detail if url in detail else f"{url}: {detail}", hint=hint)

    def _on_link_change(self, state: ConnectionState) -> None:
        """Losing and regaining the hub is part of the node's history: record it."""
        if self.started_at is None or state == ConnectionState.CLOSED:
            return
        if state == ConnectionState.DISCONNECTED:
            log.warning("lost the link to the hub; reconnecting with backoff")
        self._spawn(self.events.record(f"hub.{state.value}", self.did), f"event-hub.{state.value}")

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Start background work the node owns: held until done, failures logged, awaited by stop()."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    async def stop(self) -> None:
        await self.supervisor.stop()
        if self.discovery is not None:
            await self.discovery.stop(announce_leave=True)
        for actor in reversed(self._actors):
            stop = getattr(actor, "stop", None)
            if stop is not None:
                await stop()
        if self.transport is not None:
            await self.transport.close()
        if self.hub is not None:
            await self.hub.stop()
        if self._tasks:  # events still being written go in before the store closes
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        try:
            await self.events.record("node.stopped", self.did)
        finally:
            await self.store.close()
            self._unlock_home()

    def add_actor(self, actor: Actor) -> None:
        assert self.runtime is not None
        self.runtime.register(actor)
        self._actors.append(actor)

    # -- what the API and behaviors show --------------------------------------------------------
    def capability_summary(self) -> dict[str, Any]:
        caps: dict[str, Any] = {"commands": len(self.runtime.commands) if self.runtime else 0}
        for provider in self.capability_providers:
            caps.update(provider())
        return caps

    def public_info(self) -> dict[str, Any]:
        return {
            "did": self.did,
            "peer_id": self.keypair.peer_id,
            "version": __version__,
            "hubs": list(getattr(self, "hub_urls", ())),
            "capabilities": self.capability_summary(),
            "commands": self.runtime.commands if self.runtime else [],
        }

    def info(self) -> dict[str, Any]:
        now = self.clock.now()
        out = self.public_info()
        out.update(
            {
                "nkey": self.keypair.nkey,
                "home": str(self.config.home),
                "api": self.api_url,
                "is_hub": self.hub is not None,
                "hub_url": self.hub.url if self.hub is not None else None,
                "transport": self.transport.state.value if self.transport else "stopped",
                "started_at": self.started_at,
                "uptime_s": round(now - self.started_at, 3) if self.started_at else 0.0,
                "ready_s": self.ready_s,
                "hub_check": self.hub_check,
                "peers_alive": len(self.peer_table.alive()),
                "supervised": self.supervisor.status(),
            }
        )
        return out

    def health(self) -> dict[str, Any]:
        """ok, or degraded with the reasons: the hub link is down, or a shared admission limit (a full share of
        the replay cache) refused callers in the last minute; `limits` lists every limit hit."""
        transport = self.transport.state.value if self.transport else "stopped"
        reasons = [] if transport in ("connected", "reconnected") else [f"transport {transport}"]
        body: dict[str, Any] = {"did": self.did, "transport": transport}
        if self.runtime is not None:
            admission = self.runtime.health()
            reasons += admission["degraded"]
            body["limits"], body["replay"] = admission["limits"], admission["replay"]
        return {"status": "degraded" if reasons else "ok", "reasons": reasons, **body}

    async def ping(self, did: str, *, count: int = 1, timeout: float | None = None) -> list[float]:
        """Round trips in milliseconds of signed /agora/node/ping invocations to `did`.

        Paced by the target's admission limit: a ping refused `rate_limited` (the target's per-issuer bucket
        of public calls is empty, e.g. `ping -c 100` twice in a row) waits the `retry_after_s` the refusal
        names and is sent again, so a long ping slows down to the target's rate instead of failing; only a
        successful round trip is timed. Bounded: each wait at most `PING_MAX_PACE_S`, and the whole ping at
        most `count` x `PING_MAX_PACED` refusals."""
        assert self.runtime is not None
        public_from_did(did)  # a malformed DID is the caller's mistake: say so instead of "unreachable"
        rtts: list[float] = []
        n = max(1, min(count, 100))
        refusals = 0
        while len(rtts) < n:
            t0 = time.perf_counter()
            try:
                await self.runtime.call(
                    did, "/agora/node/ping", {"echo": len(rtts)}, timeout=timeout or self.config.request_timeout
                )
            except AgoraError as err:
                wait = err.details.get("retry_after_s") if err.code == "rate_limited" else None
                refusals += 1
                if not isinstance(wait, int | float) or refusals > n * PING_MAX_PACED:
                    raise
                await asyncio.sleep(min(max(float(wait), 0.001), PING_MAX_PACE_S))
                continue
            rtts.append((time.perf_counter() - t0) * 1000.0)
        return rtts

    async def _on_supervisor_event(self, kind: str, child: str, data: dict[str, object]) -> None:
        """Awaited by the supervisor before the state it describes shows in `supervisor.status()`."""
        if kind in ("child.failed", "child.gave_up"):
            log.warning("%s %s: %s", kind, child, data.get("reason"))
        if kind != "child.started":
            await self.events.record(kind, child, **data)

    async def _on_peer_change(self, change: Change) -> None:
        """Awaited by discovery before the peer table shows the change."""
        await self.events.record(change.kind, change.did, **change.data)
        for listener in self.peer_listeners:
            listener(change)

    def write_run_file(self, **extra: Any) -> None:
        doc = {"pid": os.getpid(), "did": self.did, "api": self.api_url, "hubs": list(self.hub_urls), **extra}
        tmp = self.config.run_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        tmp.replace(self.config.run_file)

    def remove_run_file(self) -> None:
        Path(self.config.run_file).unlink(missing_ok=True)


__all__ = ["Node", "load_or_create_identity"]
