"""The federated loop across real nodes (a hub and three data providers over a real nats-server, SQLite
stores, bubblewrap trainers), driven from the CLI through the owner's API server: data sets offered on
each provider, `agora train start` matches one contract per provider from their signed data ads, rounds
run over the node runtime, each verified update is paid from its round's escrow at the hub's ledger
(every node settles there, `settlement: hub`; each provider checks its round's escrow there before it
trains); the contracts' timelines and the providers' earnings show it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.datasets import load_digits

from agora.api import ApiServer
from agora.ledger import wallet
from agora.node.compute import compute_of
from agora.node.fl import fl_of
from tests.integration.fl.conftest import index_holds
from tests.integration.market.test_marketplace_loop import run_cli
from tests.integration.node.conftest import NodeFactory, fund
from tests.support import require_binary
from tests.unit.compute.harness import until

pytestmark = pytest.mark.integration

FUNDS = 10_000
PRICE = 3
ROUNDS = 2


def spec_file(tmp: Path, **extra: object) -> Path:
    spec = {
        "schema": {"features": [f"x{i}" for i in range(64)], "label": "y", "classes": [str(i) for i in range(10)]},
        "data_tags": ["digits"],
        "rounds": ROUNDS,
        "min_providers": 3,
        "max_providers": 3,
        "min_fit": 3,
        "round_deadline_s": 60,
        "hyper": {"learning_rate": 0.5},
        "max_update_norm": 1e4,
        "max_price_per_update": 5,
        **extra,
    }
    path = tmp / "train.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.timeout(240)
async def test_training_across_nodes_from_the_cli(make_node: NodeFactory, tmp_path: Path) -> None:
    require_binary("bwrap", "bubblewrap")
    owner = await make_node("owner", hub=True)
    assert owner.hub is not None
    money = compute_of(owner).settlement
    assert money is not None
    await fund(owner, owner.did, FUNDS)
    providers = [await make_node(f"p{i}", hubs=[owner.hub.url]) for i in range(3)]
    x, y = load_digits(return_X_y=True)
    os.chmod(tmp_path, 0o755)
    for i, idx in enumerate(np.array_split(np.arange(1200), 3)):
        path = tmp_path / f"part{i}.npz"
        np.savez(path, x=x[idx] / 16.0, y=y[idx])
        await fl_of(providers[i]).datasets.add(path, tags=["digits"], licence="BSD-3-Clause", price_per_update=PRICE)
    await until(lambda: len(owner.peer_table.alive()) >= 3, "the owner to see the 3 providers", timeout=30)
    await index_holds(owner, [p.did for p in providers])  # the data ads reach the hub's index

    server = ApiServer(owner, port=0)
    url = await server.start()
    try:
        code, nothing = await run_cli(url, "train", "start", str(spec_file(tmp_path, data_tags=["x-ray"])))
        assert code == 0 and nothing["state"] == "unmatched" and nothing["match"]["counts"]["data_tags_missing"] == 3

        code, lines = await run_cli(url, "train", "start", str(spec_file(tmp_path)), "--budget", "100", "--wait", "180")
        events = [json.loads(line) for line in lines.splitlines()]  # --wait --json: one JSON object per line
        assert code == 0 and events[0]["event"] == "started" and events[-1]["event"] == "end", lines
        assert sorted({e["round"] for e in events if e["event"] == "round"}) == list(range(1, ROUNDS + 1))
        assert [e["state"] for e in events if e["event"] == "state"][-1] == "completed"
        run = events[-1]["run"]
        assert run["state"] == "completed", run
        assert run["match"]["ads_from"] == "index"  # read from the hub's index, not asked of each peer
        assert sorted(p["provider"] for p in run["providers"]) == sorted(p.did for p in providers)
        assert all(p["delivered"] == [1, 2] and p["paid"] == ROUNDS * PRICE for p in run["providers"])
        assert run["rounds"][-1]["metrics"]["eval_accuracy"] > 0.8

        contract_id = run["providers"][0]["contract_id"]
        code, shown = await run_cli(url, "contract", "show", contract_id)
        events = [e["event"] for e in shown["timeline"]]
        assert code == 0 and shown["state"] == "escrow_released", shown
        assert events[:3] == ["created", "bound_to_round", "bound_to_round"]
        assert events.count("update_released") == ROUNDS and events[-2:] == ["delivered", "escrow_released"]

        for p in providers:
            assert await money.balance(wallet(p.did)) == ROUNDS * PRICE  # each provider's earnings
        assert await money.balance(wallet(owner.did)) == FUNDS - 3 * ROUNDS * PRICE
        code, status = await run_cli(url, "train", "status")
        assert code == 0 and status["pending"]["contracts"] == 0

        # the same loop from a `kind: training` intent: intent create -> match --preview -> match
        training = yaml.safe_load(spec_file(tmp_path).read_text())
        intent_path = tmp_path / "intent.yaml"
        intent_path.write_text(yaml.safe_dump({"kind": "training", "training": training, "budget": 100}))
        code, intent = await run_cli(url, "intent", "create", str(intent_path), "--open")
        assert code == 0 and intent["status"] == "open", intent
        code, preview = await run_cli(url, "match", intent["intent_id"], "--preview")
        assert code == 0 and preview["would_match"] is True and preview["status"] == "open", preview
        code, matched = await run_cli(url, "match", intent["intent_id"])
        assert code == 0 and matched["matched"] is True and matched["status"] == "matched", matched
        done = await fl_of(owner).manager.wait(matched["run_id"], 180)
        assert done["state"] == "completed", done
        code, shown = await run_cli(url, "contract", "show", done["providers"][0]["contract_id"])
        assert shown["intent_id"] == intent["intent_id"] and shown["state"] == "escrow_released"
        for p in providers:
            assert await money.balance(wallet(p.did)) == 2 * ROUNDS * PRICE
    finally:
        await server.stop()
