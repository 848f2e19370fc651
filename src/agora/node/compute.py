"""Wiring of compute (provider side), grants and the job runner (requester side) into a Node.

`attach_compute(node)` is called from `Node._attach_features`. It builds, under the node's home:
  work/     one directory per running allocation (removed when it ends)
  cache/    executor caches (compiled wasm modules)
  cas/      the node's content-addressed store (outputs, uploaded modules and inputs)
  jobs/     outputs of the jobs this node submitted, fetched and verified
and registers the AllocationManager, the GrantsActor and the JobRunner with the node's runtime.
HTTP(S) inputs refuse private and local addresses unless `NodeConfig.allow_private_inputs` (SSRF).

Storage (`NodeStores`, shared by the provider side and the requester side): the CAS; the hub's object
store (bucket `NodeConfig.hub_bucket`), opened on first use over the node's own NATS connection (a
transport without one dials the hubs just for storage; the memory transport has no hub, so hub inputs
and outputs are config_invalid there); and, when `NodeConfig.s3_bucket` is set, the operator's S3 store
(credentials from the config, else AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).

Start-up stays fast: machine detection and executor probes take milliseconds; the onboarding
benchmark (a few seconds of CPU) is loaded from the store when the same benchmark version already
ran here, else it runs in the background after start and the next announcement carries its score.

The API reaches these parts through `compute_of(node)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from agora.actor import Actor
from agora.compute import (
    DEFAULT_COMMAND,
    OFFER_COMMAND,
    AllocationManager,
    ComputeSettings,
    DelegationBook,
    GrantsActor,
    HubOpener,
    NodeStores,
    S3Settings,
    describe,
)
from agora.compute.advertiser import AdContent, Advertiser, executor_states
from agora.compute.bidder import Bidder, sellable
from agora.discovery import Change
from agora.errors import AgoraError
from agora.executors.registry import ExecutorRegistry, default_registry
from agora.ledger import InternalLedgerSettlement, Ledger, Settlement, SqliteJournalStore, TrustBook
from agora.market.contracts import ContractBook
from agora.market.index import MarketIndex
from agora.market.index_nats import NatsMarketIndex
from agora.market.intents import IntentBook
from agora.market.offers import OfferBook, default_offer
from agora.node.ledger import ledger_of
from agora.orchestrator import JobRunner, RunnerSettings
from agora.orchestrator.evidence import TrustRecorder
from agora.orchestrator.match import Matcher
from agora.orchestrator.placement import PlacementSettings, Placer
from agora.orchestrator.settle import Settler
from agora.orchestrator.slashing import Slasher
from agora.orchestrator.stakes import StakeView
from agora.resources import (
    BenchConfig,
    BenchmarkResult,
    CapacityTracker,
    MachineInfo,
    detect_async,
    load_latest_benchmark,
    run_benchmark,
    save_benchmark,
)
from agora.storage import HttpFetcher, HubObjectStore, LocalCAS
from agora.transport import MemoryTransport, NatsTransport
from agora.wire.model_offer import ModelOffer

if TYPE_CHECKING:
    from agora.node.config import NodeConfig
    from agora.node.node import Node

log = logging.getLogger("agora.node.compute")


@dataclass(frozen=True)
class ComputeOptions:
    benchmark: bool = True  # load or run the onboarding benchmark
    bench_config: BenchConfig | None = None
    settings: ComputeSettings | None = None
    runner: RunnerSettings | None = None
    registry: ExecutorRegistry | None = None  # default: every engine this machine has
    market_index: MarketIndex | None = None  # the market: a job with no --node is placed through it
    placement: PlacementSettings | None = None
    settlement: Settlement | None = None  # where market contracts settle (default: NodeConfig.settlement)

    @classmethod
    def from_config(cls, config: NodeConfig) -> ComputeOptions:
        """`NodeConfig.benchmark` (`on`, `off` or `quick`) and its `compute`, `runner` and `placement` sections."""
        return cls(
            benchmark=config.benchmark != "off",
            bench_config=QUICK_BENCH if config.benchmark == "quick" else None,
            settings=config.compute,
            runner=config.runner,
            placement=config.placement,
        )


QUICK_BENCH = BenchConfig(
    cpu_seconds=0.1,
    multi_seconds=0.15,
    memory_seconds=0.05,
    memory_buffer_bytes=8 << 20,
    disk_bytes=4 << 20,
    ping_count=2,
)


class ComputeFeature(Actor):
    """Holds the parts; registered as an actor without behaviors so `Node.stop` stops it first."""

    name = "compute"

    def __init__(self, node: Node, options: ComputeOptions) -> None:
        assert node.runtime is not None
        self.node = node
        self.options = options
        home = node.config.home
        self.work_root = home / "work"
        self.cache_dir = home / "cache"
        self.cas = LocalCAS(home / "cas")
        self.registry = options.registry or default_registry(
            self.work_root,
            self.cache_dir,
            task_host_network=self.node.config.allow_task_network,
            task_userns=self.node.config.allow_task_userns,
        )
        self.machine: MachineInfo | None = None
        self.capacity: CapacityTracker | None = None
        self.benchmark: BenchmarkResult | None = None
        self._bench_task: asyncio.Task[BenchmarkResult | None] | None = None
        self._unwind_task: asyncio.Task[int] | None = None
        self.book = DelegationBook(node.keypair, node.store, clock=node.clock)
        self.manager: AllocationManager | None = None
        self.offers = OfferBook(node.store, node.did, clock=node.clock)  # what this node sells under
        self.bidder: Bidder | None = None  # the market's provider side, over the manager's capacity
        self.market_index: MarketIndex | None = None  # the hub's market index (NATS transport only)
        self.advertiser: Advertiser | None = None  # publishes the newest active offer's capacity ad
        self.model_offers: Callable[[], tuple[ModelOffer, ...]] = tuple  # node/inference.py sets it
        self.stores = build_stores(node, self.cas)
        # the requester's evidence about providers (survives restarts), fed by the runner, read by matching
        self.trust_book = TrustBook(node.store, clock=node.clock, settings=node.config.trust)
        self.trust = TrustRecorder(self.trust_book, did=node.did, clock=node.clock)
        # the requester's market loop: intents, contracts and their money (orchestrator/settle.py, match.py)
        self.intents = IntentBook(node.store, node.did, clock=node.clock)
        self.contracts = ContractBook(node.store, clock=node.clock)
        self.journal: SqliteJournalStore | None = None
        self.settlement = options.settlement or self._local_settlement()
        self.settler = Settler(
            keypair=node.keypair, contracts=self.contracts, settlement=self.settlement, clock=node.clock
        )
        self.runner = JobRunner(
            runtime=node.runtime,
            store=node.store,
            jobs_dir=home / "jobs",
            proofs_for=self.book.proofs_for,
            clock=node.clock,
            settings=options.runner,
            published=self.stores,
            trust=self.trust,
            settler=self.settler,
        )  # its placer comes with the market index, at start
        if self.settlement is not None:  # staking: slash claims on proof (orchestrator/slashing.py)
            self.runner.slasher = Slasher(self.settlement, node.store, did=node.did, trust=self.trust, clock=node.clock)
        self.matcher = Matcher(self.runner, self.intents, self.contracts, self.settler, clock=node.clock)

    def _local_settlement(self) -> Settlement | None:
        """`settlement: hub` (the default): the hub's ledger, through this node's `RemoteSettlement`
        (node/ledger.py, attached before compute). `local`: an internal ledger in this node's home, this node its
        operator. None (`none`): contracts keep their timelines and no money moves."""
        mode = self.node.config.settlement
        if mode == "hub":
            return ledger_of(self.node).settlement
        if mode != "local":
            return None
        self.journal = SqliteJournalStore(self.node.config.home / "ledger.db")
        return InternalLedgerSettlement(Ledger(self.journal, clock=self.node.clock), self.node.did)

    async def start(self) -> None:
        await asyncio.to_thread(self.cas.clear_tmp)
        availability = await asyncio.to_thread(self.registry.available)
        execs = {str(e): (a.available, a.reason or "ok") for e, a in availability.items()}
        self.machine = await detect_async(self.node.config.home, execs, clock=self.node.clock)
        if self.options.benchmark:
            self.benchmark = await load_latest_benchmark(self.node.store)
        self.capacity = CapacityTracker(self.machine.capability())
        if self.node.config.allow_private_inputs:
            log.warning("HTTP inputs may reach loopback, private and link-local addresses (allow_private_inputs)")
        self.manager = AllocationManager(
            keypair=self.node.keypair,
            store=self.node.store,
            registry=self.registry,
            capacity=self.capacity,
            cas=self.cas,
            stores=self.stores,
            work_root=self.work_root,
            clock=self.node.clock,
            settings=self.options.settings or self.node.config.compute,
        )
        interrupted = await self.manager.recover()
        await self.manager.start_sweeping()
        await self.trust_book.load()
        self._open_market_index()  # before the runner resumes its queued market jobs
        failed_jobs = await self.runner.recover()
        unwound = await self.settler.recover()  # contracts the restart left open: refunded (or disputed)
        if unwound:
            log.warning("after a restart: %d open contract(s) unwound", unwound)
        if self.settler.leftover:  # the hub not known yet: tried again as it becomes reachable (bounded)
            self._unwind_task = asyncio.create_task(self.settler.unwind_leftover(), name="unwind-contracts")
        self.node.peer_listeners.append(self._on_peer_change)
        if interrupted or failed_jobs:
            log.warning("after a restart: %d allocation(s) and %d job(s) marked failed", interrupted, failed_jobs)
        await self.book.load()
        await self.offers.load()
        self.bidder = Bidder(
            keypair=self.node.keypair,
            capacity=self.capacity,
            offers=self.offers,
            clock=self.node.clock,
            settings=self.node.config.bidder,
        )
        self.manager.market = self.bidder
        await self.bidder.start()
        if self.node.config.sell and not self.offers.active():
            await self.sell_from_node()
        if self.options.benchmark and self.benchmark is None:
            self._bench_task = asyncio.create_task(self._bench(), name="onboarding-benchmark")
        await self._start_market()

    def _open_market_index(self) -> None:
        """The hub's market index over the node's own connection (or the one the options give), and the
        runner's placer over it: a job with no --node is placed through the market."""
        transport, ads = self.node.transport, self.node.config.ads
        if self.options.market_index is not None:
            self.market_index = self.options.market_index
        elif isinstance(transport, NatsTransport):
            self.market_index = NatsMarketIndex(transport.nats_client, ads.bucket, ttl_s=ads.ttl_s)
        if self.market_index is not None and self.runner.placer is None:
            runtime = self.node.runtime
            assert runtime is not None
            self.runner.placer = Placer(
                runtime,
                self.market_index,
                clock=self.node.clock,
                settings=self.options.placement,
                policy=self.trust.match_policy,
                stakes=None if self.settlement is None else StakeView(self.settlement, clock=self.node.clock),
            )

    async def _start_market(self) -> None:
        """Publish this node's capacity ad in the market index (republished when free capacity or its offers
        change; `NodeConfig.ads`)."""
        ads = self.node.config.ads
        if self.market_index is None or not ads.enabled:
            return
        assert self.capacity is not None
        self.advertiser = Advertiser(
            self.node.keypair, self.market_index, self.ad_content, self.node.store, settings=ads, clock=self.node.clock
        )
        self.capacity.on_change(self.advertiser.changed)
        self.offers.on_change(self.advertiser.changed)
        await self.advertiser.start()

    def ad_content(self) -> AdContent | None:
        """What this node's capacity ad says now: its newest active offer and free capacity; None while it
        sells nothing (`--sell`, `agora offer create`), which takes its ad out of the index."""
        assert self.capacity is not None
        active = self.offers.active()
        if not active:
            return None
        availability = {str(e): (a.available, a.reason) for e, a in self.registry.available().items()}
        return AdContent(
            offer=active[0],
            free=sellable(self.capacity.free, self.capacity.total, active[0].resources),  # what a bid can hold
            executors=executor_states(availability),
            benchmark_score=self.benchmark.score if self.benchmark is not None else None,
            models=self.model_offers(),
        )

    def _on_peer_change(self, change: Change) -> None:
        """A provider lost or gone: the market units running there are placed again elsewhere."""
        if change.kind in ("peer.lost", "peer.left"):
            self.runner.provider_lost(change.did, f"discovery: {change.kind}")

    async def _hub_ping(self) -> float:
        """One signed ping to this node through its hub (the transport, not the local shortcut)."""
        runtime, transport = self.node.runtime, self.node.transport
        assert runtime is not None and transport is not None
        request = runtime.build_request(runtime.did, "/agora/node/ping", {"echo": "bench"})
        t0 = time.perf_counter()
        await transport.request(runtime.did, request.encode(), 5.0)
        return time.perf_counter() - t0

    async def _bench(self) -> BenchmarkResult | None:
        try:
            ping = self._hub_ping if self.node.transport is not None else None
            result = await run_benchmark(
                self.node.config.home, ping=ping, clock=self.node.clock, config=self.options.bench_config
            )
            await save_benchmark(self.node.store, result)
            self.benchmark = result
            if self.advertiser is not None:
                self.advertiser.changed()  # the next ad carries the score
            await self.node.store.append_event("node.benchmark", self.node.did, {"score": result.score})
            return result
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the onboarding benchmark failed")
            return None

    async def rebench(self) -> dict[str, Any]:
        """Run the benchmark now (or join the run in progress) and re-probe the executors."""
        if self._bench_task is None or self._bench_task.done():
            self._bench_task = asyncio.create_task(self._bench(), name="benchmark")
        result = await asyncio.shield(self._bench_task)
        if result is None:
            raise AgoraError("benchmark_failed", "the benchmark did not complete; the node's log says why")
        self.registry.refresh()
        return result.to_dict()

    async def stop(self) -> None:
        if self.advertiser is not None:
            await self.advertiser.stop()  # a clean stop takes the ad out of the index (bounded)
        if self.market_index is not None:
            await self.market_index.close()
        for task in (self._bench_task, self._unwind_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.runner.stop()
        if self.bidder is not None:
            await self.bidder.stop()
        if self.manager is not None:
            await self.manager.stop()
        await self.stores.close()
        if self.journal is not None:
            await self.journal.close()

    # -- what the node shows ------------------------------------------------------------------
    async def market_summary(self) -> dict[str, Any]:
        """The marketplace snapshot of `GET /metrics_summary` and `agora market summary`."""
        offers = self.offers.list()
        providers: int | None = None
        if self.market_index is not None:
            with contextlib.suppress(AgoraError):
                providers = len(await self.market_index.ads())
        contracts = await self.contracts.summary()
        matching = await self.matcher.summary()
        return {
            "did": self.node.did,
            "at": self.node.clock.now(),
            "offers": {
                "active": sum(1 for o in offers if o["state"] == "active"),
                "withdrawn": sum(1 for o in offers if o["state"] == "withdrawn"),
                "providers_in_index": providers,
            },
            **matching,
            "contracts": contracts,
            "escrow": {"locked": contracts["escrow_locked"], "released": contracts["released"]},
            "settlement": self.node.config.settlement if self.settlement is not None else "none",
        }

    def capability_summary(self) -> dict[str, Any]:
        """The compact capacity ad carried by announcements."""
        if self.capacity is None:
            return {}
        total, free = self.capacity.total, self.capacity.free
        return {
            "cpu_millis": total.cpu_millis,
            "memory_bytes": total.memory_bytes,
            "disk_bytes": total.disk_bytes,
            "gpu_count": total.gpu_count,
            "arch": total.arch,
            "executors": sorted(e for e, a in self.registry.available().items() if a.available),
            "free": {"cpu_millis": free.cpu_millis, "memory_bytes": free.memory_bytes, "disk_bytes": free.disk_bytes},
            "allocations": len(self.capacity.allocations),
            "benchmark_score": self.benchmark.score if self.benchmark is not None else None,
        }

    async def sell_from_node(self) -> dict[str, Any]:
        """Publish the default offer from this machine (`--sell`, `agora offer create --from-node`)."""
        assert self.capacity is not None
        offer = default_offer(self.node.did, self.capacity.total, now=self.node.clock.now())
        return await self.offers.add(offer, source="node")

    def resources(self) -> dict[str, Any]:
        assert self.capacity is not None and self.machine is not None
        return {
            "did": self.node.did,
            "machine": self.machine.to_dict(),
            "capability": self.capacity.total.to_dict(),
            "free": self.capacity.free.to_dict(),
            "describe": self.capacity.total.describe(),
            "executors": {
                e: {"available": a.available, "reason": a.reason, "details": dict(a.details)}
                for e, a in self.registry.available().items()
            },
            "allocations": len(self.capacity.allocations),
            "benchmark": self.benchmark.to_dict() if self.benchmark is not None else None,
            "benchmark_running": self._bench_task is not None and not self._bench_task.done(),
        }

    async def grant(
        self, did: str, *, command: str = DEFAULT_COMMAND, ttl_s: int | None = None, policy: list[Any] | None = None
    ) -> dict[str, Any]:
        """Sign a delegation to `did` and offer it to that node over the network (best effort)."""
        kwargs: dict[str, Any] = {"command": command, "policy": policy or []}
        if ttl_s is not None:
            kwargs["ttl_s"] = ttl_s
        d = await self.book.issue(did, **kwargs)
        out = describe(d)
        runtime = self.node.runtime
        assert runtime is not None
        try:
            await runtime.call(did, OFFER_COMMAND, {"token": d.raw}, timeout=self.node.config.request_timeout)
            out["delivered"] = True
        except AgoraError as err:
            out["delivered"] = False
            out["delivery_error"] = err.to_dict()
        return out


def build_stores(node: Node, cas: LocalCAS) -> NodeStores:
    """The node's storage backends from its config and transport (nothing is opened until used)."""
    config = node.config
    opener, no_hub = _hub_opener(node)
    s3 = None
    if config.s3_bucket is not None:
        access, secret = config.s3_credentials()
        s3 = S3Settings(
            bucket=config.s3_bucket,
            endpoint=config.s3_endpoint,
            region=config.s3_region,
            access_key=access,
            secret_key=secret,
        )
    return NodeStores(
        cas,
        http=HttpFetcher(allow_private_inputs=config.allow_private_inputs),
        hub=opener,
        hub_bucket=config.hub_bucket,
        no_hub_reason=no_hub,
        s3=s3,
    )


def _hub_opener(node: Node) -> tuple[HubOpener | None, str]:
    """How this node opens a bucket of its hub's object store, or why it cannot."""
    transport = node.transport
    cap = node.config.hub_max_object_bytes
    if isinstance(transport, NatsTransport):
        nats_transport = transport

        async def shared(bucket: str) -> HubObjectStore:  # the node's own connection: its key, its reply inbox
            return HubObjectStore(nats_transport.nats_client, bucket, max_object_bytes=cap)

        return shared, ""
    urls = list(getattr(node, "hub_urls", ()))
    if isinstance(transport, MemoryTransport) or not urls:
        return None, "this node runs on the in-process memory transport, which has no hub"
    tls = node.config.client_tls()

    async def dialled(bucket: str) -> HubObjectStore:  # another transport: a connection just for storage
        options: dict[str, Any] = {"tls": tls.client_context()} if tls is not None else {}
        return await HubObjectStore.connect(urls, bucket, max_object_bytes=cap, keypair=node.keypair, **options)

    return dialled, ""


_FEATURES: WeakKeyDictionary[Node, ComputeFeature] = WeakKeyDictionary()


def compute_of(node: Node) -> ComputeFeature:
    feature = _FEATURES.get(node)
    if feature is None:
        raise AgoraError("unavailable", "compute is not attached to this node (it is still starting?)", retryable=True)
    return feature


async def attach_compute(node: Node, options: ComputeOptions | None = None) -> ComputeFeature:
    feature = ComputeFeature(node, options or ComputeOptions.from_config(node.config))
    await feature.start()
    assert feature.manager is not None
    node.add_actor(feature.manager)
    node.add_actor(GrantsActor(feature.book))
    assert feature.bidder is not None
    node.add_actor(feature.bidder)
    node.add_actor(feature.runner)
    node.add_actor(feature)  # stopped first (actors stop in reverse order)
    _FEATURES[node] = feature
    return feature


__all__ = ["ComputeFeature", "ComputeOptions", "attach_compute", "build_stores", "compute_of"]
