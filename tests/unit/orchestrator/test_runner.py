"""The requester's JobRunner against a real provider (memory transport, real wasm executor)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Any, cast

import pytest

from agora.actor import CallContext, behavior
from agora.clock import SYSTEM_CLOCK
from agora.compute import AllocationManager
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.models.capability import Capability
from agora.orchestrator import JobRunner, RunnerSettings
from agora.store import MemoryStore
from agora.transport import MemoryNetwork
from agora.wire import UsageReceipt
from tests.unit.compute import wat
from tests.unit.compute.harness import Provider, Requester, grant, leftovers, make_provider


def read(path: str | Path) -> bytes:
    return Path(path).read_bytes()


def job(tmp: Path, modules: dict[str, bytes], **extra: Any) -> dict[str, Any]:
    tasks = []
    for name, module in modules.items():
        (tmp / f"{name}.wasm").write_bytes(module)
        tasks.append(
            {
                "name": name,
                "module": f"{name}.wasm",
                "resources": {"cpu": 1, "memory": "64Mi", "disk": "16Mi"},
                "timeout": 30,
            }
        )
    spec: dict[str, Any] = {"name": "unit-job", "tasks": tasks}
    spec.update(extra)
    return spec


async def run(
    req: Requester, spec: dict[str, Any], node: str | None, base: Path, timeout: float = 20
) -> dict[str, Any]:
    summary = await req.runner.submit(spec, node=node, base_dirs=[base])
    doc = await req.runner.wait(summary["id"], timeout)
    assert doc["state"] in ("completed", "failed", "cancelled"), doc
    return doc


async def test_a_job_runs_on_the_chosen_node_and_its_outputs_come_back_verified(
    provider: Provider, requester: Requester, tmp_path: Path
) -> None:
    await grant(provider, requester)
    doc = await run(requester, job(tmp_path, {"hello": wat.hello(content="result\n")}), provider.did, tmp_path)
    assert doc["state"] == "completed", doc["error"]
    assert [h["state"] for h in doc["history"]] == ["submitted", "running", "completed"]
    [unit] = doc["units"]
    assert unit["state"] == "completed" and unit["attempts"] == 1 and unit["node"] == provider.did
    receipt = UsageReceipt.from_dict(unit["receipt"], expected_provider=provider.did)
    assert receipt.ok and receipt.requester == requester.did and receipt.alloc_id == unit["alloc_id"]
    [out] = unit["outputs"]
    local = Path(out["local_path"])
    assert local == Path(doc["dir"]) / "hello" / "hello.txt" and read(local) == b"result\n"
    assert out["sha256"] == hashlib.sha256(b"result\n").hexdigest()
    assert await requester.runner.outputs(doc["id"]) == [{"task": "hello", **out}]
    logs = await requester.runner.logs(doc["id"])
    lines = [(x["task"], x["stream"], x["line"]) for x in logs["lines"]]
    assert ("hello", "stdout", "hello from wat") in lines and ("hello", "stderr", "to stderr") in lines
    assert logs["done"]
    kinds = [(e.kind, e.data["state"]) for e in await requester.store.events(subject=doc["id"])]
    assert kinds[0] == ("job.state", "submitted") and kinds[-1] == ("job.state", "completed")
    assert ("job.task", "running") in kinds
    assert leftovers(provider) == []


async def test_count_runs_that_many_units(provider: Provider, requester: Requester, tmp_path: Path) -> None:
    await grant(provider, requester)
    doc = await run(requester, job(tmp_path, {"hello": wat.hello()}, count=3), provider.did, tmp_path)
    assert doc["state"] == "completed", doc["error"]
    assert [u["key"] for u in doc["units"]] == ["hello-0", "hello-1", "hello-2"]
    assert len({u["alloc_id"] for u in doc["units"]}) == 3
    assert all(read(u["outputs"][0]["local_path"]) == b"hello output\n" for u in doc["units"])
    assert leftovers(provider) == []


class _Counting(AllocationManager):
    """A provider that counts the calls it gets and the allocations running when each starts."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.calls: dict[str, int] = {}
        self.most_at_once = 0

    def _count(self, ctx: CallContext) -> None:
        self.calls[ctx.command] = self.calls.get(ctx.command, 0) + 1

    @behavior("/agora/alloc/start")
    async def start(self, ctx: CallContext) -> dict[str, Any]:
        self._count(ctx)
        reply = await super().start(ctx)
        self.most_at_once = max(self.most_at_once, len(self._live))
        return reply

    @behavior("/agora/alloc/status")
    async def status(self, ctx: CallContext) -> dict[str, Any]:
        self._count(ctx)
        return await super().status(ctx)

    @behavior("/agora/alloc/logs")
    async def logs(self, ctx: CallContext) -> dict[str, Any]:
        self._count(ctx)
        return await super().logs(ctx)

    @behavior("/agora/alloc/watch")
    async def watch(self, ctx: CallContext) -> dict[str, Any]:
        self._count(ctx)
        return await super().watch(ctx)


