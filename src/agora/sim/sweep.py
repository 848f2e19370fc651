"""Sweeps: a scenario's variants (one field set to each of a range of values) run on a local process pool,
or on an existing Dask cluster (`dask_scheduler`: its address, or a `distributed.Client`). No home-made
cluster: Dask distributed is the engine when a sweep outgrows one machine (optional: `agora[dask]`).

`--param providers.price=1..10` sweeps the integers 1 to 10; `--param payment.mode=pay_before,pay_after`
a list (each value read as YAML: numbers, strings, lists). Several `--param`s sweep their product.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import yaml

from agora.errors import AgoraError
from agora.sim.run import simulate
from agora.sim.scenario import parse, with_param

_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")
MAX_VARIANTS = 1000


def parse_param(text: str) -> tuple[str, list[Any]]:
    """`path=1..10` or `path=a,b,c` -> (path, values)."""
    path, sep, values = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", path.strip()):
        raise AgoraError("invalid_argument", f"--param {text!r}: expected FIELD.PATH=LOW..HIGH or FIELD.PATH=A,B,C")
    m = _RANGE.match(values.strip())
    if m:
        lo, hi = int(m.group(1)), int(m.group(2))
        if hi < lo or hi - lo >= MAX_VARIANTS:
            raise AgoraError("invalid_argument", f"--param {text!r}: a range LOW..HIGH of at most {MAX_VARIANTS}")
        return path.strip(), list(range(lo, hi + 1))
    out = []
    for v in values.split(","):
        try:
            out.append(yaml.safe_load(v))
        except yaml.YAMLError:
            raise AgoraError("invalid_argument", f"--param {text!r}: {v!r} is not a value") from None
    if not out or any(v is None for v in out):
        raise AgoraError("invalid_argument", f"--param {text!r}: empty value")
    return path.strip(), out


def variants(doc: Mapping[str, Any], params: Sequence[str]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(the values set, the variant's scenario document) for every combination; each is validated now."""
    parsed = [parse_param(p) for p in params]
    combos = list(itertools.product(*[vals for _, vals in parsed]))
    if len(combos) > MAX_VARIANTS:
        raise AgoraError("invalid_argument", f"the sweep has {len(combos)} variants, at most {MAX_VARIANTS}")
    out = []
    for combo in combos:
        variant: dict[str, Any] = dict(doc)
        setting = {}
        for (path, _), value in zip(parsed, combo, strict=True):
            variant = with_param(variant, path, value)
            setting[path] = value
        parse(variant)  # a bad value fails before anything runs, with its field path
        out.append((setting, variant))
    return out


def run_variant(doc: Mapping[str, Any]) -> dict[str, Any]:
    """One variant, start to end (what a pool process or a Dask worker runs)."""
    return simulate(parse(doc))


def sweep(
    doc: Mapping[str, Any], params: Sequence[str], *, workers: int | None = None, dask_scheduler: Any = None
) -> list[dict[str, Any]]:
    """Every variant's report document, in variant order, with `"sweep": {path: value}` added."""
    todo = variants(doc, params)
    docs = [v for _, v in todo]
    if dask_scheduler is not None:
        results = _on_dask(docs, dask_scheduler)
    elif workers == 1 or len(docs) == 1:
        results = [run_variant(d) for d in docs]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(run_variant, docs))
    return [{**r, "sweep": setting} for (setting, _), r in zip(todo, results, strict=True)]


def _on_dask(docs: list[dict[str, Any]], scheduler: Any) -> list[dict[str, Any]]:
    try:
        from distributed import Client
    except ImportError:
        raise AgoraError(
            "unavailable", "--dask needs Dask distributed: pip install 'agora[dask]'", retryable=False
        ) from None
    if isinstance(scheduler, Client):
        return _gather(scheduler, docs)
    with Client(scheduler) as client:  # type: ignore[no-untyped-call]
        return _gather(client, docs)


def _gather(client: Any, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list(client.gather(client.map(run_variant, docs, pure=False)))


def table(results: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One row per variant: its setting and the chosen metrics' values."""
    rows = []
    for r in results:
        row: dict[str, Any] = dict(r["sweep"])
        for m in metrics:
            row[m] = r["metrics"][m]["value"] if m in r["metrics"] else None
        rows.append(row)
    return rows


__all__ = ["parse_param", "run_variant", "sweep", "table", "variants"]
