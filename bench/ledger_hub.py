"""The escrow lock -> release round trip through the hub, vs the same ledger in process, in one run.

    .venv/bin/python bench/ledger_hub.py [--rounds 200] [--n 500] [--smoke]

hub: a payer and a payee, each its own node (runtime + NATS connection to a local hub), call the hub's
ledger service (`LedgerService` on the hub's JetStream journal, R1) through `RemoteSettlement`: the payer
locks (a signed invocation, the service's checks, an expected-sequence append, the signed receipt back),
the payee releases against the dual-signed metering receipt (both signatures checked on the hub), and the
node checks the returned entry's id each time. The hub's public-call rate limit is raised, as a busy
hub's operator would (at the default of 20 calls/s per caller, the limit is what this would measure).
in process: the same two calls on `InternalLedgerSettlement` over the same kind of journal (a JetStream
stream on the same hub), no RPC. Also: transfers per second through the hub. The receipts are signed
beforehand (the requester's side).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from agora.actor import AdmissionSettings, Runtime
from agora.clock import SystemClock
from agora.identity import Keypair
from agora.ledger import InternalLedgerSettlement, Ledger, Settlement
from agora.ledger.journal_jetstream import JetStreamJournalStore
from agora.ledger.remote import RemoteSettlement
from agora.ledger.service import LedgerService
from agora.transport import HubConfig, HubProcess, NatsTransport
from ledger import ALICE, BOB, receipt  # the same parties and metering receipts as bench/ledger.py

HUB = Keypair.generate()
# a hub whose members pay often raises the public-call rate (`--admission-public-rate`, default 20/s per caller)
BUSY_HUB = AdmissionSettings(public_rate=10_000.0, public_burst=10_000.0)


def pct(xs: list[float], q: float) -> float:
    return sorted(xs)[int(q * (len(xs) - 1))]


async def round_trips(payer: Settlement, payee: Settlement, rounds: int, tag: str) -> list[float]:
    receipts = [receipt(f"{tag}{i}", 5) for i in range(rounds)]
    out: list[float] = []
    for i, raw in enumerate(receipts):
        t0 = time.perf_counter()
        await payer.lock(f"{tag}{i}", ALICE.did, BOB.did, 5, actor=ALICE.did, idem=f"{tag}-lock-{i}")
        await payee.release(f"{tag}{i}", raw, actor=BOB.did, idem=f"{tag}-rel-{i}")
        out.append(time.perf_counter() - t0)
    return out


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="agora-bench-ledger-hub-") as tmp:
        async with HubProcess(HubConfig(home=Path(tmp) / "hub")) as hub:
            transports: list[NatsTransport] = []

            async def node(key: Keypair, limits: AdmissionSettings | None = None) -> Runtime:
                t = NatsTransport(key.did, [hub.url], keypair=key)
                await t.start()
                transports.append(t)
                rt = Runtime(key, t, limits=limits)
                await rt.start()
                return rt

            try:
                hub_rt = await node(HUB, BUSY_HUB)
                assert isinstance(hub_rt.transport, NatsTransport)
                journal = JetStreamJournalStore(hub_rt.transport.nats_client)
                service = LedgerService(Ledger(journal, clock=SystemClock()), HUB.did)
                hub_rt.register(service)
                payer = RemoteSettlement(await node(ALICE), [HUB.did])
                payee = RemoteSettlement(await node(BOB), [HUB.did])
                operator = RemoteSettlement(hub_rt, [HUB.did])
                await operator.mint(ALICE.did, 10 * (args.rounds + args.n) + 1000, actor=HUB.did, idem="fund")
                await round_trips(payer, payee, max(3, args.rounds // 10), "warm")
                remote = await round_trips(payer, payee, args.rounds, "hub")
                t0 = time.perf_counter()
                for i in range(args.n):
                    await payer.transfer(ALICE.did, BOB.did, 1, actor=ALICE.did, idem=f"t-{i}")
                remote_rate = args.n / (time.perf_counter() - t0)
                report = await payer.verify()  # the node walks the whole chain itself

                local_journal = JetStreamJournalStore(hub_rt.transport.nats_client, "bench-inproc", subject="bench.x")
                bank = InternalLedgerSettlement(Ledger(local_journal, clock=SystemClock()), HUB.did)
                await bank.mint(ALICE.did, 10 * args.rounds + 1000, actor=HUB.did, idem="fund")
                await round_trips(bank, bank, max(3, args.rounds // 10), "warm")
                local = await round_trips(bank, bank, args.rounds, "in")
            finally:
                for t in reversed(transports):
                    await t.close()
    r50, l50 = statistics.median(remote), statistics.median(local)
    print(f"journal entries verified by the payer's node: {report.entries} (ok={report.ok})")
    lp90, rp90 = pct(local, 0.9) * 1000, pct(remote, 0.9) * 1000
    print(f"escrow lock->release in process (JetStream journal): p50 {l50 * 1000:.2f} ms, p90 {lp90:.2f} ms")
    print(f"escrow lock->release through the hub (2 signed RPCs): p50 {r50 * 1000:.2f} ms, p90 {rp90:.2f} ms")
    print(f"transfers through the hub: {remote_rate:.0f} /s ({args.n} sequential, one payer)")
    print(f"p50 ratio hub/in-process: {r50 / l50:.2f}x ({args.rounds} rounds each)")
    return 0 if report.ok else 1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--smoke", action="store_true", help="a handful of rounds: checks the benchmark runs")
    args = ap.parse_args()
    if args.smoke:
        args.rounds, args.n = 5, 10
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