async def test_units_are_followed_through_one_stream_and_a_stage_runs_a_bounded_number_at_once(
    net: MemoryNetwork, requester: Requester, tmp_path: Path
) -> None:
    prov = await make_provider(net, tmp_path / "counting", manager_cls=_Counting)
    assert isinstance(prov.manager, _Counting)
    runner = JobRunner(
        runtime=requester.runtime,
        store=requester.store,
        jobs_dir=tmp_path / "jobs",
        proofs_for=requester.book.proofs_for,
        settings=RunnerSettings(call_timeout=5.0, units_at_once=2),
    )
    try:
        await grant(prov, requester)
        spec = job(tmp_path, {"hello": wat.hello()}, count=6)
        summary = await runner.submit(spec, node=prov.did, base_dirs=[tmp_path])
        doc = await runner.wait(summary["id"], 30)
        assert doc["state"] == "completed", doc["error"]
        calls = prov.manager.calls
        assert calls.get("/agora/alloc/start") == 6 and calls.get("/agora/alloc/watch", 0) >= 6
        assert "/agora/alloc/status" not in calls and "/agora/alloc/logs" not in calls  # no polling loops
        assert 1 <= prov.manager.most_at_once <= 2
        logs = await runner.logs(summary["id"])
        assert sum(1 for x in logs["lines"] if x["line"] == "hello from wat") == 6  # log deltas came along
    finally:
        await runner.stop()
        await prov.manager.stop()
        await prov.runtime.transport.close()


async def test_units_are_rows_of_their_own_and_a_unit_move_leaves_the_job_row_alone(
    provider: Provider, requester: Requester, tmp_path: Path
) -> None:
    """A job of `count` units must not rewrite a record that grows with `count` on every unit move."""
    await grant(provider, requester)
    versions = []
    for count in (1, 4):
        doc = await run(requester, job(tmp_path, {"hello": wat.hello()}, count=count), provider.did, tmp_path)
        assert doc["state"] == "completed", doc["error"]
        row, version = await requester.store.get_with_version("jobs", doc["id"])  # type: ignore[misc]
        assert "units" not in row and row["unit_count"] == count
        versions.append(version)
        units = await requester.store.query("job_units", {"job_id": doc["id"]})
        assert sorted(u["key"] for u in units) == sorted(u["key"] for u in doc["units"])
        assert all(u["state"] == "completed" and u["outputs"] for u in units)
        assert await requester.runner.get(doc["id"]) == doc  # read back whole, in order
        [listed] = [j for j in await requester.runner.list_jobs() if j["id"] == doc["id"]]
        assert listed["tasks"] == {u["key"]: "completed" for u in doc["units"]}
    assert versions[0] == versions[1]  # the job row was written as often for 4 units as for 1


