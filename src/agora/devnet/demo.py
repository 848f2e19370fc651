"""What `make demo` shows: a devnet of a hub and 3 nodes, discovery, signed pings through the hub,
messages a node refuses (forged, replayed) with their error codes, remote jobs on a grant, then the market
(the index, a job placed by bids with its `why`, a job too big for any node, a job that waits in the queue
until a bigger node joins) between two looks at the money (the hub's ledger: the devnet's funding, issued by
the hub operator, and the balances before and after the market, the chain verified by a node), and a clean
teardown. Every wait is for an event or a state, bounded in time."""

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
from agora.devnet.demo_training import training_section
from agora.devnet.launcher import add_node, down, load_state, up
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
    say(f"== {title} {'=' * max(0, 70 - len(title))}".rstrip())


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
        before = money_before(state)
        market_section(state, root)
        money_after(load_state(Path(state["dir"])), before)  # devnet.json now lists the node that joined
        training_section(state, root)  # 7. federated learning (devnet/demo_training.py)
        inference_section(state)
        return 0
    except AgoraError as err:
        say(f"demo failed: {err.code}: {err.message}\nhint: {err.hint}")
        return 1
    finally:
        if state is not None:
            section("9. tear down")
            stopped = down(root)  # devnet.json lists the node the market part added too
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
        section(f"5. jobs 1/4: what {one['name']} offers, and a grant for {two['name']}")
        res = c1.resources()
        say(f"  {one['name']}: {res['describe']}")
        for engine, av in res["executors"].items():
            say(f"    {engine:<12} {'available' if av['available'] else 'unavailable: ' + av['reason']}")
        g = c1.grant(two["did"], ttl_s=3600)
        say(f"  {one['name']} signed a delegation {g['cid'][:24]}… ({g['cmd']}) for {two['name']}")
        say(f"  offered to {two['name']} over the hub: {'delivered' if g['delivered'] else 'NOT delivered'}")

        section(f"5. jobs 2/4: a wasm job on {one['name']}, submitted by {two['name']}")
        module = root / "hello.wasm"
        module.write_bytes(wasmtime.wat2wasm(HELLO_WAT))
        _show_result(_run_job(c2, _wasm_spec(module), one["did"], root))

        section(f"5. jobs 3/4: a process job (bubblewrap sandbox) on {one['name']}, from {two['name']}")
        if res["executors"]["process"]["available"]:
            _show_result(_run_job(c2, PROCESS_SPEC, one["did"], root))
        else:
            why = res["executors"]["process"]["reason"]
            say(f"  skipped: the process executor is unavailable on {one['name']}: {why}")

        section(f"5. jobs 4/4: {three['name']} has no delegation from {one['name']}")
        doc = _run_job(c3, _wasm_spec(module), one["did"], root)
        err = doc.get("error")
        if err:
            say(f"  job {doc['id']}: {doc['state']} -> {err.get('code')}")
            say(f"  hint: {err.get('hint')}")
        else:  # without a grant, --node makes that node the market's only candidate: its bid carries the proof
            say(f"  job {doc['id']}: {doc['state']}: with no grant, --node made {one['name']} the only candidate")
            say(f"  of the market; {one['name']} bid, and the bid's delegation (this one job only) was the proof")
    finally:
        for c in (c1, c2, c3):
            c.close()


# == the market: offers, the hub's index, placement by bids, why, the pending queue ===========================

ENDED = ("completed", "failed", "cancelled")
SLICE = {"cpu_millis": 1000, "memory_bytes": 1 << 30}  # what each first node sells in the market part


