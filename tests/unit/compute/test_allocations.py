"""The provider's Allocation manager over the memory transport with the real wasm executor."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

from agora.actor import StoreReplayJournal
from agora.compute import OFFER_COMMAND, AllocationManager
from agora.compute.watch import LongPolls
from agora.errors import AgoraError
from agora.models.capability import Capability, GiB
from agora.transport import MemoryNetwork
from agora.wire import UsageReceipt
from agora.wire.alloc import WATCH
from tests.support import free_port
from tests.unit.compute import wat
from tests.unit.compute.harness import Provider, Requester, grant, leftovers, make_requester, until

START = "/agora/alloc/start"


def task(name: str = "t", **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "engine": "wasm",
        "module": "hello.wasm",
        "resources": {"cpu": 1, "memory": "64Mi", "disk": "16Mi"},
        "timeout": 30,
    }
    body.update(kw)
    return body


async def call(req: Requester, prov: Provider, cmd: str, args: dict[str, Any]) -> Any:
    return await req.runtime.call(prov.did, cmd, args, proofs=req.book.proofs_for(prov.did, cmd))


async def start(req: Requester, prov: Provider, t: dict[str, Any], module: bytes | None = None, **extra: Any) -> str:
    args: dict[str, Any] = {"job": "unit", "job_id": "job-1", "task": t, **extra}
    if module is not None:
        args["module_bytes"] = module
    reply = await call(req, prov, START, args)
    assert reply["state"] == "accepted"
    return str(reply["alloc_id"])


async def wait_end(req: Requester, prov: Provider, alloc_id: str) -> dict[str, Any]:
    known = None
    for _ in range(200):
        st = await call(req, prov, "/agora/alloc/status", {"alloc_id": alloc_id, "known_state": known, "wait_s": 2})
        if st["state"] in ("completed", "failed", "cancelled"):
            return dict(st)
        known = st["state"]
    raise AssertionError("allocation did not end")


async def test_a_wasm_task_runs_and_ends_with_a_signed_receipt(provider: Provider, requester: Requester) -> None:
    await grant(provider, requester)
    alloc_id = await start(requester, provider, task(), wat.hello(content="42\n"))
    st = await wait_end(requester, provider, alloc_id)
    assert st["state"] == "completed", st
    assert [h["state"] for h in st["history"]] == ["accepted", "staging", "running", "completed"]
    receipt = UsageReceipt.open(st["receipt"], expected_provider=provider.did)
    assert receipt.ok and receipt.alloc_id == alloc_id and receipt.requester == requester.did
    assert receipt.job == "unit" and receipt.task == "t" and receipt.engine == "wasm"
    assert receipt.ended_at >= receipt.started_at and receipt.peak_memory_bytes > 0
    [out] = receipt.outputs
    assert out.path == "hello.txt" and out.size == 3 and out.sha256 == hashlib.sha256(b"42\n").hexdigest()
    assert provider.cas.path_of(out.sha256).read_bytes() == b"42\n"
    logs = await call(requester, provider, "/agora/alloc/logs", {"alloc_id": alloc_id})
    assert [(x["stream"], x["line"]) for x in logs["lines"]] == [("stdout", "hello from wat"), ("stderr", "to stderr")]
    assert logs["done"] and logs["next"] == 2
    later = await call(requester, provider, "/agora/alloc/logs", {"alloc_id": alloc_id, "after": 1})
    assert [x["seq"] for x in later["lines"]] == [2]
    events = await provider.store.events(kind="alloc.state", subject=alloc_id)
    assert [e.data["state"] for e in events] == ["accepted", "staging", "running", "completed"]
    doc = await provider.store.get("allocations", alloc_id)
    assert doc is not None and doc["state"] == "completed"
    assert leftovers(provider) == []


async def test_a_request_without_delegation_is_refused_before_anything_runs(
    provider: Provider, requester: Requester
) -> None:
    with pytest.raises(AgoraError) as err:
        await start(requester, provider, task(), wat.hello())
    assert err.value.code == "ucan_unauthorized"
    assert await provider.store.count("allocations") == 0
    assert leftovers(provider) == []


async def test_the_delegation_bounds_what_may_be_run(provider: Provider, requester: Requester) -> None:
    await grant(provider, requester, command="/agora/alloc/status")
    d = requester.book.proofs_for(provider.did, "/agora/alloc/status")
    args = {"job": "j", "task": task()}
    with pytest.raises(AgoraError) as err:
        await requester.runtime.call(provider.did, START, args, proofs=d)
    assert err.value.code == "ucan_command_not_delegated"
    await grant(provider, requester, policy=[["==", ".task.engine", "process"]])
    with pytest.raises(AgoraError) as err:
        await start(requester, provider, task(), wat.hello())
    assert err.value.code == "ucan_policy_violation"
    assert await provider.store.count("allocations") == 0


async def test_an_unavailable_engine_is_refused_with_its_reason(provider: Provider, requester: Requester) -> None:
    await grant(provider, requester)
    reason = provider.registry.availability("firecracker")
    if reason.available:  # pragma: no cover - a machine with /dev/kvm and firecracker
        pytest.skip("firecracker is available here")
    t = task(engine="firecracker", image="rootfs.ext4", module=None)
    with pytest.raises(AgoraError) as err:
        await start(requester, provider, t)
    assert err.value.code == "executor_unavailable"
    assert reason.reason and reason.reason in err.value.message
    assert err.value.details["engine"] == "firecracker"
    assert leftovers(provider) == [] and await provider.store.count("allocations") == 0


async def test_a_task_larger_than_the_node_gets_every_reason(provider: Provider, requester: Requester) -> None:
    await grant(provider, requester)
    t = task(resources={"cpu": 64, "memory": "64Gi", "disk": "1Ti"})
    with pytest.raises(AgoraError) as err:
        await start(requester, provider, t, wat.hello())
    assert err.value.code == "insufficient_capacity" and not err.value.retryable
    reasons = {r["code"]: r["text"] for r in err.value.details["reasons"]}
    assert set(reasons) == {"insufficient_cpu", "insufficient_memory", "insufficient_disk"}
    assert reasons["insufficient_memory"] == "insufficient_memory: need 64 GiB, free 4 GiB"
    # fits the machine but not what is free right now: the same code, retryable, nothing reserved
    provider.capacity.reserve("blocker", Capability(cpu_millis=3500, memory_bytes=GiB))
    with pytest.raises(AgoraError) as err:
        await start(requester, provider, task(), wat.hello())
    assert err.value.code == "insufficient_capacity" and err.value.retryable
    assert [r["code"] for r in err.value.details["reasons"]] == ["insufficient_cpu"]
    assert set(provider.capacity.allocations) == {"blocker"}
    provider.capacity.release("blocker")
    assert leftovers(provider) == []


async def test_an_invalid_task_names_its_field(provider: Provider, requester: Requester) -> None:
    await grant(provider, requester)
    with pytest.raises(AgoraError) as err:
        await start(requester, provider, task(resources={"memory": "lots"}))
    assert err.value.code == "job_spec_invalid"
    assert [e["path"] for e in err.value.details["errors"]] == ["tasks[0].resources.memory"]


@pytest.mark.parametrize(
    ("module", "extra", "code"),
    [
        (None, {"task": task(module="sha256:" + "ab" * 32)}, "module_invalid"),
        (b"\x00asm but not really", {}, "module_invalid"),
        (wat.trap(), {}, "module_trap"),
        (wat.exit_with(3), {}, "task_failed"),
        (
            wat.cat_input("msg.txt"),
            {
                "task": task(
                    inputs=[{"name": "msg", "source": {"type": "local", "path": "m"}, "path": "/inputs/msg.txt"}]
                )
            },
            "input_missing",
        ),
        (
            wat.hello(content="x" * 40000),
            {"task": task(resources={"memory": "64Mi", "disk": "4Ki"})},
            "task_disk_limit",
        ),
        (
            wat.cat_input("msg.txt"),
            {
                "task": task(
                    resources={"memory": "64Mi", "disk": "4Ki"},
                    inputs=[{"name": "msg", "source": {"type": "inline", "content": "x" * 5000}}],
                )
            },
            "task_disk_limit",  # staged inputs count against the task's disk
        ),
        (
            wat.cat_input("msg.txt"),
            {
                "task": task(
                    inputs=[{"name": "msg", "source": {"type": "http", "url": f"http://127.0.0.1:{free_port()}/m"}}]
                )
            },
            "input_forbidden",  # a provider does not fetch from its own loopback unless its operator allows it
        ),
        (
            wat.cat_input("msg.txt"),
            {"task": task(inputs=[{"name": "msg", "source": {"type": "s3", "bucket": "data", "key": "m"}}])},
            "config_invalid",
        ),
    ],
    ids=[
        "module-not-there",
        "module-not-wasm",
        "trap",
        "exit-3",
        "missing-input",
        "over-disk-limit",
        "inputs-over-disk",
        "loopback-http-input-refused",
        "s3-input-without-s3",
    ],
)
async def test_every_failure_is_recorded_and_leaves_nothing(
    provider: Provider, requester: Requester, module: bytes | None, extra: dict[str, Any], code: str
) -> None:
    await grant(provider, requester)
    t = extra.pop("task", task())
    alloc_id = await start(requester, provider, t, module, **extra)
    st = await wait_end(requester, provider, alloc_id)
    assert st["state"] == "failed" and st["error"]["code"] == code, st["error"]
    receipt = UsageReceipt.open(st["receipt"], expected_provider=provider.did)
    assert receipt.error_code == code and not receipt.ok and receipt.outputs == ()
    if code == "task_failed":
        assert receipt.exit_code == 3 and "failing" in st["error"]["details"]["stderr_tail"]
    events = await provider.store.events(kind="alloc.state", subject=alloc_id)
    assert events[-1].data == {
        "state": "failed",
        "cause": events[-1].data["cause"],
        "job": "unit",
        "task": "t",
        "code": code,
    }
    assert leftovers(provider) == []


async def test_an_input_reaches_the_task(provider: Provider, requester: Requester) -> None:
    await grant(provider, requester)
    inputs = [
        {"name": "msg", "source": {"type": "local", "path": "m.txt"}, "path": "/inputs/msg.txt"},
        {"name": "note", "source": {"type": "inline", "content": "inline\n"}, "path": "/inputs/note.txt"},
    ]
    alloc_id = await start(
        requester, provider, task(inputs=inputs), wat.cat_input("msg.txt"), input_data={"msg": b"from afar\n"}
    )
    st = await wait_end(requester, provider, alloc_id)
    assert st["state"] == "completed", st["error"]
    assert [(o["name"], o["path"]) for o in st["outputs"]] == [("copy.txt", "copy.txt")]
    assert provider.cas.path_of(st["outputs"][0]["sha256"]).read_bytes() == b"from afar\n"
    assert leftovers(provider) == []


async def test_cancel_stops_a_running_task(provider: Provider, requester: Requester) -> None:
    await grant(provider, requester)
    alloc_id = await start(requester, provider, task(timeout=120), wat.spin())
    st = await call(
        requester, provider, "/agora/alloc/status", {"alloc_id": alloc_id, "known_state": "accepted", "wait_s": 2}
    )
    for _ in range(20):
        if st["state"] == "running":
            break
        st = await call(
            requester, provider, "/agora/alloc/status", {"alloc_id": alloc_id, "known_state": st["state"], "wait_s": 2}
        )
    assert st["state"] == "running"
    await call(requester, provider, "/agora/alloc/cancel", {"alloc_id": alloc_id})
    st = await wait_end(requester, provider, alloc_id)
    assert st["state"] == "cancelled" and st["error"]["code"] == "task_cancelled"
    assert UsageReceipt.open(st["receipt"]).reason == "cancelled"
    again = await call(requester, provider, "/agora/alloc/cancel", {"alloc_id": alloc_id})
    assert again == {"alloc_id": alloc_id, "state": "cancelled", "ended": True}
    assert leftovers(provider) == []


async def test_a_task_past_its_timeout_is_killed(provider: Provider, requester: Requester) -> None:
    await grant(provider, requester)
    alloc_id = await start(requester, provider, task(timeout=1), wat.spin())
    st = await wait_end(requester, provider, alloc_id)
    assert st["state"] == "failed" and st["error"]["code"] == "task_timeout"
    assert UsageReceipt.open(st["receipt"]).reason == "timeout"
    assert leftovers(provider) == []


async def test_only_the_requester_sees_its_allocation(
    net: MemoryNetwork, provider: Provider, requester: Requester, tmp_path: Any
) -> None:
    await grant(provider, requester)
    alloc_id = await start(requester, provider, task(), wat.hello())
    await wait_end(requester, provider, alloc_id)
    other = await make_requester(net, tmp_path / "other")
    try:
        await grant(provider, other)
        for cmd in ("/agora/alloc/status", "/agora/alloc/logs", "/agora/alloc/cancel"):
            with pytest.raises(AgoraError) as err:
                await call(other, provider, cmd, {"alloc_id": alloc_id})
            assert err.value.code == "alloc_not_found"
    finally:
        await other.runner.stop()
        await other.runtime.transport.close()


async def test_outputs_are_fetched_in_chunks_and_only_by_their_owner(provider: Provider, requester: Requester) -> None:
    await grant(provider, requester)
    alloc_id = await start(requester, provider, task(), wat.hello(content="small\n"))
    st = await wait_end(requester, provider, alloc_id)
    sha = st["outputs"][0]["sha256"]
    chunk = await call(
        requester, provider, "/agora/alloc/fetch", {"alloc_id": alloc_id, "sha256": sha, "offset": 2, "length": 3}
    )
    assert chunk == {"data": b"all", "size": 6, "eof": False}
    with pytest.raises(AgoraError) as err:
        await call(requester, provider, "/agora/alloc/fetch", {"alloc_id": alloc_id, "sha256": "0" * 64})
    assert err.value.code == "not_found"


async def test_a_big_module_is_uploaded_then_named_by_hash(provider: Provider, requester: Requester) -> None:
    await grant(provider, requester)
    module = wat.hello(content="up\n")
    sha = hashlib.sha256(module).hexdigest()
    half = len(module) // 2
    for offset, data in ((0, module[:half]), (half, module[half:])):
        reply = await call(
            requester,
            provider,
            "/agora/alloc/upload",
            {"sha256": sha, "size": len(module), "offset": offset, "data": data},
        )
    assert reply == {"received": len(module), "complete": 1}
    alloc_id = await start(requester, provider, task(module=f"sha256:{sha}"))
    st = await wait_end(requester, provider, alloc_id)
    assert st["state"] == "completed", st["error"]
    bad = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(AgoraError) as err:
        await call(
            requester, provider, "/agora/alloc/upload", {"sha256": bad, "size": 5, "offset": 0, "data": b"wrong"}
        )
    assert err.value.code == "storage_integrity"


async def test_a_restart_marks_what_was_in_flight_failed(provider: Provider, requester: Requester) -> None:
    await grant(provider, requester)
    alloc_id = await start(requester, provider, task(timeout=120), wat.spin())
    await call(
        requester, provider, "/agora/alloc/status", {"alloc_id": alloc_id, "known_state": "accepted", "wait_s": 2}
    )
    # a second manager on the same store and home, as after a crash: it finds the record in flight
    doc = await provider.store.get("allocations", alloc_id)
    assert doc is not None and doc["state"] in ("staging", "running")
    (provider.home / "work" / "alloc-stale").mkdir(parents=True)
    again = AllocationManager(
        keypair=provider.keypair,
        store=provider.store,
        registry=provider.registry,
        capacity=provider.capacity,
        cas=provider.cas,
        work_root=provider.home / "work2",
    )
    (provider.home / "work2" / "alloc-stale").mkdir(parents=True)
    assert await again.recover() == 1
    doc = await provider.store.get("allocations", alloc_id)
    assert doc is not None and doc["state"] == "failed" and doc["error"]["code"] == "alloc_interrupted"
    assert list((provider.home / "work2").iterdir()) == []


async def test_staged_inputs_count_against_the_tasks_disk(provider: Provider, requester: Requester) -> None:
    await grant(provider, requester)
    t = task(
        resources={"memory": "64Mi", "disk": "4Ki"},
        inputs=[{"name": "msg", "source": {"type": "inline", "content": "x" * 5000}}],
    )
    alloc_id = await start(requester, provider, t, wat.exit_with(0))  # the task itself writes nothing
    st = await wait_end(requester, provider, alloc_id)
    assert st["state"] == "failed" and st["error"]["code"] == "task_disk_limit"
    assert "the inputs take 5000 bytes" in st["error"]["message"]
    assert leftovers(provider) == []


async def test_watch_answers_at_once_then_only_on_news_and_resumes_by_sequence(
    provider: Provider, requester: Requester
) -> None:
    """The one stream a requester follows: state and log lines together; a watch with nothing new waits."""
    await grant(provider, requester)
    alloc_id = await start(requester, provider, task(timeout=60), wat.spin())
    first = await call(requester, provider, "/agora/alloc/watch", {"alloc_id": alloc_id})  # no known state: at once
    assert first["status"]["alloc_id"] == alloc_id and first["logs"]["lines"] == []
    state = first["status"]["state"]
    for _ in range(50):  # follow it to running, each reply a change
        if state == "running":
            break
        reply = await call(
            requester, provider, "/agora/alloc/watch", {"alloc_id": alloc_id, "known_state": state, "wait_s": 5}
        )
        assert reply["status"]["state"] != state
        state = reply["status"]["state"]
    assert state == "running"
    # its one line ("spinning") comes as a log delta in the same stream
    after = 0
    for _ in range(50):
        reply = await call(
            requester, provider, "/agora/alloc/watch",
            {"alloc_id": alloc_id, "known_state": "running", "after_seq": after, "wait_s": 5},
        )  # fmt: skip
        after = reply["logs"]["next"]
        if after:
            break
    assert after == 1 and reply["logs"]["lines"][-1]["line"] == "spinning"
    # nothing new: the watch waits; the cancel below is the news it returns with
    args = {"alloc_id": alloc_id, "known_state": "running", "after_seq": 1, "wait_s": 10}
    pending = asyncio.create_task(call(requester, provider, "/agora/alloc/watch", args))
    for _ in range(50):
        await asyncio.sleep(0)
    assert not pending.done()
    await call(requester, provider, "/agora/alloc/cancel", {"alloc_id": alloc_id})
    ended = await asyncio.wait_for(pending, 10)
    assert ended["status"]["state"] == "cancelled" and ended["status"]["receipt"]
    assert ended["logs"]["done"]


async def test_a_wake_up_with_nothing_new_for_the_caller_keeps_the_watch_waiting(
    provider: Provider, requester: Requester
) -> None:
    """The ~200 ms step of docs/performance.md: a state move is visible at once but notifies its watchers only
    once persisted, so a watch that had already seen the new state (a log line woke it meanwhile) was woken
    again by that late notify with nothing new for it, and its requester waited out `min_poll_s`. A watch
    now answers only with news for its caller (or at `wait_s`): a wake-up with nothing new waits on."""
    await grant(provider, requester)
    alloc_id = await start(requester, provider, task(timeout=60), wat.spin())
    state, after = None, 0
    for _ in range(50):
        args = {"alloc_id": alloc_id, "known_state": state, "after_seq": after, "wait_s": 5}
        reply = await call(requester, provider, WATCH, args)
        state, after = reply["status"]["state"], reply["logs"]["next"]
        if state == "running" and after >= 1:
            break
    assert state == "running" and after == 1
    args = {"alloc_id": alloc_id, "known_state": "running", "after_seq": 1, "wait_s": 30}
    pending = asyncio.create_task(call(requester, provider, WATCH, args))
    await until(lambda: provider.manager.long_polls.waiting(requester.did) == 1, "the watch to wait")
    provider.manager._live[alloc_id].notify()  # what a persisted move's late notify does: nothing new here
    for _ in range(50):
        await asyncio.sleep(0)
    assert not pending.done() and provider.manager.long_polls.waiting(requester.did) == 1
    await call(requester, provider, "/agora/alloc/cancel", {"alloc_id": alloc_id})
    ended = await asyncio.wait_for(pending, 10)
    assert ended["status"]["state"] == "cancelled"  # the reply came with the news, not with the wake-up


async def test_watch_streams_log_lines_after_the_cursor(provider: Provider, requester: Requester) -> None:
    await grant(provider, requester)
    alloc_id = await start(requester, provider, task(), wat.hello())
    await wait_end(requester, provider, alloc_id)
    reply = await call(requester, provider, "/agora/alloc/watch", {"alloc_id": alloc_id, "known_state": "completed"})
    assert [x["seq"] for x in reply["logs"]["lines"]] == [1, 2] and reply["logs"]["done"]
    later = await call(
        requester, provider, "/agora/alloc/watch", {"alloc_id": alloc_id, "known_state": "completed", "after_seq": 1}
    )
    assert [x["line"] for x in later["logs"]["lines"]] == ["to stderr"] and later["logs"]["next"] == 2
    with pytest.raises(AgoraError) as err:
        await call(requester, provider, "/agora/alloc/watch", {"alloc_id": alloc_id, "v": 99})
    assert err.value.code == "invalid_argument"


async def test_reading_an_allocation_writes_nothing_to_the_replay_journal(
    provider: Provider, requester: Requester
) -> None:
    """status, logs, fetch and watch only read: none of them costs a durable journal write per call (a
    requester following a job long-polls watch many times), and a replay of one after a restart changes
    nothing. start, cancel and upload change state: each is journaled. A delegation offer is idempotent (a replay
    is answered `stored: false`) and strangers may send it: not journaled either."""
    journal = StoreReplayJournal(provider.store)
    provider.runtime.journal = journal
    await grant(provider, requester)
    alloc_id = await start(requester, provider, task(), wat.hello())
    assert await journal.count() == 1  # the start
    await wait_end(requester, provider, alloc_id)
    await call(requester, provider, "/agora/alloc/watch", {"alloc_id": alloc_id, "known_state": "completed"})
    await call(requester, provider, "/agora/alloc/logs", {"alloc_id": alloc_id})
    assert await journal.count() == 1
    mutating = {c["command"] for c in provider.runtime.commands if c["mutating"]}
    assert mutating == {"/agora/alloc/start", "/agora/alloc/cancel", "/agora/alloc/upload"}
    assert OFFER_COMMAND in {c["command"] for c in provider.runtime.commands}  # idempotent: not journaled


async def test_one_requester_cannot_hold_every_handler_with_long_polls(
    provider: Provider, requester: Requester
) -> None:
    """A long-poll (watch, status, logs with wait_s) holds one of the node's message handlers while it waits,
    and the transport has a bounded number of them for every caller. So waits are bounded per requester and
    in all: past the bound a long-poll is answered at once with the current state (the requester then waits
    out its own min_poll_s), and the others keep waiting."""
    provider.manager.long_polls = LongPolls(total=8, per_requester=2)
    await grant(provider, requester)
    alloc_id = await start(requester, provider, task(timeout=60), wat.spin())
    state = None
    for _ in range(50):
        reply = await call(requester, provider, WATCH, {"alloc_id": alloc_id, "known_state": state, "wait_s": 5})
        state = reply["status"]["state"]
        if state == "running" and reply["logs"]["next"] >= 1:
            break
    assert state == "running"
    quiet = {"alloc_id": alloc_id, "known_state": "running", "after_seq": 1, "wait_s": 60}
    pending = [asyncio.create_task(call(requester, provider, WATCH, quiet)) for _ in range(2)]
    await until(lambda: provider.manager.long_polls.waiting(requester.did) == 2, "two waiting watches")
    for cmd, args in [
        (WATCH, quiet),
        ("/agora/alloc/status", {"alloc_id": alloc_id, "known_state": "running", "wait_s": 60}),
        ("/agora/alloc/logs", {"alloc_id": alloc_id, "after": 1, "wait_s": 60}),
    ]:
        await asyncio.wait_for(call(requester, provider, cmd, args), 30)  # answered at once, not after a wait
        assert not any(p.done() for p in pending)
    await call(requester, provider, "/agora/alloc/cancel", {"alloc_id": alloc_id})
    for reply in await asyncio.wait_for(asyncio.gather(*pending), 30):
        assert reply["status"]["state"] == "cancelled"
    assert provider.manager.long_polls.waiting(requester.did) == 0 and len(provider.manager.long_polls) == 0
