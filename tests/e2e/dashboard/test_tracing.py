"""OpenTelemetry traces (opt-in) follow a job across nodes: with an in-memory exporter, the job submitted on
the buyer is one trace whose spans include the provider's handling of the bid request, the award and the
start, each a child carried in the invocation's `meta.trace`; with tracing off nothing is added to an
invocation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agora.api import create_app
from agora.node.compute import compute_of
from agora.telemetry import tracing
from tests.integration.node.conftest import NodeFactory
from tests.support import require
from tests.unit.compute import wat

pytestmark = pytest.mark.integration

DEADLINE = 30.0


@pytest.fixture
def spans() -> Iterator[Any]:
    try:
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        require(False, "opentelemetry-sdk not installed (it is in the dev extra: pip install -e .[dev])")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.configure(provider)
    try:
        yield exporter
    finally:
        tracing.configure(None)
        provider.shutdown()


async def test_one_trace_spans_a_job_across_nodes(make_node: NodeFactory, spans: Any, tmp_path: Path) -> None:
    seller = await make_node("seller", hub=True, sell=True)
    assert seller.hub is not None
    buyer = await make_node("buyer", hubs=[seller.hub.url], settlement="none")
    index = compute_of(buyer).market_index
    assert index is not None
    async with index.watch() as w:  # the buyer sees the seller's ad before it asks the market
        if not any(a.provider == seller.did for a in await index.ads()):
            async for ad in w:
                if ad.provider == seller.did:
                    break
    module = tmp_path / "hello.wasm"
    module.write_bytes(wat.hello())
    task = {"name": "hello", "module": str(module), "resources": {"cpu": 0.5, "memory": "64Mi"}}
    transport = httpx.ASGITransport(app=create_app(buyer), client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as api:
        made = await api.post("/jobs", json={"spec": {"name": "traced", "tasks": [task]}})
        assert made.status_code == 201, made.text
    job = await compute_of(buyer).runner.wait(made.json()["id"], DEADLINE)
    assert job["state"] == "completed", job

    finished = spans.get_finished_spans()
    [root] = [s for s in finished if s.name == "job.submit"]
    trace_id = root.context.trace_id
    in_trace = [s for s in finished if s.context.trace_id == trace_id]
    served_by_seller = {s.name for s in in_trace if s.attributes.get("node") == seller.did}
    assert {"/agora/market/bid_request", "/agora/market/award", "/agora/alloc/start"} <= served_by_seller, sorted(
        served_by_seller
    )
    by_id = {s.context.span_id: s for s in in_trace}
    for s in in_trace:  # every span hangs off the job's root
        node = s
        for _ in range(50):
            if node.parent is None:
                break
            node = by_id[node.parent.span_id]
        assert node is root, s.name


def test_tracing_off_adds_nothing() -> None:
    assert not tracing.enabled() and tracing.carrier() is None
    with tracing.span("x") as s:
        assert s is None