def _wait_until(probe: Any, ready: Any, what: str, timeout: float = 60.0) -> Any:
    """Call `probe()` until `ready(value)` holds (a state the demo waits for), at most `timeout` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = probe()
        if ready(value):
            return value
        if time.monotonic() > end:
            raise AgoraError("timeout", f"the demo waited {timeout:.0f} s for {what}")
        time.sleep(0.1)


def _sell_slice(client: AgoraClient, price: int) -> dict[str, Any]:
    """Sell a slice of the machine (one core, 1 GiB) at `price` per cpu-second and per GiB-second, then
    withdraw the default offer `--sell` made (the new offer first: the node is never out of the index)."""
    before = client.offers(state="active")
    template = before[0]["offer"]
    base = {**template["price"]["base"], "cpu_second": price, "memory_gib_second": price}
    doc = client.create_offer(
        {
            "kind": "resources",
            "resources": {**template["resources"], **SLICE},
            "price": {"base": base, "engines": {}},
            "terms": template["terms"],
        }
    )
    for old in before:
        client.withdraw_offer(old["offer_id"])
    return doc


def _show_market(market: dict[str, Any], names: dict[str, str]) -> None:
    say(f"  $ agora market   ({len(market['providers'])} providers in the hub's bucket {market['bucket']})")
    say(f"    {'PROVIDER':<8} {'OFFER':<20} {'FREE CPU':>8} {'FREE MEM':>9} {'PRICE':<22} {'EXECUTORS':<14} AGE")
    for p in sorted(market["providers"], key=lambda p: names.get(p["provider"], p["provider"])):
        base = p["price"]["base"]
        price = f"{base['cpu_second']}/cpu-s {base['memory_gib_second']}/GiB-s"
        engines = ",".join(e for e, st in sorted(p["executors"].items()) if st["available"])
        free = p["free"]
        say(
            f"    {names.get(p['provider'], short(p['provider'])):<8} {p['offer_id']:<20} "
            f"{free.get('cpu_millis', 0) / 1000:>6g} c {free.get('memory_bytes', 0) / (1 << 30):>5.1f} GiB "
            f"{price:<22} {engines:<14} {p['age_s']:.0f}s"
        )
    ignored = {k: v for k, v in market["ignored"].items() if v}
    say("    every ad verified by the reader" + (f"; ignored: {ignored}" if ignored else "; none ignored"))


def _market_spec(module: Path, name: str, resources: dict[str, str], **extra: Any) -> dict[str, Any]:
    """The demo's wasm job with `resources`, placed `cheapest`: the lowest quotes are asked for bids whatever
    the benchmark scores (a node that just joined may not have one yet), so the outcome is the same every run."""
    spec = _wasm_spec(module)
    spec["name"] = name
    spec["tasks"][0]["resources"] = resources
    return {**spec, "placement": {"strategy": "cheapest"}, **extra}


def _last_round(why: dict[str, Any]) -> dict[str, Any]:
    unit = next(iter(why["units"].values()))
    return dict(unit["last"] or {})


def _show_why(why: dict[str, Any], names: dict[str, str], *, candidates: bool) -> None:
    last = _last_round(why)
    say(f"  $ agora job why {why['id']}")
    say(f"    {why['summary']}")
    decision = last.get("decision", {})
    if candidates:
        for cand in decision.get("candidates", []):
            text = "; ".join(r["text"] for r in cand["reasons"]) or f"passes, quote {cand['quote']}"
            said = cand.get("outcome", cand["verdict"])  # what became of it in the round (placed, bid, ...)
            say(f"    {names.get(cand['provider'], short(cand['provider'])):<8} {said:<8} {text}")
    for b in last.get("bids", []):
        say(f"    bid from {names.get(b['provider'], short(b['provider']))}: {b['price']}")
    for d in last.get("declines", []):
        reasons = "; ".join(f"{r['code']}: {r['text']}" for r in d["reasons"])
        say(f"    declined by {names.get(d['provider'], short(d['provider']))}: {reasons}")
    if last.get("blocking"):
        say("    blocked by: " + ", ".join(f"{code} x{n}" for code, n in last["blocking"].items()))
    for s in decision.get("what_would_fit", []):
        say(f"    would fit on {names.get(s['provider'], short(s['provider']))}: {s['text']}")
    if decision.get("hint"):
        say(f"    hint: {decision['hint']}")


def _wait_pending(client: AgoraClient, job_id: str) -> dict[str, Any]:
    """The job once it waits in the queue with its reasons (after its first placement round)."""
    doc: dict[str, Any] = _wait_until(
        lambda: client.job(job_id),
        lambda d: d["state"] in ENDED or (d["state"] == "pending" and bool((d.get("queue") or {}).get("blocking"))),
        f"job {job_id} to wait in the queue",
    )
    if doc["state"] != "pending":
        raise AgoraError("internal", f"job {job_id} ended {doc['state']} instead of waiting: {doc.get('error')}")
    return doc


def _wait_end(client: AgoraClient, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    """The job's record once it ended (each request is held by the node until the end, at most 10 s)."""
    doc: dict[str, Any] = _wait_until(
        lambda: client.job(job_id, wait=10.0), lambda d: d["state"] in ENDED, f"job {job_id} to end", timeout
    )
    return doc


