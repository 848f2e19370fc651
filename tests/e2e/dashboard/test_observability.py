"""deploy/grafana and deploy/prometheus against a running node: the dashboards and alert rules are
well-formed, and every metric they query is one the node's /metrics exports (none is made up); the node's
marketplace gauges follow its contracts."""

from __future__ import annotations

import asyncio
import json
import math
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from agora.api import ApiServer, create_app
from agora.models.contract import Contract
from agora.node import Node
from agora.node.compute import compute_of
from tests.integration.node.conftest import NodeFactory
from tests.support import ROOT, require_binary
from tests.unit.compute import wat

pytestmark = pytest.mark.integration

DEPLOY = ROOT / "deploy"
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")
PROMQL_WORDS = {"sum", "by", "rate", "increase", "histogram_quantile", "unless", "on", "and", "or", "le"}


def _exported(body: str) -> set[str]:
    """Every series name the node serves (a labelled family with no child yet still counts: its HELP)."""
    names = set()
    for family in text_string_to_metric_families(body):
        names.add(family.name)
        names.update(s.name for s in family.samples)
    names.update(re.findall(r"^# HELP (\S+)", body, flags=re.M))
    return names


def _metric_names(expr: str) -> set[str]:
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    return {w for w in re.findall(r"\b(agora_[a-z0-9_]+)\b", expr)}


def _known(name: str, exported: set[str]) -> bool:
    return name in exported or any(name.endswith(s) and name.removesuffix(s) in exported for s in SUFFIXES)


def _unexported(exprs: list[str], exported: set[str]) -> list[str]:
    """The agora metrics the expressions query that the node does not export."""
    return sorted(n for n in set().union(*(_metric_names(e) for e in exprs)) if not _known(n, exported))


def _dashboards() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((DEPLOY / "grafana").glob("*.json"))}


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((DEPLOY / "prometheus" / "agora-alerts.yml").read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def test_the_files_are_well_formed() -> None:
    boards = _dashboards()
    assert {"node", "hub", "market", "ledger", "training", "inference"} <= set(boards)
    uids = [b["uid"] for b in boards.values()]
    assert len(uids) == len(set(uids))
    for name, board in boards.items():
        assert board["title"] and board["panels"], name
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), name
        for p in board["panels"]:
            assert p["title"] and p["targets"] and all(t["expr"] and t["refId"] for t in p["targets"]), (name, p)
    rules = _rules()
    alerts = {r["alert"] for r in rules}
    assert {
        "AgoraHubUnreachable",
        "AgoraRejectsSpiking",
        "AgoraEscrowStuck",
        "AgoraReplayCacheNearFull",
        "AgoraProviderTrustCollapse",
        "AgoraJobsPendingPastDeadline",
    } <= alerts
    for r in rules:
        assert r["expr"] and r["labels"]["severity"] in ("warning", "critical"), r
        assert r["annotations"]["summary"] and re.fullmatch(r"\d+[smh]", r["for"]), r


async def test_every_queried_metric_is_exported_by_a_node(make_node: NodeFactory) -> None:
    node: Node = await make_node("hub", hub=True)
    server = ApiServer(node, port=0)  # scraped over HTTP like Prometheus does
    url = await server.start()
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as api:
            scraped = await api.get("/metrics")
    finally:
        await server.stop()
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    body = scraped.text
    exported = _exported(body)
    exprs = [t["expr"] for b in _dashboards().values() for p in b["panels"] for t in p["targets"]]
    exprs += [r["expr"] for r in _rules()]
    queried = set().union(*(_metric_names(e) for e in exprs))
    assert queried, "the files query no agora metric"
    missing = _unexported(exprs, exported)
    assert missing == [], f"queried but not exported: {missing}"
    # the check is not vacuous: a panel querying a metric the node does not export is named
    made_up = 'sum(rate(agora_made_up_total{code="x"}[5m])) / agora_hub_connected'
    assert _unexported([*exprs, made_up], exported) == ["agora_made_up_total"]
    families = {f.name: f for f in text_string_to_metric_families(body)}
    assert families["agora_hub_connected"].samples[0].value == 1.0  # a hub node is linked to itself
    assert families["agora_replay_cache_capacity"].samples[0].value > 0
    assert families["agora_provider_trust_min"].samples[0].value == 1.0  # no evidence about anybody yet
    assert families["agora_jobs_pending_past_deadline"].samples[0].value == 0.0
    assert families["agora_training_runs_active"].samples[0].value == 0.0  # read through the attached feature
    assert math.isnan(families["agora_training_last_accuracy"].samples[0].value)  # no run: no accuracy
    assert families["agora_inference_spend"].samples[0].value == 0.0  # the counter agora_inference_spend_total


def _module(folder: Path) -> Path:
    path = folder / "hello.wasm"
    path.write_bytes(wat.hello(content="waits\n"))
    return path


