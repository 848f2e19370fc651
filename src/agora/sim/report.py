"""Reports: `report.json` (canonical JSON: the same run gives the same bytes), `report.md` with PNG plots,
and `compare` (two reports side by side).

The PNGs are deterministic too: matplotlib's Agg backend, no date or software version in the metadata,
a fixed size and dpi, and the hash salt of SVG ids does not apply to PNG. Floats are rounded before they
are written, so the platform's last-digit noise never reaches the files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agora.errors import AgoraError

PLOTS = (
    ("utilisation", "Utilisation (cores held / online cores)", ("utilisation",)),
    ("queue", "Queue length at each sample, and jobs expired since the previous one", ("queue", "expired")),
    ("prices", "Mean awarded price per core-hour", ("price",)),
    ("trust", "Mean trust: honest vs dishonest providers", ("trust_honest", "trust_dishonest")),
    (
        "ledger",
        "Ledger totals (their sum is 0 at every step)",
        ("ledger_providers", "ledger_requesters", "ledger_escrow", "ledger_issuance", "ledger_sum"),
    ),
)


def _round(v: Any) -> Any:
    if isinstance(v, float):
        if not math.isfinite(v):
            return None
        return round(v, 6)
    if isinstance(v, Mapping):
        return {str(k): _round(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_round(x) for x in v]
    return v


def dumps(doc: Mapping[str, Any]) -> str:
    """The canonical text of a report document."""
    return json.dumps(_round(doc), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _plt() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise AgoraError(
            "unavailable", "the report's plots need matplotlib: pip install 'agora[sim]'", retryable=False
        ) from None
    matplotlib.use("Agg", force=True)
    matplotlib.rcParams["svg.hashsalt"] = "agora-sim"
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=80, metadata={"Software": None}, format="png")


def plots(doc: Mapping[str, Any], out: Path) -> list[tuple[str, str]]:
    """Draw every plot of the report into `out`; returns (file name, title) in report order."""
    plt = _plt()
    series = doc["series"]["values"]
    t = series["t_h"]
    files: list[tuple[str, str]] = []
    metrics = doc["metrics"]
    for name, title, keys in PLOTS:
        if not all(k in series for k in keys):
            continue  # a scenario without a compute market has no such series
        fig, ax = plt.subplots(figsize=(7, 3.2))
        for k in keys:
            ys = [float("nan") if y is None else y for y in series[k]]
            ax.plot(t, ys, label=k, linewidth=1.2)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("hours")
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        _save(fig, out / f"{name}.png")
        plt.close(fig)
        files.append((f"{name}.png", title))
    if "inference_requests" in metrics:
        files += _inference_plots(plt, doc, out)
    if "fl_runs" in metrics:
        files += _fl_plots(plt, doc, out)
    if "rejections" not in series:
        return files
    # rejection reasons over time, stacked
    reasons = sorted({r for row in series["rejections"] for r in row})
    fig, ax = plt.subplots(figsize=(7, 3.2))
    bottom = [0.0] * len(t)
    for r in reasons:
        ys = [float(row.get(r, 0)) for row in series["rejections"]]
        ax.bar(t, ys, bottom=bottom, label=r, width=max(t[1] - t[0], 0.01) if len(t) > 1 else 0.5)
        bottom = [a + b for a, b in zip(bottom, ys, strict=True)]
    ax.set_title("Placement rejections by reason", fontsize=10)
    ax.set_xlabel("hours")
    if reasons:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    _save(fig, out / "rejections.png")
    plt.close(fig)
    files.append(("rejections.png", "Placement rejections by reason"))
    # earnings per provider decile
    fig, ax = plt.subplots(figsize=(7, 3.2))
    deciles = metrics["earnings_by_decile"]["value"]
    ax.bar([str(i + 1) for i in range(len(deciles))], deciles)
    ax.set_title("Mean provider earnings per decile (operator viability)", fontsize=10)
    ax.set_xlabel("decile of providers by earnings")
    fig.tight_layout()
    _save(fig, out / "earnings.png")
    plt.close(fig)
    files.append(("earnings.png", "Mean provider earnings per decile"))
    # placement latency: first placements and re-placements side by side
    first, again = metrics["first_placement_latency_s"]["value"], metrics["replacement_latency_s"]["value"]
    shown = ["p50", "p90", "p99", "max"]
    title = "Placement latency (s): arrival to first placement, loss to re-placement"
    groups = {"first placement": [float(first[k]) for k in shown], "re-placement": [float(again[k]) for k in shown]}
    _bars(plt, out, "latency.png", title, shown, groups)
    files.append(("latency.png", "Placement latency"))
    return files


def _bars(plt: Any, out: Path, name: str, title: str, labels: list[str], groups: dict[str, list[float]]) -> None:
    """Grouped bars: one group per label, one bar per key of `groups`."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / max(1, len(groups))
    for i, (key, ys) in enumerate(groups.items()):
        ax.bar([x + i * width for x in range(len(labels))], ys, width=width, label=key)
    ax.set_xticks([x + width * (len(groups) - 1) / 2 for x in range(len(labels))], labels)
    ax.set_title(title, fontsize=10)
    if len(groups) > 1:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    _save(fig, out / name)
    plt.close(fig)


