from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from agora.telemetry import RPC_BUCKETS, Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse what /metrics would serve, as {(sample name, sorted labels): value}."""
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counters_and_gauges_render_with_labels() -> None:
    m = Metrics()
    for _ in range(3):
        m.count_in("/agora/job/bid")
    m.count_in("/agora/alloc/start")
    m.count_out("/agora/job/bid")
    m.count_reject("ucan_expired")
    m.count_reject("ucan_expired")
    m.set_peers(4)
    m.set_allocations(2)
    got = samples(m)
    assert got[("agora_messages_in_total", (("kind", "/agora/job/bid"),))] == 3
    assert got[("agora_messages_in_total", (("kind", "/agora/alloc/start"),))] == 1
    assert got[("agora_messages_out_total", (("kind", "/agora/job/bid"),))] == 1
    assert got[("agora_rejects_total", (("code", "ucan_expired"),))] == 2
    assert got[("agora_peers", ())] == 4
    assert got[("agora_allocations", ())] == 2
    m.set_peers(1)
    assert samples(m)[("agora_peers", ())] == 1


def test_rpc_latency_histogram_buckets() -> None:
    m = Metrics()
    m.observe_rpc("/agora/job/bid", 0.0003)
    m.observe_rpc("/agora/job/bid", 0.2)
    m.observe_rpc("/agora/job/bid", -1.0)  # a clock hiccup counts as 0, never as a negative sum
    got = samples(m)
    label = ("command", "/agora/job/bid")
    assert got[("agora_rpc_latency_seconds_count", (label,))] == 3
    assert abs(got[("agora_rpc_latency_seconds_sum", (label,))] - 0.2003) < 1e-9
    assert got[("agora_rpc_latency_seconds_bucket", tuple(sorted([label, ("le", "0.0001")])))] == 1
    assert got[("agora_rpc_latency_seconds_bucket", tuple(sorted([label, ("le", "0.0005")])))] == 2
    assert got[("agora_rpc_latency_seconds_bucket", tuple(sorted([label, ("le", "0.25")])))] == 3
    assert RPC_BUCKETS[0] <= 0.0001 and RPC_BUCKETS[-1] >= 10


def test_rpc_timer_observes_also_on_failure() -> None:
    m = Metrics()
    with m.rpc_timer("/agora/ping"):
        pass
    try:
        with m.rpc_timer("/agora/ping"):
            raise TimeoutError
    except TimeoutError:
        pass
    assert samples(m)[("agora_rpc_latency_seconds_count", (("command", "/agora/ping"),))] == 2


def test_two_instances_are_independent() -> None:
    a, b = Metrics(), Metrics()
    a.count_in("x")
    a.count_in("x")
    b.count_in("x")
    b.set_peers(9)
    assert samples(a)[("agora_messages_in_total", (("kind", "x"),))] == 2
    assert samples(b)[("agora_messages_in_total", (("kind", "x"),))] == 1
    assert samples(a)[("agora_peers", ())] == 0
    assert samples(b)[("agora_peers", ())] == 9


def test_label_values_are_capped() -> None:
    m = Metrics(max_label_values=3)
    for i in range(10):
        m.count_in(f"kind-{i}")
    m.count_in("kind-0")
    got = samples(m)
    kinds = {labels[0][1]: v for (name, labels), v in got.items() if name == "agora_messages_in_total"}
    assert kinds == {"kind-0": 2, "kind-1": 1, "kind-2": 1, "other": 7}


def test_namespace() -> None:
    m = Metrics(namespace="hub")
    m.count_out("x")
    assert ("hub_messages_out_total", (("kind", "x"),)) in samples(m)


def test_marketplace_metrics_and_gauges_read_at_scrape() -> None:
    m = Metrics()
    m.count_contract_event("created")
    m.count_contract_event("escrow_locked")
    m.set_escrow_locked(1)
    level = [0.25]
    m.gauge_fn("hub_connected", "link", lambda: level[0])
    got = samples(m)
    assert got[("agora_contract_events_total", (("event", "created"),))] == 1
    assert got[("agora_escrow_locked_contracts", ())] == 1
    assert got[("agora_hub_connected", ())] == 0.25
    level[0] = 1.0
    assert samples(m)[("agora_hub_connected", ())] == 1.0  # read anew at each scrape


def test_a_counter_read_at_scrape_is_a_counter_and_not_read_when_registered() -> None:
    m = Metrics()
    total: list[float] = []  # the source does not exist yet: registering must not read it
    m.counter_fn("inference_spend", "spent", lambda: total[0])
    total.append(5.0)
    body = m.render()[0].decode()
    assert "# TYPE agora_inference_spend_total counter" in body
    assert samples(m)[("agora_inference_spend_total", ())] == 5.0
    total[0] = 12.0
    assert samples(m)[("agora_inference_spend_total", ())] == 12.0
