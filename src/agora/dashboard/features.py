"""The feature pages (training, inference): what each shows and the form it carries.

A feature is served by another package's API; its page reads that API only. `FEATURES` is the nav's table:
a row (slug, title, the route that tells whether this node serves it, the template, the reading) and one
template each. A node whose API answers the probe with 404 gets "not available on this node"."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import yaml

from agora.dashboard.api import NodeApi
from agora.dashboard.forms import Field
from agora.dashboard.svg import bar_chart, line_chart
from agora.errors import AgoraError

Reading = Callable[[NodeApi, Any], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Feature:
    """A page of a feature another package serves: shown when `probe` answers, else labelled "not available
    on this node". `read` turns the probe's answer into the template's context (more readings, charts)."""

    slug: str
    title: str
    probe: str
    template: str
    read: Reading


# -- training ------------------------------------------------------------------------------------------

EXAMPLE_SPEC = """\
trainer: softmax
hyper: {learning_rate: 0.5}
strategy: fedavg
schema: {features: [x0, x1], label: y, classes: ["0", "1"]}
data_tags: [digits]
min_providers: 2
max_providers: 3
rounds: 2
round_deadline_s: 60
min_fit: 2
max_update_norm: 10000
"""

TRAINING_FIELDS: tuple[Field, ...] = (
    Field(
        "spec",
        "Training spec (YAML or JSON)",
        "Trainer, schema, data tags, rounds, min_fit, prices: see docs/federated-learning.md. Every bad field is "
        "listed here.",
        "textarea",
        EXAMPLE_SPEC,
        api_paths=("training", "body"),
    ),
    Field(
        "providers",
        "Providers",
        "peers: other nodes' data sets; local: this node's own (one contract per data set).",
        "select",
        "peers",
        ("peers", "local"),
        api_paths=("query.providers",),
    ),
    Field(
        "budget",
        "Budget (optional)",
        "The most the run may pay, in whole minor units; empty: the spec's prices decide.",
        "number",
        api_paths=("query.budget",),
    ),
)


def training_spec(text: str) -> Any:
    """The spec typed in the form (YAML, which JSON is a subset of); unreadable text is a field error."""
    try:
        doc = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise AgoraError(
            "training_spec_invalid",
            f"the spec is not YAML or JSON{where}",
            details={"field": "training", "errors": [{"path": "training", "message": f"not YAML or JSON{where}"}]},
        ) from None
    if not isinstance(doc, dict):
        raise AgoraError(
            "training_spec_invalid",
            "the spec must be a map of fields",
            details={
                "field": "training",
                "errors": [{"path": "training", "message": "a map of fields, e.g. rounds: 2"}],
            },
        )
    return doc


def accuracy_points(run: dict[str, Any]) -> list[tuple[float, float]]:
    """(round, accuracy) for each round that aggregated, the evaluation's accuracy when it has one."""
    points: list[tuple[float, float]] = []
    for r in run.get("rounds") or []:
        metrics = r.get("metrics") or {}
        value = metrics.get("eval_accuracy", metrics.get("accuracy"))
        if r.get("accepted") and isinstance(value, int | float) and not isinstance(value, bool):
            points.append((float(r["round"]), float(value)))
    return points


async def read_training(api: NodeApi, status: Any) -> dict[str, Any]:
    runs = list((status or {}).get("runs") or [])
    charts = {
        run["run_id"]: line_chart(
            accuracy_points(run), title=f"Accuracy by round, {run['run_id']}", x_label="round", y_max=1.0
        )
        for run in runs
    }
    return {
        "runs": list(reversed(runs)),  # the newest first
        "charts": charts,
        "pending": (status or {}).get("pending") or {},
        "datasets": (status or {}).get("datasets") or [],
        "fields": TRAINING_FIELDS,
    }


# -- inference -----------------------------------------------------------------------------------------

QUOTE_FIELDS: tuple[Field, ...] = (
    Field("model", "Model", "A model id the network offers (the table above).", api_paths=("body.model",)),
    Field(
        "est_in",
        "Prompt tokens (estimate)",
        "Tokens in, to price the quote.",
        "number",
        "100",
        api_paths=("body.est_in",),
    ),
    Field(
        "est_out",
        "Output tokens (estimate)",
        "Tokens out, to price the quote.",
        "number",
        "100",
        api_paths=("body.est_out",),
    ),
    Field(
        "strategy",
        "Routing",
        "cheapest, fastest or balanced: how the providers are ordered.",
        "select",
        "balanced",
        ("balanced", "cheapest", "fastest"),
        api_paths=("body.strategy",),
    ),
)

SPEND_KEYS = (
    ("inference_spend", "Spent (requests)"),
    ("inference_revenue", "Earned (serving)"),
)


async def read_inference(api: NodeApi, summary: Any) -> dict[str, Any]:
    network, net_err = await api.read("/inference/models")
    local, local_err = await api.read("/inference/models/local")
    models = (network or {}).get("models") or []
    summary = summary or {}
    return {
        "summary": summary,
        "models": models,
        "local": (local or {}).get("models") or [],
        "spend_chart": bar_chart(
            [(label, float(summary.get(key, 0))) for key, label in SPEND_KEYS if summary.get(key)],
            title="Inference spend and revenue (minor units)",
        ),
        "fields": QUOTE_FIELDS,
        "more_errors": [e for e in (net_err, local_err) if e],
    }


def quote_body(form: dict[str, str]) -> dict[str, Any]:
    def num(value: str) -> Any:
        try:
            return int(value)
        except ValueError:
            return value  # the API says what it expected

    return {
        "model": form.get("model", ""),
        "est_in": num(form.get("est_in", "")),
        "est_out": num(form.get("est_out", "")),
        "strategy": form.get("strategy", "balanced"),
    }


FEATURES: tuple[Feature, ...] = (
    Feature("training", "Training", "/training/status", "training.html", read_training),
    Feature("inference", "Inference", "/inference/summary", "inference.html", read_inference),
)


__all__ = [
    "FEATURES",
    "QUOTE_FIELDS",
    "TRAINING_FIELDS",
    "Feature",
    "accuracy_points",
    "quote_body",
    "read_inference",
    "read_training",
    "training_spec",
]