def market_section(state: dict[str, Any], root: Path) -> None:
    nodes = list(state["nodes"])
    names = {m["did"]: m["name"] for m in [state["hub"], *nodes]}
    requester = nodes[1]
    module = root / "hello.wasm"
    c = AgoraClient(requester["api"])
    try:
        section("6. money and the market 2/6: offers and the hub's index of capacity ads")
        say("  the devnet's nodes sell (--sell): each publishes a signed capacity ad to the hub's JetStream index.")
        say("  each now sells a slice of its machine (1 core, 1 GiB) at its own price:")
        offers: dict[str, str] = {}
        for i, m in enumerate(nodes):
            with AgoraClient(m["api"]) as cm:
                doc = _sell_slice(cm, price=2 + i)
            offers[m["did"]] = doc["offer_id"]
            say(f"    {m['name']}: offer {doc['offer_id']} at {2 + i}/cpu-s and {2 + i}/GiB-s")
        market = _wait_until(
            c.market,
            lambda mk: {p["provider"]: p["offer_id"] for p in mk["providers"]} == offers,
            "every node's new offer in the index",
        )
        _show_market(market, names)

        section(f"6. money and the market 3/6: a job with no --node and no grant, from {requester['name']}")
        job = c.submit_job(
            _market_spec(module, "demo-market", {"cpu": "500m", "memory": "32Mi", "disk": "8Mi"}), base_dirs=[str(root)]
        )
        say(f"  $ agora job run demo-market.yaml   (strategy cheapest; {job['id']}: matching, bids, award, commit)")
        doc = _wait_end(c, job["id"])
        why = c.job_why(job["id"])
        last = _last_round(why)
        provider = last.get("provider")
        say(f"  placed by the market on {names.get(provider or '', provider)} at {last.get('price')} (minor units)")
        _show_why(why, names, candidates=False)
        _show_result(doc)

        section("6. money and the market 4/6: a job too big for any node (16 cores, 256 GiB)")
        big = c.submit_job(
            _market_spec(module, "demo-too-big", {"cpu": "16", "memory": "256Gi", "disk": "8Mi"}, deadline=600),
            base_dirs=[str(root)],
        )
        doc = _wait_pending(c, big["id"])
        queue = doc["queue"]
        say(f"  job {big['id']}: {doc['state']} (position {queue['position']} of {queue['of']} in the queue)")
        _show_why(c.job_why(big["id"]), names, candidates=True)
        c.cancel_job(big["id"])
        doc = _wait_end(c, big["id"])
        say(f"  $ agora job cancel {big['id']}  ->  {doc['state']}")

        section("6. money and the market 5/6: a job waits in the queue, then runs when a bigger node joins")
        waits = c.submit_job(
            _market_spec(module, "demo-waits", {"cpu": "500m", "memory": "2Gi", "disk": "8Mi"}, deadline=600),
            base_dirs=[str(root)],
        )
        doc = _wait_pending(c, waits["id"])
        queue = doc["queue"]
        say(
            f"  job {waits['id']} needs 2 GiB, every node sells 1 GiB: {doc['state']}, position {queue['position']}"
            f" of {queue['of']}, blocked by " + ", ".join(f"{k} x{n}" for k, n in queue["blocking"].items())
        )
        _show_why(c.job_why(waits["id"]), names, candidates=False)
        devnet_dir = Path(state["dir"])
        member = add_node(devnet_dir)
        names[member["did"]] = member["name"]
        say(
            f"  {member['name']} joins the devnet ({short(member['did'])}), selling its machine at the default"
            " prices (--sell)"
        )
        market = _wait_until(
            c.market, lambda mk: any(p["provider"] == member["did"] for p in mk["providers"]), "the new node's ad"
        )
        _show_market(market, names)
        doc = _wait_end(c, waits["id"])
        why = c.job_why(waits["id"])
        last = _last_round(why)
        provider = last.get("provider")
        say(f"  job {waits['id']}: {doc['state']} on {names.get(provider or '', provider)} at {last.get('price')}")
        t0 = doc["history"][0]["at"]
        moves = ", ".join(f"{h['state']} +{h['at'] - t0:.1f}s" for h in doc["history"])
        say(f"    states: {moves}")
        _show_result(doc)
    finally:
        c.close()