async def test_a_job_without_a_delegation_fails_with_the_hint_to_ask_for_one(
    provider: Provider, requester: Requester, tmp_path: Path
) -> None:
    doc = await run(requester, job(tmp_path, {"hello": wat.hello()}), provider.did, tmp_path)
    assert doc["state"] == "failed"
    err = doc["error"]
    assert err["code"] == "ucan_unauthorized" and err["task"] == "hello"
    assert f"agora node grant {requester.did}" in err["hint"]
    assert await provider.store.count("allocations") == 0


async def test_workflow_stages_run_in_order_and_a_failure_skips_the_rest(
    provider: Provider, requester: Requester, tmp_path: Path
) -> None:
    await grant(provider, requester)
    spec = job(tmp_path, {"a": wat.hello(), "b": wat.hello(), "c": wat.hello()})
    spec["tasks"][1]["depends_on"] = ["a"]
    spec["tasks"][2]["depends_on"] = ["b"]
    spec["tasks"] = list(reversed(spec["tasks"]))  # declaration order must not matter
    doc = await run(requester, spec, provider.did, tmp_path)
    assert doc["state"] == "completed", doc["error"]
    events = [e.data for e in await requester.store.events(kind="job.task", subject=doc["id"])]
    order = [d["task"] for d in events if d["state"] == "starting"]
    done = {d["task"]: i for i, d in enumerate(events) if d["state"] == "completed"}
    started = {d["task"]: i for i, d in enumerate(events) if d["state"] == "starting"}
    assert order == ["a", "b", "c"] and done["a"] < started["b"] and done["b"] < started["c"]

    failing = job(tmp_path, {"a": wat.exit_with(2), "b": wat.hello()})
    failing["tasks"][1]["depends_on"] = ["a"]
    doc = await run(requester, failing, provider.did, tmp_path)
    assert doc["state"] == "failed" and doc["error"]["code"] == "task_failed"
    assert {u["key"]: u["state"] for u in doc["units"]} == {"a": "failed", "b": "skipped"}
    assert leftovers(provider) == []


async def test_cancel_reaches_the_provider(provider: Provider, requester: Requester, tmp_path: Path) -> None:
    await grant(provider, requester)
    spec = job(tmp_path, {"spin": wat.spin()})
    summary = await requester.runner.submit(spec, node=provider.did, base_dirs=[tmp_path])
    for _ in range(200):
        doc = await requester.runner.get(summary["id"])
        if doc["units"][0]["state"] == "running" and provider.manager.running():
            break
        await requester.runner.wait(summary["id"], 0.05)
    assert provider.manager.running()
    await requester.runner.cancel(summary["id"])
    doc = await requester.runner.wait(summary["id"], 10)
    assert doc["state"] == "cancelled" and doc["units"][0]["state"] == "cancelled"
    alloc = await provider.store.get("allocations", doc["units"][0]["alloc_id"])
    assert alloc is not None and alloc["state"] == "cancelled"
    assert leftovers(provider) == []


async def test_a_retryable_failure_is_retried(provider: Provider, requester: Requester, tmp_path: Path) -> None:
    await grant(provider, requester)
    provider.capacity.reserve("blocker", Capability(cpu_millis=3500))
    spec = job(tmp_path, {"hello": wat.hello()}, retry={"attempts": 2, "backoff": 1})
    summary = await requester.runner.submit(spec, node=provider.did, base_dirs=[tmp_path])
    for _ in range(200):
        doc = await requester.runner.get(summary["id"])
        if doc["units"][0]["state"] == "waiting_retry":
            break
        await requester.runner.wait(summary["id"], 0.02)
    assert doc["units"][0]["error"]["code"] == "insufficient_capacity"
    provider.capacity.release("blocker")
    doc = await requester.runner.wait(summary["id"], 10)
    assert doc["state"] == "completed" and doc["units"][0]["attempts"] == 2


async def test_a_failure_that_cannot_improve_is_not_retried(
    provider: Provider, requester: Requester, tmp_path: Path
) -> None:
    await grant(provider, requester)
    spec = job(tmp_path, {"spin": wat.spin()}, retry={"attempts": 3, "backoff": 1})
    spec["tasks"][0]["timeout"] = 1
    doc = await run(requester, spec, provider.did, tmp_path)
    assert doc["state"] == "failed" and doc["error"]["code"] == "task_timeout"
    assert doc["units"][0]["attempts"] == 1


