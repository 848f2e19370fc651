"""The node's marketplace and health gauges for Prometheus (`/metrics`), fed from the places that know.

- `agora_hub_connected` (1/0): the node's link to its hub, read at each scrape (alert: hub unreachable);
- `agora_replay_cache_entries` and `agora_replay_cache_capacity`: read at each scrape (alert: near full);
- `agora_offers_active`: what this node sells now;
- `agora_provider_trust_min`: the lowest trust among providers with evidence (alert: trust collapse);
- traces: with the setting `otlp_endpoint`, this process exports OpenTelemetry traces over OTLP/HTTP;
- `agora_contract_events_total{event}` and `agora_escrow_locked_contracts`: counted by a listener on the
  contract book, the one place every contract event is recorded (alert: escrow stuck).

The gauge of locked escrows counts the contracts this process saw locked and not yet settled: after a
restart it starts from zero (the contract list at `/contracts?state=escrow_locked` is the full truth).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agora.telemetry import tracing

if TYPE_CHECKING:
    from agora.models.contract import Contract
    from agora.node.compute import ComputeFeature
    from agora.node.node import Node

LOCKED = "escrow_locked"


def attach_observability(node: Node, compute: ComputeFeature) -> None:
    if node.config.otlp_endpoint and not tracing.enabled():  # opt-in; process-wide (docs/observability.md)
        tracing.configure_otlp(node.config.otlp_endpoint)
    m = node.metrics
    m.gauge_fn("hub_connected", "1 when the node's link to its hub is up, else 0.", lambda: _hub_up(node))
    m.gauge_fn("replay_cache_entries", "Entries in the replay cache.", lambda: _replay(node)[0])
    m.gauge_fn("replay_cache_capacity", "The replay cache's capacity (entries).", lambda: _replay(node)[1])
    m.gauge_fn(
        "offers_active",
        "This node's active offers.",
        lambda: sum(1 for o in compute.offers.list() if o["state"] == "active"),
    )
    m.gauge_fn(
        "provider_trust_min",
        "The lowest trust score among the providers this node holds evidence about (1 when none).",
        lambda: _trust_min(node, compute),
    )
    locked: set[str] = set()

    def heard(contract: Contract, event: str) -> None:
        m.count_contract_event(event)
        if contract.state == LOCKED:
            locked.add(contract.contract_id)
        else:
            locked.discard(contract.contract_id)
        m.set_escrow_locked(len(locked))

    compute.contracts.on_change(heard)


def _trust_min(node: Node, compute: ComputeFeature) -> float:
    scores = [r.score for r in compute.trust_book.reports(node.clock.now()) if r.known]
    return float(min(scores, default=1.0))


def _hub_up(node: Node) -> float:
    state = node.transport.state.value if node.transport is not None else "stopped"
    return 1.0 if state in ("connected", "reconnected") else 0.0


def _replay(node: Node) -> tuple[int, int]:
    runtime = node.runtime
    if runtime is None:
        return 0, 0
    return len(runtime.replay), runtime.replay.max_entries


__all__ = ["attach_observability"]
