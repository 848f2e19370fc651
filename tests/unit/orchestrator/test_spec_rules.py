"""The requester and the provider judge a job spec by the same rules (real provider, memory transport)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.unit.compute import wat
from tests.unit.compute.harness import Provider, Requester, grant, leftovers
from tests.unit.orchestrator.test_runner import job, run


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
    assert Path(unit["outputs"][0]["local_path"]).read_bytes() == b"served\n"
    assert leftovers(provider) == []