async def test_bad_submissions_fail_at_once_and_store_nothing(requester: Requester, tmp_path: Path) -> None:
    with pytest.raises(AgoraError) as err:
        await requester.runner.submit({"name": "x", "tasks": [{"name": "t", "engine": "wasm"}]})
    assert err.value.code == "job_spec_invalid" and err.value.details["errors"][0]["path"] == "tasks[0].module"
    with pytest.raises(AgoraError) as err:
        await requester.runner.submit(
            {"name": "x", "tasks": [{"name": "t", "module": "nope.wasm"}]}, base_dirs=[tmp_path]
        )
    assert err.value.code == "module_invalid" and "nope.wasm" in err.value.message
    cyclic = {
        "name": "x",
        "tasks": [{"name": "a", "module": "m", "depends_on": ["b"]}, {"name": "b", "module": "m", "depends_on": ["a"]}],
    }
    with pytest.raises(AgoraError) as err:
        await requester.runner.submit(cyclic)
    assert err.value.code == "workflow_cycle"
    with pytest.raises(AgoraError) as err:
        await requester.runner.submit(job(tmp_path, {"a": wat.hello()}), node="did:key:nonsense")
    assert err.value.code in ("did_invalid", "did_unsupported")
    assert await requester.store.count("jobs") == 0


async def test_a_job_without_a_node_runs_on_this_node(provider: Provider, tmp_path: Path) -> None:
    local = JobRunner(
        runtime=provider.runtime, store=provider.store, jobs_dir=tmp_path / "jobs", proofs_for=lambda t, c: []
    )
    try:
        summary = await local.submit(job(tmp_path, {"hello": wat.hello(content="here\n")}), base_dirs=[tmp_path])
        doc = await local.wait(summary["id"], 20)
        assert doc["state"] == "completed" and doc["node"] == provider.did
        assert read(doc["units"][0]["outputs"][0]["local_path"]) == b"here\n"
    finally:
        await local.stop()


class _Liar(AllocationManager):
    """A provider that signs one thing and sends another."""

    tamper = "output"

    @behavior("/agora/alloc/fetch")
    async def fetch(self, ctx: CallContext) -> dict[str, Any]:
        reply = await super().fetch(ctx)
        if self.tamper == "output":
            data = bytearray(reply["data"])
            data[0] ^= 1
            reply["data"] = bytes(data)
        return reply

    @behavior("/agora/alloc/status")
    async def status(self, ctx: CallContext) -> dict[str, Any]:
        return self._lie(await super().status(ctx))

    @behavior("/agora/alloc/watch")
    async def watch(self, ctx: CallContext) -> dict[str, Any]:
        reply = await super().watch(ctx)
        return reply | {"status": self._lie(reply["status"])}

    def _lie(self, reply: dict[str, Any]) -> dict[str, Any]:
        if self.tamper == "state" and reply.get("state") == "failed":
            reply["state"], reply["error"] = "completed", None  # unsigned: claims success the receipt denies
        if self.tamper == "never_ends":
            reply = {"alloc_id": reply["alloc_id"], "state": "running"}  # answers at once, forever
        if self.tamper in ("flip", "unknown") and reply.get("state") == "running":
            self.flips = getattr(self, "flips", 0) + 1
            if self.flips > 1:  # after running: back to accepted (flip), or a state that does not exist
                reply = {"alloc_id": reply["alloc_id"], "state": "accepted" if self.tamper == "flip" else "dancing"}
        if self.tamper == "escape" and reply.get("receipt"):  # signs an output path that leaves the job dir
            signed = UsageReceipt.open(reply["receipt"])
            outs = [dataclasses.replace(o, path="../../escaped-" + o.path) for o in signed.outputs]
            fields = {f.name: getattr(signed, f.name) for f in dataclasses.fields(signed)}
            fields = {k: v for k, v in fields.items() if k not in ("provider", "raw")} | {"outputs": outs}
            reply["receipt"] = UsageReceipt.issue(self.keypair, **fields).raw
            reply["outputs"] = [o.to_dict() for o in outs]
        if self.tamper == "receipt" and reply.get("receipt"):
            raw = bytearray(reply["receipt"])
            raw[10] ^= 1  # inside the signature
            reply["receipt"] = bytes(raw)
        return reply


