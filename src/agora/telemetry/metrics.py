"""Prometheus metrics of one node, in a registry of its own.

Why not the global registry: the devnet, the simulator and the tests run several nodes in one
process, and prometheus_client refuses to register a metric name twice in one registry. Each
`Metrics` owns a `CollectorRegistry`, and `render()` serves exactly that node's numbers on /metrics.

Why label children are cached and capped: the hot path (every message in and out) should cost a dict
lookup and an increment, not prometheus_client's label validation and lock; and label values such as
a message kind can come from the network, so past `max_label_values` distinct values per metric the
rest are counted under "other" instead of growing the registry without bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

OTHER: Final = "other"
RPC_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


class _Children:
    """The per-label-value children of one labelled metric, cached and capped."""

    __slots__ = ("_children", "_max", "_metric")

    def __init__(self, metric: Any, max_values: int) -> None:
        self._metric = metric
        self._max = max_values
        self._children: dict[str, Any] = {}

    def get(self, value: str) -> Any:
        child = self._children.get(value)
        if child is None:
            if len(self._children) >= self._max:
                value = OTHER
                child = self._children.get(OTHER)
            if child is None:
                child = self._metric.labels(value)
                self._children[value] = child
        return child


class Metrics:
    def __init__(self, *, namespace: str = "agora", max_label_values: int = 256) -> None:
        if max_label_values < 1:
            raise ValueError("max_label_values must be at least 1")
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self._in = _Children(
            Counter("messages_in", "Messages received, by kind.", ["kind"], namespace=namespace, registry=reg),
            max_label_values,
        )
        self._out = _Children(
            Counter("messages_out", "Messages sent, by kind.", ["kind"], namespace=namespace, registry=reg),
            max_label_values,
        )
        self._rejects = _Children(
            Counter(
                "rejects", "Messages or requests rejected, by error code.", ["code"], namespace=namespace, registry=reg
            ),
            max_label_values,
        )
        self._rpc = _Children(
            Histogram(
                "rpc_latency_seconds",
                "Time from sending a request to its verified reply, by command.",
                ["command"],
                namespace=namespace,
                registry=reg,
                buckets=RPC_BUCKETS,
            ),
            max_label_values,
        )
        self._peers = Gauge("peers", "Peers currently known to be alive.", namespace=namespace, registry=reg)
        self._allocations = Gauge(
            "allocations", "Allocations currently running on this node.", namespace=namespace, registry=reg
        )
        self._namespace = namespace
        # the marketplace (deploy/grafana, deploy/prometheus read these; docs/observability.md)
        self._contract_events = _Children(
            Counter(
                "contract_events",
                "Events recorded on this node's contracts, by event (created, escrow_locked, escrow_released, ...).",
                ["event"],
                namespace=namespace,
                registry=reg,
            ),
            max_label_values,
        )
        self._escrow_locked = Gauge(
            "escrow_locked_contracts",
            "This node's contracts whose escrow is locked now (since the node started).",
            namespace=namespace,
            registry=reg,
        )

    # --- hot path ----------------------------------------------------------------------------------------

    def count_in(self, kind: str) -> None:
        self._in.get(kind).inc()

    def count_out(self, kind: str) -> None:
        self._out.get(kind).inc()

    def count_reject(self, code: str) -> None:
        self._rejects.get(code).inc()

    def observe_rpc(self, command: str, seconds: float) -> None:
        self._rpc.get(command).observe(max(0.0, seconds))

    @contextmanager
    def rpc_timer(self, command: str) -> Iterator[None]:
        """Observe the time the block takes (also when it raises: slow failures matter most)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe_rpc(command, time.perf_counter() - start)

    def set_peers(self, n: int) -> None:
        self._peers.set(n)

    def set_allocations(self, n: int) -> None:
        self._allocations.set(n)

    def count_contract_event(self, event: str) -> None:
        self._contract_events.get(event).inc()

    def set_escrow_locked(self, n: int) -> None:
        self._escrow_locked.set(n)

    def gauge_fn(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A gauge whose value is read at each scrape (`read` must be cheap, synchronous and never raise)."""
        Gauge(name, documentation, namespace=self._namespace, registry=self.registry).set_function(read)

    def counter_fn(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A counter (`<name>_total`) whose value is read at each scrape from a running total kept elsewhere
        (`read`: cheap, synchronous, never raises, never decreases while the process lives)."""
        self.registry.register(_ReadCounter(f"{self._namespace}_{name}", documentation, read))

    # --- export ------------------------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The body and content type for a /metrics response (Prometheus text format)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _ReadCounter(Collector):
    def __init__(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        self._name, self._doc, self._read = name, documentation, read

    def describe(self) -> list[CounterMetricFamily]:  # registering must not read (the source may come later)
        return [CounterMetricFamily(self._name, self._doc)]

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self._name, self._doc, value=self._read())


__all__ = ["OTHER", "RPC_BUCKETS", "Metrics"]
