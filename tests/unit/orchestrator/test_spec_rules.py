"""The requester and the provider judge a job spec by the same rules (real provider, memory transport)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.unit.compute import wat
from tests.unit.compute.harness import Provider, Requester, grant, leftovers
from tests.unit.orchestrator.test_runner import job, read, run


async def test_a_service_job_with_no_timeout_runs_on_the_provider(
    provider: Provider, requester: Requester, tmp_path: Path
) -> None:
    await grant(provider, requester)
    spec: dict[str, Any] = job(tmp_path, {"svc": wat.hello(content="served\n")}, type="service")
    spec["tasks"][0]["timeout"] = None  # docs/jobspec.md: services may write null (no timeout)
    doc = await run(requester, spec, provider.did, tmp_path)
    assert doc["state"] == "completed", doc["error"]
    [unit] = doc["units"]
    alloc = await provider.store.get("allocations", unit["alloc_id"])
    assert alloc is not None and alloc["state"] == "completed"
    assert read(unit["outputs"][0]["local_path"]) == b"served\n"
    assert leftovers(provider) == []


async def test_the_provider_refuses_a_job_whose_constraints_it_does_not_meet(
    provider: Provider, requester: Requester, tmp_path: Path
) -> None:
    await grant(provider, requester)
    constraints = [
        {"key": "arch", "op": "in", "value": ["riscv64"]},  # the provider is x86_64
        {"key": "labels.tier", "op": "==", "value": "gpu"},  # it has no such label
        {"key": "cpu_millis", "op": ">=", "value": 1000},  # met
    ]
    spec = job(tmp_path, {"hello": wat.hello()}, constraints=constraints, retry={"attempts": 2, "backoff": 1})
    doc = await run(requester, spec, provider.did, tmp_path)
    assert doc["state"] == "failed"
    err = doc["error"]
    assert err["code"] == "constraints_unmet" and err["task"] == "hello"
    assert [r["dimension"] for r in err["details"]["reasons"]] == ["arch", "labels.tier"]
    assert "arch in [riscv64], has x86_64" in err["message"]
    [unit] = doc["units"]
    assert unit["attempts"] == 1 and unit["alloc_id"] is None  # not retried: the node will not change
    assert await provider.store.query("allocations", None) == []
    assert leftovers(provider) == []


async def test_retry_on_task_failed_runs_a_failed_task_again(
    provider: Provider, requester: Requester, tmp_path: Path
) -> None:
    await grant(provider, requester)
    on_failure = job(tmp_path, {"bad": wat.exit_with(3)}, retry={"attempts": 1, "backoff": 0, "on": ["task_failed"]})
    doc = await run(requester, on_failure, provider.did, tmp_path)
    assert doc["state"] == "failed" and doc["error"]["code"] == "task_failed"
    assert doc["units"][0]["attempts"] == 2  # retried once, as Kubernetes' backoffLimit would

    by_default = job(tmp_path, {"bad": wat.exit_with(3)}, retry={"attempts": 1, "backoff": 0})
    doc = await run(requester, by_default, provider.did, tmp_path)
    assert doc["state"] == "failed" and doc["units"][0]["attempts"] == 1  # default on: [node_lost, transient]
    assert leftovers(provider) == []