@pytest.mark.parametrize(("tamper", "code"), [("output", "storage_integrity"), ("receipt", "receipt_invalid")])
async def test_a_tampered_output_or_receipt_is_refused(
    net: MemoryNetwork, requester: Requester, tmp_path: Path, tamper: str, code: str
) -> None:
    liar = await make_provider(net, tmp_path / "liar", manager_cls=_Liar)
    assert isinstance(liar.manager, _Liar)
    liar.manager.tamper = tamper
    try:
        await grant(liar, requester)
        doc = await run(requester, job(tmp_path, {"hello": wat.hello()}), liar.did, tmp_path)
        assert doc["state"] == "failed" and doc["error"]["code"] == code, doc["error"]
        out_dir = Path(doc["dir"]) / "hello"
        assert not out_dir.exists() or list(out_dir.iterdir()) == []
    finally:
        await liar.manager.stop()
        await liar.runtime.transport.close()


async def test_a_signed_output_path_that_leaves_the_job_dir_is_refused_and_nothing_is_written(
    net: MemoryNetwork, requester: Requester, tmp_path: Path
) -> None:
    liar = await make_provider(net, tmp_path / "liar", manager_cls=_Liar)
    assert isinstance(liar.manager, _Liar)
    liar.manager.tamper = "escape"
    try:
        await grant(liar, requester)
        doc = await run(requester, job(tmp_path, {"hello": wat.hello()}), liar.did, tmp_path)
        assert doc["state"] == "failed" and doc["error"]["code"] == "receipt_invalid", doc["error"]
        assert "not a safe relative path" in doc["error"]["message"]
        assert not await asyncio.to_thread(lambda: list(tmp_path.rglob("escaped-*")))
    finally:
        await liar.manager.stop()
        await liar.runtime.transport.close()


async def test_finished_logs_are_evicted_oldest_first_even_behind_a_live_job(tmp_path: Path) -> None:
    from agora.orchestrator.joblog import JobLog
    from agora.orchestrator.runner import _Run

    runner = JobRunner.__new__(JobRunner)
    runner.settings = RunnerSettings(finished_logs=2)
    runner._runs = {}
    runner._logs = OrderedDict()
    runner._runs["live"] = cast(_Run, object())  # the oldest log belongs to a job still running
    runner._keep_log("live", JobLog())
    for i in range(6):
        runner._keep_log(f"done-{i}", JobLog())
    assert list(runner._logs) == ["live", "done-4", "done-5"]


