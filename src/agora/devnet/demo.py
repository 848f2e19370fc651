"""What `make demo` shows: a devnet of a hub and 3 nodes, discovery, signed pings through the hub,
messages a node refuses (forged, replayed) with their error codes, and a clean teardown."""

from __future__ import annotations

import asyncio
import re
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
        return 0
    except AgoraError as err:
        say(f"demo failed: {err.code}: {err.message}\nhint: {err.hint}")
        return 1
    finally:
        if state is not None:
            section("5. tear down")
            stopped = down(root)
            say(f"  stopped {len(stopped)} processes: {', '.join(stopped)}")


if __name__ == "__main__":
    sys.exit(main())
