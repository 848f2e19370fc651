"""Ledger throughput: balanced transfers per second through the ledger API vs bare SQLite inserts, in one run.

    .venv/bin/python bench/ledger.py [--n 5000] [--jetstream] [--smoke]

agora: `InternalLedgerSettlement.transfer` between two funded wallets, each with a fresh idempotency key,
on a `SqliteJournalStore` (WAL, synchronous=NORMAL, one worker thread): authorization, the idempotency
lookup, planning, every rule of the books, the entry's SHA-256 over its DAG-CBOR form, and a
compare-and-append transaction (BEGIN IMMEDIATE, read the last seq, INSERT, COMMIT) per transfer.
raw: the same rows (seq, id, the same encoded bodies) INSERTed and committed one by one into the same kind
of file, on the calling thread, with no checks at all: what the disk and SQLite cost on their own.
Also: the escrow lock -> release round trip (a dual-signed metering receipt checked on release), p50,
on the same journal, and with `--jetstream` the transfer rate on a local hub's JetStream stream (R1).
Target: >= 2,000 transfers/s through the API.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from agora.clock import SystemClock
from agora.codec import CID
from agora.identity import Keypair
from agora.ledger import Entry, InternalLedgerSettlement, JournalStore, Ledger, SqliteJournalStore
from agora.wire import OutputDigest, UsageReceipt
from agora.wire.settle import countersign

OPERATOR, ALICE, BOB = Keypair.generate(), Keypair.generate(), Keypair.generate()


async def transfers(bank: InternalLedgerSettlement, n: int, tag: str) -> float:
    await bank.mint(ALICE.did, 10 * n, actor=OPERATOR.did, idem=f"{tag}-fund")
    t0 = time.perf_counter()
    for i in range(n):
        await bank.transfer(ALICE.did, BOB.did, 1, actor=ALICE.did, idem=f"{tag}-{i}")
    return time.perf_counter() - t0


def raw_inserts(path: Path, entries: list[Entry]) -> float:
    rows = [(e.seq, e.id, e.encode()) for e in entries]
    with contextlib.closing(sqlite3.connect(str(path), isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("CREATE TABLE journal (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, body BLOB NOT NULL)")
        t0 = time.perf_counter()
        for row in rows:
            conn.execute("BEGIN")
            conn.execute("INSERT INTO journal (seq, id, body) VALUES (?, ?, ?)", row)
            conn.execute("COMMIT")
        return time.perf_counter() - t0


def receipt(contract: str, amount: int) -> bytes:
    usage = UsageReceipt.issue(
        BOB,
        alloc_id=f"alloc-{contract}",
        requester=ALICE.did,
        job="bench",
        task="main",
        engine="wasm",
        exit_code=0,
        reason="exited",
        error_code=None,
        started_at=1.0,
        ended_at=2.0,
        wall_s=1.0,
        cpu_s=1.0,
        peak_memory_bytes=0,
        outputs=[OutputDigest(name="out", path="out", sha256="a" * 64, size=1)],
        invocation=CID.of(b"bench start invocation"),
        iat=1,
    )
    return countersign(ALICE, usage, contract=contract, units=1, total=1, amount=amount, iat=2)


async def lock_release(bank: InternalLedgerSettlement, rounds: int) -> list[float]:
    receipts = [receipt(f"c{i}", 5) for i in range(rounds)]  # signed beforehand: the requester's side
    out: list[float] = []
    for i, raw in enumerate(receipts):
        t0 = time.perf_counter()
        await bank.lock(f"c{i}", ALICE.did, BOB.did, 5, actor=ALICE.did, idem=f"lock-{i}")
        await bank.release(f"c{i}", raw, actor=BOB.did, idem=f"rel-{i}")
        out.append(time.perf_counter() - t0)
    return out


async def on_jetstream(n: int, tmp: Path) -> float:
    from agora.ledger.journal_jetstream import JetStreamJournalStore
    from agora.transport import HubConfig, HubProcess, NatsTransport

    async with HubProcess(HubConfig(home=tmp / "hub")) as hub:
        t = NatsTransport(OPERATOR.did, [hub.url], keypair=OPERATOR)
        await t.start()
        try:
            store: JournalStore = JetStreamJournalStore(t.nats_client)
            bank = InternalLedgerSettlement(Ledger(store), OPERATOR.did)
            return await transfers(bank, n, "js")
        finally:
            await t.close()


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="agora-bench-ledger-") as tmp_name:
        tmp = Path(tmp_name)
        store = SqliteJournalStore(tmp / "ledger.db")
        bank = InternalLedgerSettlement(Ledger(store, clock=SystemClock()), OPERATOR.did)
        try:
            await transfers(bank, max(10, args.n // 20), "warm")  # warm the file, the thread, the caches
            agora_s = await transfers(bank, args.n, "run")
            written = await store.read(0, 10 * args.n)
            rt = await lock_release(bank, args.rounds)
            report = await bank.verify()
        finally:
            await store.close()
        raw_s = raw_inserts(tmp / "raw.db", written[-args.n :])
        js_s = await on_jetstream(args.n, tmp) if args.jetstream else None
    agora_rate, raw_rate = args.n / agora_s, args.n / raw_s
    print(f"transfers: {args.n}, journal entries verified: {report.entries} (ok={report.ok})")
    print(f"bare SQLite inserts (same rows):        {raw_rate:10.0f} /s")
    print(f"agora ledger transfers (SQLite, idem):  {agora_rate:10.0f} /s (target >= 2,000 /s)")
    if js_s is not None:
        print(f"agora ledger transfers (JetStream R1):  {args.n / js_s:10.0f} /s")
    print(
        f"escrow lock->release round trip: p50 {statistics.median(rt) * 1000:.2f} ms "
        f"(p90 {sorted(rt)[int(0.9 * (len(rt) - 1))] * 1000:.2f} ms, {len(rt)} rounds, in process)"
    )
    print(f"ratio agora/raw: {agora_rate / raw_rate:.1%} (transfers through the API vs bare inserts)")
    return 0 if report.ok else 1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--jetstream", action="store_true", help="also measure the journal on a local hub")
    ap.add_argument("--smoke", action="store_true", help="a handful of transfers: checks the benchmark runs")
    args = ap.parse_args()
    if args.smoke:
        args.n, args.rounds = 40, 5
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
