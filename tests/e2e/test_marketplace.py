"""The marketplace loop as a person runs it on a two-node devnet (daemons, a real hub, the CLI in a subprocess):
an intent file, `intent create --open`, `match --preview` (nothing stored), `match` (a contract), the job runs,
the contract's escrow is locked at the hub's ledger, released on the receipt both parties signed, the timeline
shows every step, the requester paid and the provider earned, and `market summary` counts it. The requester
withdraws its own offer first: the market may otherwise place the job on the requester itself, which moves no
money (tested in tests/unit/orchestrator/test_settle.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import require_binary

AGORA = [sys.executable, "-m", "agora.cli"]
ENV = {**os.environ, "AGORA_BENCHMARK": "off", "AGORA_NODE": "node-2"}
ENV.pop("AGORA_API", None)

FUNDED = 100_000  # each devnet member, by the hub operator's mint

INTENT = """
job:
  name: quick
  tasks:
    - name: say
      engine: process
      command: ["/bin/sh", "-c", "echo paid work"]
      resources: {cpu: 0.1, memory: 32Mi, disk: 8Mi}
      timeout: 1m
budget: 100000
policy: {max_price: 50000}
"""


def agora(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*AGORA, *args], capture_output=True, text=True, timeout=120, env=ENV, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"agora {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def js(*args: str, cwd: Path) -> Any:
    return json.loads(agora(*args, "--json", cwd=cwd).stdout)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_binary("bwrap", "bubblewrap")
    root = tmp_path_factory.mktemp("market")
    (root / "intent.yaml").write_text(INTENT)
    agora("devnet", "up", "--nodes", "2", "--json", cwd=root)
    for offer in js("offer", "list", cwd=root):  # node-2 buys only: its job goes to another node, and pays
        if offer.get("state") == "active":
            agora("offer", "withdraw", offer["offer_id"], cwd=root)
    try:
        yield root
    finally:
        agora("devnet", "down", cwd=root, check=False)


def test_intent_match_contract_on_a_devnet(work: Path) -> None:
    intent = js("intent", "create", "intent.yaml", "--open", cwd=work)
    assert intent["status"] == "open"
    preview = js("match", intent["intent_id"], "--preview", cwd=work)
    assert preview["would_match"] is True and preview["tasks"]["say"]["chosen"]
    assert js("contract", "list", cwd=work) == []
    matched = js("match", intent["intent_id"], cwd=work)
    assert matched["matched"] is True and matched["status"] == "matched", matched
    [contract] = matched["contracts"]
    agora("job", "logs", matched["job_id"], "--follow", cwd=work)  # returns when the job ended
    shown = js("contract", "show", contract["contract_id"], cwd=work)
    paid = ["created", "escrow_locked", "allocated", "running", "delivered", "countersigned", "escrow_released"]
    assert [e["event"] for e in shown["timeline"]] == paid, shown["timeline"]
    assert shown["payment_mode"] == "pay_after" and shown["intent_id"] == intent["intent_id"]
    assert shown["provider"] != shown["requester"] and shown["released"] == shown["price"] > 0
    refused = agora("contract", "release", contract["contract_id"], cwd=work, check=False)
    assert refused.returncode == 1 and "contract_already_released" in refused.stderr
    assert js("intent", "show", intent["intent_id"], cwd=work)["status"] == "fulfilled"
    me = js("ledger", "balance", cwd=work)
    assert me["balance"] == FUNDED - shown["price"]  # the devnet's mint, less what this contract paid
    assert js("ledger", "balance", shown["provider"], cwd=work)["balance"] >= FUNDED + shown["price"]
    assert js("ledger", "verify", cwd=work)["ok"] is True
    summary = js("market", "summary", cwd=work)
    assert summary["settlement"] == "hub" and summary["contracts"]["by_state"]["escrow_released"] == 1
    assert summary["escrow"]["released"] == shown["price"]
    assert summary["matches"] == {"attempts": 1, "matched": 1, "success_rate": 1.0, "top_rejections": []}
    text = agora("market", "summary", cwd=work).stdout
    assert "matches:   1 of 1 matched (100%)" in text
