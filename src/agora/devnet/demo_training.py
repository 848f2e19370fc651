"""`make demo`'s federated-learning step: three data providers, one model owner, three rounds.

load_digits is split over three devnet members that offer their part as a data set; a fourth member
(the owner) runs `agora train start`: the offers are matched (one contract per provider), each provider
trains in its sandboxed warm trainer, each verified update is paid from its round's escrow at the hub's
ledger. The step prints the accuracy per round, one contract's timeline and the providers' earnings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agora.client import AgoraClient

ROUNDS = 3
PRICE = 5


def _say(text: str = "") -> None:
    print(text, flush=True)


def steps(timeline: list[dict[str, Any]]) -> list[str]:
    """A timeline's events in order, a run of the same event shown once with its count (`bound_to_round ×3`)."""
    out: list[str] = []
    counts: list[int] = []
    for e in timeline:
        if out and out[-1] == e["event"]:
            counts[-1] += 1
        else:
            out.append(e["event"])
            counts.append(1)
    return [f"{name} ×{n}" if n > 1 else name for name, n in zip(out, counts, strict=True)]


def training_section(state: dict[str, Any], root: Path) -> None:
    import numpy as np
    from sklearn.datasets import load_digits

    members = [state["hub"], *state["nodes"]]
    owner = state["nodes"][1]
    providers = [m for m in members if m["did"] != owner["did"]][:3]
    names = {m["did"]: m["name"] for m in members}
    title = "7. federated learning: load_digits over three data providers, paid per update"
    _say(f"\n== {title} {'=' * max(0, 70 - len(title))}".rstrip())  # devnet.demo.section's heading
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    features = np.array([f"p{i}" for i in range(64)])
    for i, (m, idx) in enumerate(zip(providers, np.array_split(order, 3), strict=True)):
        path = root / f"digits-part{i}.npz"
        np.savez(path, x=x[idx] / 16.0, y=y[idx], features=features)
        with AgoraClient(m["api"]) as c:
            offer = c.add_dataset(str(path), tags=["digits"], licence="BSD-3-Clause", price_per_update=PRICE)
        _say(
            f"  $ agora dataset add {path.name} --tags digits --licence BSD-3-Clause --price-per-update {PRICE}"
            f"   (on {m['name']})"
        )
        _say(
            f"    {offer['offer_id']}: {offer['rows']} rows, {len(offer['schema']['features'])} features, "
            f"{offer['content_hash'][:19]}…  (the path is not published)"
        )
    spec = {
        "trainer": "softmax",
        "hyper": {"learning_rate": 0.5, "local_epochs": 1},
        "schema": {"features": list(features), "label": "y", "classes": [str(i) for i in range(10)]},
        "data_tags": ["digits"],
        "rounds": ROUNDS,
        "min_providers": 3,
        "max_providers": 3,
        "min_fit": 2,
        "round_deadline_s": 60,
        "max_price_per_update": PRICE,
        "max_update_norm": 1e4,
    }
    with AgoraClient(owner["api"], timeout=60) as c:
        before = {m["did"]: c.balance(m["did"])["balance"] for m in providers}
        _say(f"  $ agora train start train.yaml --budget 100 --wait 180   (on {owner['name']}, the model owner)")
        run = c.start_training(spec, budget=100)
        if run["state"] != "running":
            _say(f"    no match: {run['match']['counts']}")
            return
        run = c.training_run(run["run_id"], wait_s=180)
        _say(f"    run {run['run_id']}: {run['state']}")
        for r in run["rounds"]:
            m = r["metrics"]
            _say(
                f"    round {r['round']}: {len(r['accepted'])} updates accepted, "
                f"train loss {m.get('train_loss', 0):.3f}, "
                f"held-out accuracy {m.get('eval_accuracy', 0):.3f}, {r['wall_s'] * 1000:.0f} ms"
            )
        first = run["providers"][0]
        contract = c.request("GET", f"/contracts/{first['contract_id']}")
        _say(f"  $ agora contract show {first['contract_id']}   ({names.get(first['provider'], '?')})")
        _say("    " + " → ".join(steps(contract["timeline"])))
        _say("    (the real order: the round escrows are locked at the hub's ledger before the contract opens;")
        _say("     the contract then lists the rounds it serves and records that lock)")
        _say("  the providers' earnings (minor units, at the hub's ledger):")
        for m in providers:
            now = c.balance(m["did"])["balance"]
            _say(f"    {m['name']:<7} {before[m['did']]:>10,} → {now:>10,}  ({now - before[m['did']]:+,})")


__all__ = ["steps", "training_section"]
