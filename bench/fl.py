"""Federated softmax regression on load_digits, 5-way split, the same model and data three ways: agora
(sandboxed warm trainers, signed and verified updates, every update paid from escrow), Flower 1.x in
deployment mode (a SuperLink and one SuperNode per provider as processes on loopback, the app submitted
with `flwr run`), and the same FedAvg in one process with numpy (the floor).

    .venv/bin/python bench/fl.py [--rounds 10] [--providers 5] [--flower-bin DIR] [--no-flower]
    .venv/bin/python bench/fl.py --smoke       # 2 rounds, no Flower, for the test suite

The agora side runs the real code path of a run: `FlProvider` per data provider (its data set in its own
`DatasetBook`, a bubblewrap-sandboxed trainer process kept warm for the contract), `TrainingRun` on the
owner (FedAvg, update checks, receipts verified, per-round escrow released on an internal ledger). The
providers are reached in-process (`LocalLink`), so the figure is the sandbox + signing + verification +
payment cost, not the network's.

The Flower side trains agora's own `SoftmaxRegression` (its ClientApp loads `agora/fl/trainers.py` by path:
numpy only) with Flower's FedAvg, so the three runs compute the same thing. Flower is not a dependency:
the `bench-fl` extra installs it, and since its pins (fastapi, starlette, typer) differ from agora's it may
live in a venv of its own, named with `--flower-bin`. Per-round times come from the ServerApp's evaluation
hook (after each round), peak RSS is the sum over the SuperLink, the SuperNodes and every process they
start (sampled every 0.2 s).

Printed: time per round (median), total, final accuracy on the held-out 20%, peak RSS, and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
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


# ---- Flower 1.x in deployment mode: SuperLink + one SuperNode per provider, as processes on loopback ----

FLOWER_PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "agorabench"
version = "1.0.0"
description = "agora bench/fl.py: softmax regression on load_digits"
license = "Apache-2.0"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "agora"

[tool.flwr.app.components]
serverapp = "agorabench.server_app:app"
clientapp = "agorabench.client_app:app"

[tool.flwr.app.config]
num-server-rounds = {rounds}
num-nodes = {nodes}
trainers-path = "{trainers}"
test-path = "{test}"
results-path = "{results}"
hyper = '{hyper}'
"""

FLOWER_CLIENT = '''\
"""The ClientApp: agora's own SoftmaxRegression (loaded from its file: numpy only) on this node's part."""
import importlib.util
import json

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()


def _trainers(path):
    spec = importlib.util.spec_from_file_location("agora_trainers", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@app.train()
def train(msg: Message, context: Context) -> Message:
    data = np.load(context.node_config["data-path"])
    mod = _trainers(context.run_config["trainers-path"])
    hyper = json.loads(context.run_config["hyper"])
    trainer = mod.SoftmaxRegression(data["x"], data["y"], classes=10, hyper=hyper)
    params = msg.content["arrays"].to_numpy_ndarrays()
    r = int(msg.content["config"]["server-round"])
    new, n, _ = trainer.fit(params, {"round": r})
    content = RecordDict({"arrays": ArrayRecord(new), "metrics": MetricRecord({"num-examples": n})})
    return Message(content=content, reply_to=msg)
'''