async def test_after_a_restart_the_allocations_left_running_are_cancelled_on_their_provider(
    provider: Provider, requester: Requester, tmp_path: Path
) -> None:
    await grant(provider, requester)
    summary = await requester.runner.submit(
        job(tmp_path, {"spin": wat.spin()}), node=provider.did, base_dirs=[tmp_path]
    )
    for _ in range(400):
        doc = await requester.runner.get(summary["id"])
        if doc["units"][0]["state"] == "running" and provider.manager.running():
            break
        await requester.runner.wait(summary["id"], 0.05)
    assert provider.manager.running()
    # The requester "crashes": what it left is its store as it was; a new runner starts on it.
    store = MemoryStore(SYSTEM_CLOCK)
    await store.open()
    await store.put("jobs", doc["id"], await requester.store.get("jobs", doc["id"]))
    for row in await requester.store.query("job_units", {"job_id": doc["id"]}):  # the job's units are rows
        await store.put("job_units", f"{doc['id']}/{row['key']}", row)
    gone = Keypair.generate().did  # a second job on a provider that is not there any more
    lost = {**doc, "id": "job-lost", "units": [{**doc["units"][0], "node": gone, "alloc_id": "alloc-lost"}]}
    await store.put("jobs", "job-lost", lost)
    fresh = JobRunner(
        runtime=requester.runtime,
        store=store,
        jobs_dir=tmp_path / "jobs2",
        proofs_for=requester.book.proofs_for,
        settings=RunnerSettings(call_timeout=2.0, orphan_cancel_tries=2),
    )
    try:
        assert await fresh.recover() == 2
        assert (await fresh.get(doc["id"]))["state"] == "failed"
        assert fresh._recovering is not None
        await asyncio.wait_for(fresh._recovering, 30)
        alloc = await provider.store.get("allocations", doc["units"][0]["alloc_id"])
        assert alloc is not None and alloc["state"] == "cancelled"
        [ok] = [e.data for e in await store.events(kind="job.orphan", subject=doc["id"])]
        assert ok["cancelled"] is True and ok["alloc_id"] == doc["units"][0]["alloc_id"]
        [bad] = [e.data for e in await store.events(kind="job.orphan", subject="job-lost")]
        assert bad["cancelled"] is False and bad["node"] == gone and bad["error"]["code"]
    finally:
        await fresh.stop()
        await requester.runner.wait(summary["id"], 10)


async def test_a_status_that_contradicts_the_signed_receipt_is_refused(
    net: MemoryNetwork, requester: Requester, tmp_path: Path
) -> None:
    liar = await make_provider(net, tmp_path / "liar", manager_cls=_Liar)
    assert isinstance(liar.manager, _Liar)
    liar.manager.tamper = "state"
    try:
        await grant(liar, requester)
        doc = await run(requester, job(tmp_path, {"bad": wat.exit_with(2)}), liar.did, tmp_path)
        assert doc["state"] == "failed" and doc["error"]["code"] == "receipt_invalid", doc["error"]
        assert "signed receipt says exited" in doc["error"]["message"]
    finally:
        await liar.manager.stop()
        await liar.runtime.transport.close()


@pytest.mark.parametrize(("tamper", "says"), [("flip", "went back"), ("unknown", "not an allocation state")])
async def test_a_provider_that_moves_back_or_invents_a_state_is_refused(
    net: MemoryNetwork, requester: Requester, tmp_path: Path, tamper: str, says: str
) -> None:
    """A provider cannot keep the requester busy by flipping states: each reply would count as news and skip the
    minimum poll interval. States only move forward, and only through the states an allocation has."""
    liar = await make_provider(net, tmp_path / "liar", manager_cls=_Liar)
    assert isinstance(liar.manager, _Liar)
    liar.manager.tamper = tamper
    try:
        await grant(liar, requester)
        spec = job(tmp_path, {"spin": wat.spin()})
        spec["tasks"][0]["timeout"] = 30
        doc = await run(requester, spec, liar.did, tmp_path)
        assert doc["state"] == "failed" and doc["error"]["code"] == "receipt_invalid", doc["error"]
        assert says in doc["error"]["message"]
    finally:
        await liar.manager.stop()
        await liar.runtime.transport.close()


async def test_a_provider_that_never_reports_the_end_times_out_and_is_cancelled(
    net: MemoryNetwork, requester: Requester, tmp_path: Path
) -> None:
    liar = await make_provider(net, tmp_path / "liar", manager_cls=_Liar)
    assert isinstance(liar.manager, _Liar)
    liar.manager.tamper = "never_ends"
    runner = JobRunner(
        runtime=requester.runtime,
        store=requester.store,
        jobs_dir=tmp_path / "jobs",
        proofs_for=requester.book.proofs_for,
        settings=RunnerSettings(call_timeout=5.0, end_grace_s=0.5, min_poll_s=0.1),
    )
    try:
        await grant(liar, requester)
        spec = job(tmp_path, {"spin": wat.spin()})
        spec["tasks"][0]["timeout"] = 1
        summary = await runner.submit(spec, node=liar.did, base_dirs=[tmp_path])
        doc = await runner.wait(summary["id"], 20)
        assert doc["state"] == "failed" and doc["error"]["code"] == "task_timeout", doc["error"]
        alloc = await liar.store.get("allocations", doc["units"][0]["alloc_id"])
        assert alloc is not None and alloc["state"] in ("cancelled", "failed")
    finally:
        await runner.stop()
        await liar.manager.stop()
        await liar.runtime.transport.close()