def _over_time(plt: Any, out: Path, name: str, title: str, t: list[float], lines: dict[str, list[Any]]) -> None:
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for k, ys in lines.items():
        ax.plot(t, [float("nan") if y is None else y for y in ys], label=k, linewidth=1.2)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("hours")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    _save(fig, out / name)
    plt.close(fig)


def _inference_plots(plt: Any, doc: Mapping[str, Any], out: Path) -> list[tuple[str, str]]:
    m, series = doc["metrics"], doc["series"]["values"]
    files = []
    title = "Inference requests served and failed per sample"
    keys = ("inference_served", "inference_failed")
    _over_time(plt, out, "inference-requests.png", title, series["t_h"], {k: series[k] for k in keys})
    files.append(("inference-requests.png", title))
    lat = m["inference_latency_s"]["value"]
    strategies = sorted(lat)
    title = "Inference latency per routing strategy (simulated s)"
    groups = {q: [float(lat[s][q]) for s in strategies] for q in ("p50", "p95")}
    _bars(plt, out, "inference-latency.png", title, strategies, groups)
    files.append(("inference-latency.png", title))
    dec = m["inference_earnings_by_decile"]["value"]
    title = "Mean model-provider earnings per decile"
    _bars(plt, out, "inference-earnings.png", title, [str(i + 1) for i in range(len(dec))], {"earnings": dec})
    files.append(("inference-earnings.png", title))
    return files


def _fl_plots(plt: Any, doc: Mapping[str, Any], out: Path) -> list[tuple[str, str]]:
    m, series = doc["metrics"], doc["series"]["values"]
    files = []
    title = "Training rounds closed and runs failed per sample"
    keys = ("fl_rounds", "fl_runs_failed")
    _over_time(plt, out, "fl-rounds.png", title, series["t_h"], {k: series[k] for k in keys})
    files.append(("fl-rounds.png", title))
    up = m["fl_updates"]["value"]
    labels = ["paid", "late", "rejected", "accepted_in_failed_rounds"]
    title = "Training updates: paid and unpaid"
    _bars(
        plt,
        out,
        "fl-updates.png",
        title,
        ["paid", "late", "rejected", "in failed rounds"],
        {"updates": [float(up[k]) for k in labels]},
    )
    files.append(("fl-updates.png", title))
    dec = m["fl_earnings_by_decile"]["value"]
    title = "Mean data-provider earnings per decile"
    _bars(plt, out, "fl-earnings.png", title, [str(i + 1) for i in range(len(dec))], {"earnings": dec})
    files.append(("fl-earnings.png", title))
    return files


def _show(v: Any) -> str:
    if isinstance(v, Mapping):
        return ", ".join(f"{k}: {_show(x)}" for k, x in v.items()) or "-"
    if isinstance(v, list):
        return ", ".join(_show(x) for x in v)
    if isinstance(v, float):
        return f"{v:,.3f}".rstrip("0").rstrip(".") if v != int(v) else f"{int(v):,}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return "-" if v is None else str(v)


def markdown(doc: Mapping[str, Any], files: list[tuple[str, str]]) -> str:
    lines = [
        f"# Simulation report: {doc['scenario']}",
        "",
        f"Seed {doc['seed']}, {doc['duration_s'] / 3600:g} simulated hours"
        + (f", payment mode `{doc['payment']}`" if "jobs_submitted" in doc["metrics"] else "")
        + "".join(f", {k} payment `{v}`" for k, v in sorted(doc.get("payments", {}).items()))
        + ".",
        "",
        "## What ran",
        "",
        "Real code:",
        "",
        *[f"- **{k}**: {v}" for k, v in sorted(doc["real_code"].items())],
        "",
        "Faster path (documented):",
        "",
        *[f"- **{k}**: {v}" for k, v in sorted(doc["faster_path"].items())],
        "",
        "## Metrics",
        "",
        "| metric | value | definition |",
        "|---|---|---|",
    ]
    for name, m in doc["metrics"].items():
        lines.append(f"| {name} | {_show(m['value'])} | {m['definition']} |")
    lines += ["", "## Plots", ""]
    for f, title in files:
        lines += [f"### {title}", "", f"![{title}]({f})", ""]
    return "\n".join(lines)


