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
from pathlib import Path
from typing import Any

from agora.errors import AgoraError

PLOTS = (
    ("utilisation", "Utilisation (cores held / online cores)", ("utilisation",)),
    ("queue", "Queue length and jobs past their deadline", ("queue", "pending_past_deadline")),
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
    # placement latency
    fig, ax = plt.subplots(figsize=(7, 3.2))
    lat = metrics["placement_latency_s"]["value"]
    shown = [k for k in ("p50", "p90", "p99", "max") if k in lat]
    ax.bar(shown, [lat[k] for k in shown])
    ax.set_title("Placement latency (s from arrival to placement)", fontsize=10)
    fig.tight_layout()
    _save(fig, out / "latency.png")
    plt.close(fig)
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


def compare(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any, str]]:
    """Every metric of two reports side by side: (name, a, b, change); a change is `b - a` (and %) for
    numbers, `=` when equal, `≠` otherwise."""
    fa: dict[str, Any] = {}
    fb: dict[str, Any] = {}
    for doc, flat in ((a, fa), (b, fb)):
        try:
            metrics = doc["metrics"]
        except (KeyError, TypeError):
            raise AgoraError("invalid_argument", "not a simulator report (no metrics)") from None
        for name, m in metrics.items():
            _flat(name, m.get("value") if isinstance(m, Mapping) else m, flat)
    rows = []
    for name in sorted(set(fa) | set(fb)):
        x, y = fa.get(name), fb.get(name)
        if x == y:
            change = "="
        elif isinstance(x, int | float) and isinstance(y, int | float) and not isinstance(x, bool):
            d = y - x
            pct = f" ({d / x:+.1%})" if x else ""
            change = f"{d:+,.6g}{pct}"
        else:
            change = "≠"
        rows.append((name, x, y, change))
    return rows


__all__ = ["compare", "dumps", "markdown", "plots", "write"]
