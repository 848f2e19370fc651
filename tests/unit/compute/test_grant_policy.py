"""A grant with a policy constrains what is started; the calls that follow on an allocation (status, logs,
fetch, cancel) are authorized by its ownership. The README's own example, end to end."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agora.compute.grants import starts_only
from agora.errors import AgoraError
from tests.unit.compute import wat
from tests.unit.compute.harness import Provider, Requester, grant, leftovers
from tests.unit.compute.test_allocations import START, call, task

WASM_ONLY = [["==", ".task.engine", "wasm"]]  # compute/README.md


async def test_the_documented_wasm_only_grant_runs_a_wasm_job_to_its_verified_result(
    provider: Provider, requester: Requester, tmp_path: Path
) -> None:
    await grant(provider, requester, policy=WASM_ONLY)
    (tmp_path / "hello.wasm").write_bytes(wat.hello(content="42\n"))
    spec = {
        "name": "policy",
        "tasks": [{"name": "t", "module": "hello.wasm", "resources": {"cpu": 1, "memory": "64Mi"}, "timeout": 30}],
    }
    summary = await requester.runner.submit(spec, node=provider.did, base_dirs=[tmp_path])
    doc = await requester.runner.wait(summary["id"], 30)
    assert doc["state"] == "completed", doc.get("error")
    [unit] = doc["units"]
    [out] = unit["outputs"]
    fetched = await asyncio.to_thread(Path(out["local_path"]).read_bytes)
    assert fetched == b"42\n"  # fetched from the provider and verified
    logs = await requester.runner.logs(summary["id"])
    assert any("hello from wat" in str(line) for line in logs["lines"]), logs
    assert leftovers(provider) == []


async def test_the_policy_still_refuses_a_start_it_does_not_allow(provider: Provider, requester: Requester) -> None:
    await grant(provider, requester, policy=WASM_ONLY)
    native = task(engine="process", command=["true"], module=None)
    with pytest.raises(AgoraError) as err:
        await call(requester, provider, START, {"job": "unit", "job_id": "job-1", "task": native})
    assert err.value.code == "ucan_policy_violation"
    for bad_task in (None, "not a task"):  # a start must carry a task the policy can see
        with pytest.raises(AgoraError) as err:
            await call(requester, provider, START, {"job": "unit", "job_id": "job-1", "task": bad_task})
        assert err.value.code in ("ucan_policy_violation", "job_spec_invalid"), err.value
    assert provider.manager.running() == []


def test_only_a_grant_covering_more_than_start_is_rewritten() -> None:
    assert starts_only("/agora/alloc/start", WASM_ONLY) == WASM_ONLY
    assert starts_only("/agora/node", WASM_ONLY) == WASM_ONLY
    assert starts_only("/agora/alloc", []) == []
    assert starts_only("/agora/alloc", WASM_ONLY) == [["or", [["==", ".task?", None], ["and", WASM_ONLY]]]]
