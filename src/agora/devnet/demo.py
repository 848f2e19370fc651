"""What `make demo` shows: a devnet of a hub and 3 nodes, discovery, signed pings through the hub,
messages a node refuses (forged, replayed) with their error codes, and a clean teardown."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agora.actor import Runtime
from agora.client import AgoraClient
from agora.devnet.launcher import down, up
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.transport import NatsTransport
from agora.wire import Receipt


def say(text: str = "") -> None:
    print(text, flush=True)


def short(did: str) -> str:
    return f"{did[:14]}…{did[-6:]}"


def section(title: str) -> None:
    say()
    say(f"== {title} " + "=" * max(0, 70 - len(title)))


async def _send_raw(runtime: Runtime, target: str, data: bytes) -> Receipt:
    reply = await runtime.transport.request(target, data, 5.0)
    return Receipt.decode(reply, expected_issuer=target)


async def refused_messages(hub_url: str, target: str) -> list[tuple[str, str]]:
    """An outsider joins the hub with its own key and sends what a node must refuse."""
    outsider = Keypair.generate()
    transport = NatsTransport(outsider.did, [hub_url], keypair=outsider)
    await transport.start()
    runtime = Runtime(outsider, transport)
    shown = []
    try:
        # 1. a forged invocation: valid shape, one bit of the signature flipped
        good = runtime.build_request(target, "/agora/node/ping", {"echo": "forged"})
        data = bytearray(good.encode())
        at = data.find(good.invocation.raw) + 5  # envelope = [sig(64 bytes), payload]: byte 5 is in the signature
        data[at] ^= 0x01
        receipt = await _send_raw(runtime, target, bytes(data))
        shown.append(("forged signature", receipt.error.code if receipt.error else "ACCEPTED?!"))
        # 2. a replay: the same valid invocation sent twice
        valid = runtime.build_request(target, "/agora/node/ping", {"echo": "once"}).encode()
        first = await _send_raw(runtime, target, valid)
        second = await _send_raw(runtime, target, valid)
        shown.append(("valid ping", "ok" if first.is_ok else first.error.code if first.error else "?"))
        shown.append(("same ping replayed", second.error.code if second.error else "ACCEPTED?!"))
        # 3. a command nobody delegated to this outsider
        denied = await runtime.call_receipt(target, "/agora/node/secret", {})
        shown.append(("unknown command", denied.error.code if denied.error else "ACCEPTED?!"))
    finally:
        await transport.close()
    return shown


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="agora-demo-"))
    say("agora demo: a local devnet (one hub, three nodes), all on 127.0.0.1")
    t0 = time.perf_counter()
    state: dict[str, Any] | None = None
    try:
        section("1. start the devnet")
        state = up(3, root)
        members = [state["hub"], *state["nodes"]]
        say(f"up in {time.perf_counter() - t0:.1f}s — hub at {state['hub_url']}, state in {root / 'devnet.json'}")
        for m in members:
            say(f"  {m['name']:<7} {m['did']}  api {m['api']}")

        section("2. discovery: who sees whom")
        for m in members:
            with AgoraClient(m["api"]) as c:
                peers = c.peers(status="alive")
            names = sorted(next(x["name"] for x in members if x["did"] == p["did"]) for p in peers)
            say(f"  {m['name']:<7} sees {len(peers)} peers: {', '.join(names)}")

        section("3. signed pings through the hub (UCAN invocation -> signed receipt)")
        nodes = state["nodes"]
        for i, src in enumerate(nodes):
            dst = nodes[(i + 1) % len(nodes)]
            with AgoraClient(src["api"]) as c:
                rtts = c.ping(dst["did"], count=20)
            say(
                f"  {src['name']} -> {dst['name']}: 20 round trips, median {statistics.median(rtts):.2f} ms, "
                f"min {min(rtts):.2f} ms, max {max(rtts):.2f} ms"
            )

        section("4. messages a node refuses, before any behavior runs")
        target = nodes[0]
        for what, code in asyncio.run(refused_messages(state["hub_url"], target["did"])):
            say(f"  {what:<20} -> {code}")
        with AgoraClient(target["api"]) as c:
            metrics = c.metrics()
        rejects = re.findall(r'^agora_rejects_total\{code="([^"]+)"\} (\S+)', metrics, re.M)
        say(f"  {target['name']} counted rejects: " + ", ".join(f"{code}={float(n):g}" for code, n in rejects))
        jobs_section(state, root)
        return 0
    except AgoraError as err:
        say(f"demo failed: {err.code}: {err.message}\nhint: {err.hint}")
        return 1
    finally:
        if state is not None:
            section("5. tear down")
            stopped = down(root)
            say(f"  stopped {len(stopped)} processes: {', '.join(stopped)}")
        if os.environ.get("AGORA_DEMO_KEEP"):
            say(f"  kept {root} (AGORA_DEMO_KEEP is set)")
        else:
            shutil.rmtree(root, ignore_errors=True)


# == jobs: remote wasm and process jobs with signed usage receipts ===========================================

# A WASI command in WAT (compiled here with wasmtime.wat2wasm, so the demo needs no C compiler): it prints
# a greeting and writes /outputs/greeting.txt (fd 4 is the preopened /outputs).
HELLO_WAT = r"""
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "greeting.txt")
  (data (i32.const 200) "hello from a wasm task on a remote node\n")
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (call $write (i32.const 1) (i32.const 200) (i32.const 40))
    (drop (call $path_open (i32.const 4) (i32.const 0) (i32.const 100) (i32.const 12) (i32.const 9)
      (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 16)))
    (call $write (i32.load (i32.const 16)) (i32.const 200) (i32.const 40))))
