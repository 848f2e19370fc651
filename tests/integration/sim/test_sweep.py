"""Sweeps run on a local process pool and on a Dask cluster (a LocalCluster on loopback TCP)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import distributed  # in the dev extra: the sweep's cluster engine must be tested in CI
import pytest

from agora.sim.sweep import sweep

pytestmark = pytest.mark.integration

DOC: dict[str, Any] = {
    "name": "sweep",
    "seed": 11,
    "duration": "2h",
    "sample_every": "30m",
    "providers": {"count": 15, "price": 3},
    "requesters": {"count": 3, "arrivals": {"process": "poisson", "rate_per_hour": 60}},
}


def _spend(results: list[dict[str, Any]]) -> list[int]:
    return [r["metrics"]["requester_spend_total"]["value"] for r in results]


def test_sweep_on_a_local_process_pool_prices_move_spend() -> None:
    results = sweep(DOC, ["providers.price=1..3"], workers=2)
    assert [r["sweep"] for r in results] == [{"providers.price": v} for v in (1, 2, 3)]
    spend = _spend(results)
    assert spend[0] < spend[1] < spend[2]


@pytest.fixture(scope="module")
def dask_client() -> Iterator[distributed.Client]:
    """One loopback LocalCluster for the module's sweeps (two workers, threads, TCP on 127.0.0.1)."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=False,
            protocol="tcp",
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        yield client


@pytest.mark.timeout(180)
def test_sweep_on_a_dask_local_cluster_matches_the_local_run(dask_client: distributed.Client) -> None:
    on_dask = sweep(DOC, ["payment.mode=pay_before,pay_after"], dask_scheduler=dask_client)
    local = sweep(DOC, ["payment.mode=pay_before,pay_after"], workers=1)
    assert [r["sweep"] for r in on_dask] == [r["sweep"] for r in local]
    assert [r["metrics"] for r in on_dask] == [r["metrics"] for r in local]


@pytest.mark.timeout(180)
def test_an_inference_strategy_sweep_on_a_dask_local_cluster(dask_client: distributed.Client) -> None:
    doc: dict[str, Any] = {
        "name": "sweep-inference",
        "seed": 12,
        "duration": "30m",
        "sample_every": "10m",
        "providers": {"count": 0},
        "requesters": {"arrivals": {"rate_per_hour": 0}},
        "inference": {"providers": {"count": 5}, "requesters": {"count": 3, "arrivals": {"rate_per_hour": 120}}},
    }
    results = sweep(doc, ["inference.strategy=cheapest,fastest"], dask_scheduler=dask_client)
    assert [r["sweep"] for r in results] == [{"inference.strategy": "cheapest"}, {"inference.strategy": "fastest"}]
    latency = [r["metrics"]["inference_latency_s"]["value"] for r in results]
    assert [list(lat) for lat in latency] == [["cheapest"], ["fastest"]]
    assert all(r["metrics"]["inference_served"]["value"] > 0 for r in results)