def write(doc: Mapping[str, Any], out: Path, *, with_plots: bool = True) -> Path:
    """Write `report.json`, the plots and `report.md` into `out` (created)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(dumps(doc), encoding="utf-8")
    files = plots(doc, out) if with_plots else []
    (out / "report.md").write_text(markdown(doc, files), encoding="utf-8")
    return out / "report.json"


def _flat(prefix: str, v: Any, out: dict[str, Any]) -> None:
    if isinstance(v, Mapping):
        for k, x in v.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), x, out)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            _flat(f"{prefix}[{i}]", x, out)
    else:
        out[prefix] = v


# How `compare` shows a metric to a reader: its unit (by name; inside a distribution, `n` is a count) and the
# fixed number of decimals of that unit. Money is in minor units, times in simulated seconds.
UNIT_DECIMALS = {"count": 0, "minor units": 0, "price": 2, "mean": 2, "s": 1, "share": 3, "trust": 3}
_SHARES = ("utilisation_mean", "providers_earning_nothing", "inference_fallback_rate", "fl_straggler_share")
_MONEY = (
    "requester_spend_total",
    "requester_spend_mean",
    "refunds_total",
    "unpaid_work_total",
    "escrow_held_max",
    "earnings_by_decile",
    "ledger_sum_max_abs",
    "inference_spend_per_requester",
    "inference_earnings_by_decile",
    "fl_spend_per_round",
    "fl_spend_total",
    "fl_earnings_by_decile",
)
_PRICES = ("price_per_core_hour_mean", "inference_price_per_1k_tokens")


def unit(metric: str) -> str:
    """The unit of a flattened metric name (`placement_latency_s.p90`, `earnings_by_decile[3]`, `declines.busy`)."""
    base = metric.split(".", 1)[0].split("[", 1)[0]
    if metric.endswith(".n"):
        return "count"
    if base in _MONEY:
        return "minor units"
    if base in _PRICES:
        return "price"
    if base in _SHARES:
        return "share"
    if base.endswith("trust_end"):
        return "trust"
    if base.endswith("_s"):
        return "s"
    if base == "candidates_per_placement":
        return "mean"
    return "count"


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def show(v: Any, unit_: str, *, signed: bool = False) -> str:
    """A value in its unit's format: thousands separators, the unit's fixed decimals (`-` for none)."""
    if v is None:
        return "-"
    if not _number(v):
        return str(v)
    return f"{v:{'+' if signed else ''},.{UNIT_DECIMALS[unit_]}f}"


@dataclass(frozen=True)
class Compared:
    """One metric of two reports: the raw values and, for numbers, the change `b - a` and its relative size."""

    metric: str
    unit: str
    a: Any
    b: Any

    @property
    def equal(self) -> bool:
        return bool(self.a == self.b)

    @property
    def change(self) -> float | None:
        return self.b - self.a if _number(self.a) and _number(self.b) else None

    @property
    def change_pct(self) -> float | None:
        d = self.change
        return None if d is None or not self.a else d / abs(self.a) * 100

    def cells(self) -> dict[str, str]:
        """The row as a reader sees it: `=` when equal, `≠` when values that are not numbers differ."""
        d, pct = self.change, self.change_pct
        if self.equal:
            change, rel = "=", ""
        elif d is None:
            change, rel = "≠", ""
        else:
            change, rel = show(d, self.unit, signed=True), "" if pct is None else f"{pct:+,.1f}%"
        a, b = show(self.a, self.unit), show(self.b, self.unit)
        return {"metric": self.metric, "unit": self.unit, "a": a, "b": b, "change": change, "change_pct": rel}

    def raw(self) -> dict[str, Any]:
        """The row for `--json`: the raw numbers."""
        return {
            "metric": self.metric,
            "unit": self.unit,
            "a": self.a,
            "b": self.b,
            "change": self.change,
            "change_pct": self.change_pct,
        }


def compare(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[Compared]:
    """Every metric of two reports side by side, flattened (`placement_latency_s.p90`), sorted by name."""
    fa: dict[str, Any] = {}
    fb: dict[str, Any] = {}
    for doc, flat in ((a, fa), (b, fb)):
        try:
            metrics = doc["metrics"]
            items = list(metrics.items())
        except (KeyError, TypeError, AttributeError):
            raise AgoraError("sim_report_invalid", "not a simulator report (it has no metrics)") from None
        for name, m in items:
            _flat(name, m.get("value") if isinstance(m, Mapping) else m, flat)
    return [Compared(n, unit(n), fa.get(n), fb.get(n)) for n in sorted(set(fa) | set(fb))]


__all__ = ["Compared", "compare", "dumps", "markdown", "plots", "show", "unit", "write"]
