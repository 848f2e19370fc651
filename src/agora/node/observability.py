"""The node's marketplace and health gauges for Prometheus (`/metrics`), fed from the places that know.

- `agora_hub_connected` (1/0): the node's link to its hub, read at each scrape (alert: hub unreachable);
- `agora_replay_cache_entries` and `agora_replay_cache_capacity`: read at each scrape (alert: near full);
- `agora_offers_active`: what this node sells now;
- `agora_provider_trust_min`: the lowest trust among providers with evidence (alert: trust collapse);
- traces: with the setting `otlp_endpoint`, this process exports OpenTelemetry traces over OTLP/HTTP;
- `agora_contract_events_total{event}` and `agora_escrow_locked_contracts`: counted by a listener on the
  contract book, the one place every contract event is recorded (alert: escrow stuck);
- `agora_jobs_placing` and `agora_jobs_pending_past_deadline`: market jobs waiting for a provider, and those
  of them past their deadline, which the runner should have failed already (alert: jobs pending past deadline);
- training (the owner's runs, read at each scrape): `agora_training_runs_active`,
  `agora_training_rounds_total`, `agora_training_updates_{delivered,late,rejected}_total`,
  `agora_training_pending_contracts`, `agora_training_escrow_outstanding`, `agora_training_last_accuracy`;
- inference (read at each scrape): `agora_inference_{requests,spend,failures,refused_records,revenue,served}_total`.

The gauge of locked escrows counts the contracts this process saw locked and not yet settled: after a
restart it starts from zero (the contract list at `/contracts?state=escrow_locked` is the full truth).
"""

from __future__ import annotations

import math
from functools import partial
from typing import TYPE_CHECKING, Any

from agora.errors import AgoraError
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
    m.gauge_fn(
        "jobs_placing",
        "Market jobs of this node waiting to be placed (pending, matching, bidding, awarded, committed).",
        lambda: compute.runner.placing(node.clock.now())[0],
    )
    m.gauge_fn(
        "jobs_pending_past_deadline",
        "Market jobs still waiting to be placed after their deadline (the runner should have failed them).",
        lambda: compute.runner.placing(node.clock.now())[1],
    )
    _training_metrics(node)
    _inference_metrics(node)
    locked: set[str] = set()

    def heard(contract: Contract, event: str) -> None:
        m.count_contract_event(event)
        if contract.state == LOCKED:
            locked.add(contract.contract_id)
        else:
            locked.discard(contract.contract_id)
        m.set_escrow_locked(len(locked))

    compute.contracts.on_change(heard)


ENDED = ("completed", "failed", "stopped")


def _training_metrics(node: Node) -> None:
    """The owner's training runs, read at each scrape (zero until federated learning is attached)."""
    m = node.metrics

    def manager() -> Any:
        from agora.node.fl import fl_of

        try:
            return fl_of(node).manager
        except AgoraError:
            return None

    def runs() -> list[Any]:
        found = manager()
        return [] if found is None else list(found.runs.values())

    def updates(kind: str) -> float:
        return float(sum(len(getattr(p, kind)) for r in runs() for p in r.participants))

    def pending() -> tuple[int, int]:
        contracts = owed = 0
        for r in runs():
            if r.state not in ENDED:
                for p in r.participants:
                    contracts += 1
                    owed += max(0, p.price_per_update * r.spec.rounds - p.paid)
        paying = (found := manager()) is not None and found.settlement is not None
        return contracts, owed if paying else 0  # as the training status counts it

    def last_accuracy() -> float:
        for r in reversed(runs()):
            value = r.status()["last_metrics"].get("eval_accuracy")
            if isinstance(value, int | float):
                return float(value)
        return math.nan

    m.gauge_fn(
        "training_runs_active",
        "Training runs of this node not ended yet.",
        lambda: sum(r.state not in ENDED for r in runs()),
    )
    m.counter_fn(
        "training_rounds", "Training rounds finished by this node's runs.", lambda: sum(len(r.rounds) for r in runs())
    )
    for kind in ("delivered", "late", "rejected"):
        m.counter_fn(f"training_updates_{kind}", f"Model updates {kind} to this node's runs.", partial(updates, kind))
    m.gauge_fn("training_pending_contracts", "Training contracts awaiting delivery or release.", lambda: pending()[0])
    m.gauge_fn(
        "training_escrow_outstanding",
        "What running training contracts may still pay (minor units).",
        lambda: pending()[1],
    )
    m.gauge_fn(
        "training_last_accuracy",
        "Evaluation accuracy after the last round of the newest run (NaN: none).",
        last_accuracy,
    )


INFERENCE = (
    ("requests", "inference_requests", "Inference requests this node bought."),
    ("spend", "inference_spend", "What this node paid for inference (minor units)."),
    ("failures", "inference_failures", "Inference attempts that failed over to another provider or failed."),
    ("refused_records", "inference_refused_records", "Metering records this node refused (did not verify)."),
    ("revenue", "inference_revenue", "What this node earned serving inference (minor units)."),
    ("served", "inference_served", "Inference requests this node served."),
)


def _inference_metrics(node: Node) -> None:
    """The inference totals, read at each scrape (zero until inference is attached)."""

    def read(key: str) -> float:
        from agora.node.inference import inference_of

        try:
            return float(inference_of(node).summary()[key])
        except AgoraError:
            return 0.0

    for name, key, doc in INFERENCE:
        node.metrics.counter_fn(f"inference_{name}", doc, partial(read, key))


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
