"""Federated softmax regression on load_digits, 5-way split: agora (sandboxed warm trainers, signed and
verified updates, every update paid from escrow) vs the same FedAvg in one process with numpy (the floor),
and vs Flower when `flwr` is installed (the `bench-fl` extra; never a default dependency).

    .venv/bin/python bench/fl.py [--rounds 10] [--providers 5]
    .venv/bin/python bench/fl.py --smoke       # 2 rounds, for the test suite

The agora side runs the real code path of a run: `FlProvider` per data provider (its data set in its own
`DatasetBook`, a bubblewrap-sandboxed trainer process kept warm for the contract), `TrainingRun` on the
owner (FedAvg, update checks, receipts verified, per-round escrow released on an internal ledger). The
providers are reached in-process (`LocalLink`), so the figure is the sandbox + signing + verification +
payment cost, not the network's. Printed: time per round (median), total, final accuracy on the held-out
20%, peak RSS of this process plus its children (the trainers), and the ratio agora/floor.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from sklearn.datasets import load_digits

from agora.clock import SystemClock
from agora.fl.datasets import DatasetBook
from agora.fl.rounds import EscrowPayer, FlProvider, LocalLink, Participant, TrainingRun
from agora.fl.strategies import FedAvg, Update
from agora.fl.trainers import SoftmaxRegression
from agora.identity import Keypair
from agora.ledger import InternalLedgerSettlement, Ledger, MemoryJournalStore
from agora.models.training import training_from_dict
from agora.store import MemoryStore

HYPER = {"learning_rate": 0.5, "local_epochs": 1, "batch_size": 32, "seed": 0}
FEATURES = [f"p{i}" for i in range(64)]


def split(providers: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    order = np.random.default_rng(0).permutation(len(y))
    held = len(y) // 5
    test, train = order[:held], order[held:]
    parts = [(x[p], y[p]) for p in np.array_split(train, providers)]
    return parts, x[test], y[test]


def accuracy(params: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    return SoftmaxRegression(x, y, classes=10).evaluate(params, {})[2]["accuracy"]


def rss_tree() -> int:
    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


def floor(parts: list[tuple[np.ndarray, np.ndarray]], rounds: int, xt: np.ndarray, yt: np.ndarray) -> dict:
    trainers = [SoftmaxRegression(x, y, classes=10, hyper=HYPER) for x, y in parts]
    params = trainers[0].get_parameters({})
    times = []
    start = time.perf_counter()
    for r in range(1, rounds + 1):
        t0 = time.perf_counter()
        updates = []
        for t in trainers:
            p, n, _ = t.fit(params, {"round": r})
            updates.append(Update(p, n))
        params = FedAvg().aggregate(updates)
        times.append(time.perf_counter() - t0)
    return {
        "per_round": statistics.median(times),
        "total": time.perf_counter() - start,
        "accuracy": accuracy(params, xt, yt),
    }


async def agora_run(parts: list[tuple[np.ndarray, np.ndarray]], rounds: int, xt: np.ndarray, yt: np.ndarray) -> dict:
    operator, owner = Keypair.generate(), Keypair.generate()
    settlement = InternalLedgerSettlement(Ledger(MemoryJournalStore()), operator.did)
    await settlement.mint(owner.did, 10**9, actor=operator.did, idem="fund")
    spec = training_from_dict(
        {
            "schema": {"features": FEATURES, "label": "y", "classes": [str(i) for i in range(10)]},
            "data_tags": ["digits"],
            "rounds": rounds,
            "min_providers": 1,
            "max_providers": len(parts),
            "min_fit": len(parts),
            "round_deadline_s": 120,
            "hyper": HYPER,
            "max_update_norm": 1e4,
        }
    )
    stores, providers, participants = [], [], []
    with tempfile.TemporaryDirectory(prefix="agora-bench-fl-") as tmp:
        await asyncio.to_thread(Path(tmp).chmod, 0o755)
        for i, (x, y) in enumerate(parts):
            path = Path(tmp) / f"part{i}.npz"
            np.savez(path, x=x, y=y, features=np.array(FEATURES))
            store = MemoryStore(SystemClock())
            await store.open()
            stores.append(store)
            kp = Keypair.generate()
            book = DatasetBook(store, kp.did)
            offer = await book.add(path, tags=["digits"], licence="BSD-3-Clause", price_per_update=1)
            provider = FlProvider(kp, book)
            providers.append(provider)
            cid = f"bench-c{i}"
            participants.append(Participant(kp.did, cid, offer.offer_id, 1, LocalLink(provider)))
        peak = 0
        try:
            t_join = time.perf_counter()
            for p, part in zip(providers, participants, strict=True):
                # the same training rows as the floor: no federated hold-out here (the test set is separate)
                await p.join(
                    part.contract_id,
                    owner=owner.did,
                    run_id="bench",
                    offer_id=part.offer_id,
                    spec=spec,
                    eval_fraction=0.0,
                )
            join_s = time.perf_counter() - t_join
            init = [np.zeros((64, 10)), np.zeros(10)]

            async def sink(kind: str, subject: str, data: dict) -> None:
                nonlocal peak
                if kind == "training.round_closed":
                    peak = max(peak, rss_tree())

            run = TrainingRun(
                "bench",
                owner,
                spec,
                participants,
                init,
                payer=EscrowPayer(settlement, owner, run_id="bench"),
                events=sink,
            )
            start = time.perf_counter()
            status = await run.run()
            total = time.perf_counter() - start
        finally:
            for p in providers:
                await p.close()
            for s in stores:
                await s.close()
    assert status["state"] == "completed", status
    paid = sum(p["paid"] for p in status["providers"])
    return {
        "per_round": statistics.median(r["wall_s"] for r in status["rounds"]),
        "total": total,
        "accuracy": accuracy(run.params, xt, yt),
        "peak_rss": peak,
        "join_s": join_s,
        "paid": paid,
    }


def flower_available() -> bool:
    return importlib.util.find_spec("flwr") is not None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--providers", type=int, default=5)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    rounds = 2 if args.smoke else args.rounds
    parts, xt, yt = split(args.providers)
    base = floor(parts, rounds, xt, yt)
    ours = asyncio.run(agora_run(parts, rounds, xt, yt))
    print(f"fl bench: softmax regression on load_digits, {args.providers} providers, {rounds} rounds")
    print(
        f"  floor (numpy, one process): {base['per_round'] * 1000:.1f} ms/round, "
        f"total {base['total']:.2f} s, accuracy {base['accuracy']:.4f}"
    )
    print(
        f"  agora (sandboxed, signed, paid): {ours['per_round'] * 1000:.1f} ms/round, total {ours['total']:.2f} s "
        f"(+ {ours['join_s']:.2f} s to start {args.providers} warm trainers), accuracy {ours['accuracy']:.4f}, "
        f"peak RSS {ours['peak_rss'] / 2**20:.0f} MiB, {ours['paid']} paid"
    )
    if flower_available():
        print("  flower: flwr is installed; run its deployment-mode comparison as docs/federated-learning.md says")
    else:
        print("  flower: flwr not installed (pip install -e '.[bench-fl]'); see docs/federated-learning.md")
    print(f"ratio agora/floor per round: {ours['per_round'] / max(base['per_round'], 1e-9):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