"""


def _wasm_spec(module: Path) -> dict[str, Any]:
    return {
        "name": "demo-wasm",
        "tasks": [
            {
                "name": "hello",
                "engine": "wasm",
                "module": str(module),
                "resources": {"cpu": "500m", "memory": "32Mi", "disk": "8Mi"},
                "timeout": 30,
                "outputs": [{"name": "greeting", "path": "/outputs/greeting.txt"}],
            }
        ],
    }


PROCESS_SPEC: dict[str, Any] = {
    "name": "demo-process",
    "tasks": [
        {
            "name": "count",
            "engine": "process",
            "command": [
                "/bin/sh",
                "-c",
                'for i in 1 2 3; do echo "line $i from $(hostname)"; done; uname -s > /work/outputs/os.txt',
            ],
            "resources": {"cpu": "500m", "memory": "64Mi", "disk": "8Mi"},
            "timeout": 30,
        }
    ],
}


def _run_job(client: AgoraClient, spec: dict[str, Any], node: str, base: Path) -> dict[str, Any]:
    """Submit, print the log lines as they come, return the final record."""
    job = client.submit_job(spec, node=node, base_dirs=[str(base)])
    say(f"  submitted {job['id']} ({spec['name']}) to {short(node)}")
    after = 0
    for _ in range(100):  # each round waits up to 2 s for news
        page = client.job_logs(job["id"], after=after, wait=2.0)
        for line in page["lines"]:
            if line["stream"] in ("stdout", "stderr"):
                say(f"    [{line['task']}:{line['stream']}] {line['line']}")
        after = page["next"]
        if page["done"]:
            break
    return client.job(job["id"], wait=10.0)


def _show_result(doc: dict[str, Any]) -> None:
    say(f"  job {doc['id']}: {doc['state']}")
    for unit in doc["units"]:
        for out in unit["outputs"]:
            content = Path(out["local_path"]).read_text(errors="replace").strip()
            say(f"    output {out['path']} ({out['size']} B, sha256 {out['sha256'][:16]}…): {content!r}")
        r = unit.get("receipt")
        if r:
            end = f"exit {r['exit_code']}" if r["exit_code"] is not None else r["reason"]
            say(
                f"    usage receipt {r['cid'][:24]}… signed by {short(r['provider'])}: "
                f"task {r['task']} ({r['engine']}), {end}, wall {r['wall_s'] * 1000:.1f} ms, "
                f"cpu {r['cpu_s'] * 1000:.1f} ms, "
                f"peak memory {r['peak_memory_bytes'] // 1024} KiB, {len(r['outputs'])} output hash(es)"
            )


def jobs_section(state: dict[str, Any], root: Path) -> None:
    import wasmtime

    one, two, three = state["nodes"][:3]
    c1, c2, c3 = AgoraClient(one["api"]), AgoraClient(two["api"]), AgoraClient(three["api"])
    try:
        section(f"jobs 1/4: what {one['name']} offers, and a grant for {two['name']}")
        res = c1.resources()
        say(f"  {one['name']}: {res['describe']}")
        for engine, av in res["executors"].items():
            say(f"    {engine:<12} {'available' if av['available'] else 'unavailable: ' + av['reason']}")
        g = c1.grant(two["did"], ttl_s=3600)
        say(f"  {one['name']} signed a delegation {g['cid'][:24]}… ({g['cmd']}) for {two['name']}")
        say(f"  offered to {two['name']} over the hub: {'delivered' if g['delivered'] else 'NOT delivered'}")

        section(f"jobs 2/4: a wasm job on {one['name']}, submitted by {two['name']}")
        module = root / "hello.wasm"
        module.write_bytes(wasmtime.wat2wasm(HELLO_WAT))
        _show_result(_run_job(c2, _wasm_spec(module), one["did"], root))

        section(f"jobs 3/4: a process job (bubblewrap sandbox) on {one['name']}, from {two['name']}")
        if res["executors"]["process"]["available"]:
            _show_result(_run_job(c2, PROCESS_SPEC, one["did"], root))
        else:
            why = res["executors"]["process"]["reason"]
            say(f"  skipped: the process executor is unavailable on {one['name']}: {why}")

        section(f"jobs 4/4: {three['name']} has no delegation from {one['name']}")
        doc = _run_job(c3, _wasm_spec(module), one["did"], root)
        err = doc.get("error") or {}
        say(f"  job {doc['id']}: {doc['state']} -> {err.get('code')}")
        say(f"  hint: {err.get('hint')}")
    finally:
        for c in (c1, c2, c3):
            c.close()


if __name__ == "__main__":
    sys.exit(main())