async def test_a_job_waiting_past_its_deadline_is_counted(make_node: NodeFactory, tmp_path: Path) -> None:
    node: Node = await make_node("hub", hub=True)  # nobody sells: a market job waits in the queue
    transport = httpx.ASGITransport(app=create_app(node), client=("127.0.0.1", 40000))
    spec = {
        "name": "waits",
        "tasks": [
            {
                "name": "hello",
                "engine": "wasm",
                "module": str(_module(tmp_path)),
                "resources": {"cpu": "500m", "memory": "64Mi", "disk": "16Mi"},
                "timeout": 30,
            }
        ],
        "deadline": 600,
    }
    runner = compute_of(node).runner
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as api:
        made = await api.post("/jobs", json={"spec": spec})
        assert made.status_code == 201, made.text
        job_id = made.json()["id"]
        async with asyncio.timeout(30):  # bounded wait for the job to queue (no provider: it must)
            for _ in range(1500):
                if (await api.get(f"/jobs/{job_id}")).json()["state"] == "pending":
                    break
                await asyncio.sleep(0.02)
        body = (await api.get("/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(body)}
    assert families["agora_jobs_placing"].samples[0].value == 1.0
    assert families["agora_jobs_pending_past_deadline"].samples[0].value == 0.0  # its deadline is ahead
    now = node.clock.now()
    assert runner.placing(now) == (1, 0)
    assert runner.placing(now + 601) == (1, 1)  # what the gauge reads once the deadline has passed


async def test_contract_events_move_the_marketplace_metrics(make_node: NodeFactory) -> None:
    node: Node = await make_node("hub", hub=True)
    book = compute_of(node).contracts
    contract = Contract(
        contract_id="contract-metrics",
        requester=node.did,
        provider=node.did,
        job_id="job-1",
        unit="t",
        price=10,
        escrow_amount=10,
        payment_mode="pay_after",
        terms={},
    )
    await book.create(contract, actor=node.did)
    await book.record("contract-metrics", "escrow_locked", actor=node.did)

    def value(name: str, **labels: str) -> float:
        body = node.metrics.render()[0].decode()
        for f in text_string_to_metric_families(body):
            for s in f.samples:
                if s.name == name and s.labels == labels:
                    return float(s.value)
        return 0.0

    assert value("agora_contract_events_total", event="created") == 1
    assert value("agora_escrow_locked_contracts") == 1
    await book.record("contract-metrics", "refunded", actor=node.did)
    assert value("agora_escrow_locked_contracts") == 0
    assert value("agora_contract_events_total", event="refunded") == 1


RULES = DEPLOY / "prometheus" / "agora-alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "agora-alerts.test.yml"


def _promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    tool = require_binary("promtool", "the Debian package prometheus")
    return subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_promtool_accepts_the_alert_rules() -> None:
    done = _promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in done.stdout


def test_promtool_refuses_a_broken_rule(tmp_path: Path) -> None:
    """The check above can fail: a rule whose expression does not parse is refused."""
    broken = RULES.read_text().replace("agora_provider_trust_min < 0.2", "agora_provider_trust_min < < 0.2")
    assert broken != RULES.read_text()
    (tmp_path / "rules.yml").write_text(broken)
    done = _promtool("check", "rules", str(tmp_path / "rules.yml"))
    assert done.returncode != 0 and "AgoraProviderTrustCollapse" in done.stdout + done.stderr


def test_the_alert_rules_fire_on_the_series_they_describe() -> None:
    """`promtool test rules`: series in, alerts out (agora-alerts.test.yml): escrow stuck, trust collapse and
    hub unreachable fire where they should, for the right instance, and not before their `for:`."""
    doc = yaml.safe_load(RULE_TESTS.read_text())
    firing = {a["alertname"] for t in doc["tests"] for a in t["alert_rule_test"] if a["exp_alerts"]}
    assert {"AgoraEscrowStuck", "AgoraProviderTrustCollapse", "AgoraHubUnreachable"} <= firing
    done = _promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_deploy_is_documented() -> None:
    doc = (ROOT / "docs" / "observability.md").read_text()
    for path in [*(DEPLOY / "grafana").glob("*.json"), RULES, RULE_TESTS]:
        assert str(Path(path).relative_to(ROOT)) in doc


def test_the_screenshots_are_linked_from_the_readme() -> None:
    """docs/img holds the dashboard's main pages (taken by test_browser.py): each is shown in the README,
    and the README shows no image that is missing."""
    readme = (ROOT / "README.md").read_text()
    linked = set(re.findall(r"\]\((docs/img/[^)]+\.png)\)", readme))
    shots = {str(p.relative_to(ROOT)) for p in (ROOT / "docs" / "img").glob("*.png")}
    assert {"docs/img/dashboard-market.png", "docs/img/dashboard-contract.png"} <= shots
    assert linked == shots