# == money: the hub's ledger ===================================================================================


def _postings(entry: dict[str, Any], names: dict[str, str]) -> str:
    def name(account: str) -> str:
        owner = account.split(":", 1)[1] if account.startswith("wallet:") else None
        return names.get(owner, short(owner)) if owner else account

    return ", ".join(f"{name(p['account'])} {p['amount']:+,}" for p in entry["postings"])


def _balances(state: dict[str, Any]) -> dict[str, int]:
    members = [state["hub"], *state["nodes"]]
    with AgoraClient(state["hub"]["api"]) as hub:
        return {m["did"]: hub.balance(m["did"])["balance"] for m in members}


def money_before(state: dict[str, Any]) -> dict[str, int]:
    """The hub's ledger as the market finds it: what `devnet up` issued, a member's refused mint, the balances."""
    members = [state["hub"], *state["nodes"]]
    names = {m["did"]: m["name"] for m in members}
    section("6. money and the market 1/6: the hub runs the ledger; the hub operator funded every member")
    say("  the hub node keeps a hash-chained, append-only journal in its JetStream stream; every node calls it")
    say("  with invocations it signs, so a node moves only its own money and only the operator issues money.")
    requester = state["nodes"][1]
    with AgoraClient(requester["api"]) as c:
        entries = c.ledger_entries("all")["entries"]
        say(f"  $ agora ledger entries all   (on {requester['name']}: {len(entries)} entries, each id checked)")
        for e in entries:
            actor = names.get(e["actor"], short(e["actor"]))
            say(f"    entry {e['seq']} {e['kind']} by {actor}: {_postings(e, names)}  ({e['memo']})")
        try:
            c.mint(requester["did"], 1_000_000, memo="free money")
            say("  a member's mint was accepted: THIS IS A BUG")
        except AgoraError as err:
            say(f"  $ agora ledger mint {short(requester['did'])} 1000000   (on {requester['name']})  ->  {err.code}")
    before = _balances(state)
    say("  balances before the market (minor units):")
    for m in members:
        say(f"    {m['name']:<7} {before[m['did']]:>10,}")
    return before


def money_after(state: dict[str, Any], before: dict[str, int]) -> None:
    """Balances after the market's jobs, and `agora ledger verify` on the requester: the node fetches the
    whole journal and walks the chain itself (hash links, ids, every rule, sum 0)."""
    members = [state["hub"], *state["nodes"]]
    section("6. money and the market 6/6: balances after the market, and the chain verified by a node")
    after = _balances(state)
    say(f"    {'MEMBER':<7} {'BEFORE':>10} {'AFTER':>10} {'CHANGE':>8}")
    for m in members:
        was = before.get(m["did"])
        now = after[m["did"]]
        if was is None:
            say(f"    {m['name']:<7} {'-':>10} {now:>10,} {'':>8}  (joined; funded by the operator)")
        else:
            say(f"    {m['name']:<7} {was:>10,} {now:>10,} {now - was:>+8,}")
    requester = state["nodes"][1]
    names = {m["did"]: m["name"] for m in members}
    with AgoraClient(requester["api"]) as c:
        contract_timeline(c, names)
        report = c.ledger_verify()
    verdict = "ok" if report["ok"] else "FAILED"
    agree = "agrees" if report["agrees"] else "DISAGREES"
    say(f"  $ agora ledger verify   (on {requester['name']})")
    say(f"    ledger {verdict}: {report['entries']} entries, sum {report['sum']}; the hub's own check {agree}")
    if not (report["ok"] and report["agrees"]):
        raise AgoraError(
            "ledger_corrupt", "the demo's ledger does not verify", details={"problems": report["problems"]}
        )