FLOWER_SERVER = '''\
"""The ServerApp: Flower's FedAvg (weighted by examples); after each round the time and the held-out
accuracy go to the results file the bench reads."""
import json
import time

import numpy as np
from flwr.app import ArrayRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    test = np.load(cfg["test-path"])
    marks = []

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        w, b = arrays.to_numpy_ndarrays()
        acc = float(np.mean((test["x"] @ w + b).argmax(axis=1) == test["y"]))
        marks.append({"round": server_round, "t": time.time(), "accuracy": acc})
        with open(cfg["results-path"], "w") as f:
            json.dump(marks, f)
        return MetricRecord({"accuracy": acc})

    nodes = int(cfg["num-nodes"])
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=nodes, min_available_nodes=nodes)
    init = ArrayRecord([np.zeros((64, 10)), np.zeros(10)])
    strategy.start(grid=grid, initial_arrays=init, num_rounds=int(cfg["num-server-rounds"]), evaluate_fn=evaluate)
'''


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _wait_port(port: int, proc: subprocess.Popen[bytes], *, limit_s: float) -> None:
    """Until something listens on 127.0.0.1:`port` (bounded; the process must stay alive)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {limit_s:.0f} s (exit {proc.poll()}): {proc.args!r}")


class _RssSampler:
    """The peak of the summed RSS of some process trees, sampled every `period_s` in a thread."""

    def __init__(self, period_s: float = 0.2) -> None:
        self.roots: list[psutil.Process] = []
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._period = period_s

    def _loop(self) -> None:
        while not self._stop.wait(self._period):
            total = 0
            for root in list(self.roots):
                try:
                    procs = [root, *root.children(recursive=True)]
                except psutil.Error:
                    continue
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
            self.peak = max(self.peak, total)

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def flower_run(
    parts: list[tuple[np.ndarray, np.ndarray]],
    rounds: int,
    xt: np.ndarray,
    yt: np.ndarray,
    bin_dir: Path,
    limit_s: float,
) -> dict:
    """Flower in deployment mode: one SuperLink and one SuperNode per provider (processes, loopback,
    `--insecure`), the app submitted with `flwr run`; each SuperNode starts a ClientApp process per round."""
    exe = {name: str(bin_dir / name) for name in ("flower-superlink", "flower-supernode", "flwr")}
    for path in exe.values():
        if not Path(path).exists():
            raise FileNotFoundError(f"{path} (install flwr: pip install -e '.[bench-fl]', or pass --flower-bin)")
    trainers = Path(__file__).resolve().parent.parent / "src" / "agora" / "fl" / "trainers.py"
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="agora-bench-flwr-") as tmp_s, _RssSampler() as rss:
        tmp = Path(tmp_s)
        for i, (x, y) in enumerate(parts):
            np.savez(tmp / f"part{i}.npz", x=x, y=y)
        np.savez(tmp / "test.npz", x=xt, y=yt)
        app = tmp / "app"
        (app / "agorabench").mkdir(parents=True)
        (app / "agorabench" / "__init__.py").write_text("")
        (app / "agorabench" / "client_app.py").write_text(FLOWER_CLIENT)
        (app / "agorabench" / "server_app.py").write_text(FLOWER_SERVER)
        results = tmp / "results.json"
        (app / "pyproject.toml").write_text(
            FLOWER_PYPROJECT.format(
                rounds=rounds,
                nodes=len(parts),
                trainers=trainers,
                test=tmp / "test.npz",
                results=results,
                hyper=json.dumps(HYPER),
            )
        )
        link, *appio = _free_ports(1 + len(parts))
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}

        def spawn(args: list[str], home: Path, log: str) -> subprocess.Popen[bytes]:
            home.mkdir(parents=True, exist_ok=True)
            out = open(tmp / log, "wb")  # noqa: SIM115 - closed with the temporary directory
            p = subprocess.Popen(args, env={**env, "FLWR_HOME": str(home)}, stdout=out, stderr=subprocess.STDOUT)
            procs.append(p)
            rss.roots.append(psutil.Process(p.pid))
            return p

        try:
            t0 = time.perf_counter()
            spawn(
                [
                    exe["flower-superlink"],
                    "--insecure",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(link),  # Flower 1.4x: the runtime, control and fleet APIs on one HTTP port
                ],
                tmp / "home-link",
                "superlink.log",
            )
            for i in range(len(parts)):
                spawn(
                    [
                        exe["flower-supernode"],
                        "--insecure",
                        "--superlink",
                        f"127.0.0.1:{link}",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(appio[i]),
                        "--node-config",
                        f"data-path='{tmp / f'part{i}.npz'}'",
                    ],
                    tmp / f"home-node{i}",
                    f"supernode{i}.log",
                )
            _wait_port(link, procs[0], limit_s=60)  # the SuperLink's Control API is up
            cli_home = tmp / "home-cli"
            cli_home.mkdir()
            connection = f'[superlink.bench]\naddress = "127.0.0.1:{link}"\ninsecure = true\n'
            (cli_home / "config.toml").write_text('[superlink]\ndefault = "bench"\n\n' + connection)
            run = spawn([exe["flwr"], "run", str(app), "bench", "--stream"], cli_home, "flwr-run.log")
            try:
                rc = run.wait(timeout=limit_s)
            except subprocess.TimeoutExpired:
                rc = None
            total = time.perf_counter() - t0
            marks = json.loads(results.read_text()) if results.exists() else []
            if rc != 0 or len(marks) != rounds + 1:
                tail = (tmp / "flwr-run.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"flwr run ended with {rc} after {len(marks)} evaluations:\n{tail}")
        finally:
            for p in reversed(procs):
                if p.poll() is None:
                    p.terminate()
            for p in reversed(procs):
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)
    times = [b["t"] - a["t"] for a, b in itertools.pairwise(marks)]
    return {
        "per_round": statistics.median(times),
        "rounds_s": marks[-1]["t"] - marks[0]["t"],
        "total": total,
        "accuracy": marks[-1]["accuracy"],
        "peak_rss": rss.peak,
    }


def flower_bin(given: str | None) -> Path | None:
    """Where Flower's commands are: `--flower-bin`, else next to this Python, else on PATH (flwr may live
    in a venv of its own: its pins on fastapi, starlette and typer differ from agora's)."""
    if given:
        return Path(given)
    here = Path(sys.executable).parent
    if (here / "flower-superlink").exists():
        return here
    found = shutil.which("flower-superlink")
    return Path(found).parent if found else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--providers", type=int, default=5)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--no-flower", action="store_true", help="skip the Flower deployment run")
    ap.add_argument("--flower-bin", help="the bin directory holding flower-superlink, flower-supernode and flwr")
    ap.add_argument("--flower-limit-s", type=float, default=1200.0, help="bound on the Flower run")
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
    print(f"ratio agora/floor per round: {ours['per_round'] / max(base['per_round'], 1e-9):.1f}x")
    bin_dir = flower_bin(args.flower_bin)
    if args.smoke or args.no_flower:
        print("  flower: skipped (--smoke / --no-flower)")
    elif bin_dir is None:
        print("  flower: flwr not installed (pip install -e '.[bench-fl]', or --flower-bin DIR); skipped")
    else:
        theirs = flower_run(parts, rounds, xt, yt, bin_dir, args.flower_limit_s)
        print(
            f"  flower (deployment: SuperLink + {args.providers} SuperNodes, loopback): "
            f"{theirs['per_round'] * 1000:.1f} ms/round, {rounds} rounds in {theirs['rounds_s']:.2f} s "
            f"(total {theirs['total']:.2f} s with start-up), accuracy {theirs['accuracy']:.4f}, "
            f"peak RSS {theirs['peak_rss'] / 2**20:.0f} MiB"
        )
        print(f"ratio agora/flower per round: {ours['per_round'] / max(theirs['per_round'], 1e-9):.4f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