def test_log_lines_are_cut_and_a_job_log_is_bounded_in_bytes() -> None:
    from agora.orchestrator.joblog import MAX_LINE_BYTES, JobLog

    jl = JobLog(capacity=1000, max_bytes=64 * 1024)
    jl.add("t", "stdout", "x" * 1_000_000, 0.0)
    [first] = jl.read()["lines"]
    assert len(first["line"].encode()) <= MAX_LINE_BYTES + 16 and first["line"].startswith("xxx")
    for i in range(100):
        jl.add("t", "stdout", f"{i}:" + "y" * 4000, 0.0)
    page = jl.read(0, 1000)
    assert sum(len(x["line"]) for x in page["lines"]) <= 64 * 1024
    assert page["dropped"] > 0 and page["lines"][-1]["line"].startswith("99:")


def test_outputs_larger_than_the_task_disk_are_refused_before_any_download() -> None:
    from agora.codec import CID
    from agora.orchestrator.verify import MAX_OUTPUTS, limit_outputs
    from agora.wire import OutputDigest

    kp = Keypair.generate()

    def receipt(outputs: list[OutputDigest]) -> UsageReceipt:
        return UsageReceipt.issue(
            kp, alloc_id="a1", requester=kp.did, job="j", task="t", engine="wasm", exit_code=0, reason="exited",
            error_code=None, started_at=0.0, ended_at=1.0, wall_s=1.0, cpu_s=1.0, peak_memory_bytes=0,
            outputs=outputs, invocation=CID.of(b"x"), iat=1,
        )  # fmt: skip

    small = OutputDigest(name="o", path="a", sha256="0" * 64, size=10)
    limit_outputs(receipt([small]), disk=10)
    for outs, disk in (
        ([OutputDigest(name="o", path="a", sha256="0" * 64, size=2**40)], 16 * 2**20),
        ([small] * 2, 15),
    ):
        with pytest.raises(AgoraError) as err:
            limit_outputs(receipt(outs), disk=disk)
        assert err.value.code == "receipt_invalid" and "nothing was downloaded" in err.value.message
    many = [OutputDigest(name="o", path=f"f{i}", sha256="0" * 64, size=0) for i in range(MAX_OUTPUTS + 1)]
    with pytest.raises(AgoraError):
        limit_outputs(receipt(many), disk=2**40)


async def test_following_a_job_to_its_end_never_waits_out_min_poll(
    provider: Provider, requester: Requester, tmp_path: Path
) -> None:
    """Every watch reply from an honest provider brings news, the last log lines after the end included (the
    drain is a long-poll too): `min_poll_s`, the guard against a provider that answers at once, is never paid.
    It used to be paid once per job (a zero-wait drain came back empty): a 200 ms floor under every job."""
    await grant(provider, requester)
    runner = JobRunner(
        runtime=requester.runtime,
        store=requester.store,
        jobs_dir=tmp_path / "jobs",
        proofs_for=requester.book.proofs_for,
        settings=RunnerSettings(call_timeout=5.0, min_poll_s=60.0),  # paid once, the job would outlive the wait
    )
    requester.runtime.unregister(requester.runner)
    requester.runtime.register(runner)
    try:
        for _ in range(3):
            spec = job(tmp_path, {"hello": wat.hello()})
            summary = await runner.submit(spec, node=provider.did, base_dirs=[tmp_path])
            doc = await runner.wait(summary["id"], 30)
            assert doc["state"] == "completed", doc
        assert runner.idle_replies == 0
    finally:
        await runner.stop()