def _cited(value: Any) -> str:
    """A short form of what a timeline step cites (a CID, an id, a list of entry ids)."""
    if isinstance(value, list):
        return "[" + ", ".join(str(v)[:16] for v in value) + "]"
    return str(value)[:24]


def contract_timeline(c: AgoraClient, names: dict[str, str]) -> None:
    """One market contract of the requester, released against the receipt both parties signed: its timeline
    in order (what `agora contract show ID` prints), each step with its actor and its evidence."""
    released = c.contracts(state="escrow_released", limit=50)
    if not released:
        raise AgoraError("contract_not_found", "the demo's market jobs left no released contract")
    doc = c.contract(released[-1]["contract_id"])  # the oldest: the first job the market placed
    provider = names.get(doc["provider"], short(doc["provider"]))
    say(f"  $ agora contract show {doc['contract_id']}   (job {doc['job_id']}, on {provider})")
    terms = f"price {doc['price']:,}, escrow {doc['escrow_amount']:,} ({doc['payment_mode']})"
    say(f"    {terms}, released {doc['released']:,}")
    t0 = doc["timeline"][0]["at"] if doc["timeline"] else 0.0
    for e in doc["timeline"]:
        actor = names.get(e["actor"], short(e["actor"]))
        cites = ", ".join(f"{k}={_cited(v)}" for k, v in e["evidence"].items())
        say(f"    +{e['at'] - t0:7.3f}s  {e['event']:<18} by {actor}" + (f"  [{cites}]" if cites else ""))


# == inference: a model sold through the market, metered and paid ==========================================


def inference_section(state: dict[str, Any]) -> None:
    """node-1 serves the builtin offline model (the mock when its packages are missing); node-2 asks the
    network, gets the answer with the provider's signed metering record (verified), and pays for it."""
    from agora.inference.runner_builtin import CHAT_MODEL, available

    section("8. inference: a model offer, a quote, a metered and paid answer")
    provider, requester = state["nodes"][0], state["nodes"][1]
    builtin = available()[CHAT_MODEL] is None
    model, runner = (CHAT_MODEL, "builtin") if builtin else ("mock-chat", "mock")
    with AgoraClient(provider["api"]) as p, AgoraClient(requester["api"]) as r:
        p.model_add(model, kind="chat", context=2048, price_in=10, price_out=20, runner=runner)
        say(f"  {provider['name']} serves {model} ({runner} runner) at 10 in / 20 out per 1k tokens")
        _wait_until(
            r.models,
            lambda m: any(x["model"] == model for x in m["models"]),
            f"{model} in the market index",
        )
        q = r.quote(model, est_in=20, est_out=16)["quotes"][0]
        say(f"  signed quote from {short(q['provider'])}: at most {q['max_total']}, valid until {q['valid_until']}")
        # answered under that quote, by the provider that signed it (the index is not read again)
        out = r.infer("What is the capital of France?", model=model, max_tokens=16, quote=q["cid"])
        m = out["metering"]
        say(f"  {requester['name']} asked: What is the capital of France?")
        say(f"  answer: {out['text'].strip()}")
        say(
            f"  inference metering: {m['tokens_in']} in / {m['tokens_out']} out tokens, ttft {m['ttft_ms']} ms, "
            f"price {m['price']}, record {m['cid'][:20]}… verified"
        )
        say(f"  inference paid: {out['paid']} from {requester['name']} to {provider['name']}")


if __name__ == "__main__":
    sys.exit(main())
