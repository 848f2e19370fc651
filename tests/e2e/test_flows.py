"""The presenter's flows (examples/flows/*.sh, A to E) run clean on a fresh two-node devnet: each reads the DIDs and
addresses from devnet.json, narrates, and ends with what it set out to show."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import ROOT, require_binary

FLOWS = ROOT / "examples" / "flows"
ENV = {
    **os.environ,
    "AGORA": f"{sys.executable} -m agora.cli",
    "PYTHON": sys.executable,
    "AGORA_BENCHMARK": "off",
}
for name in ("AGORA_API", "AGORA_NODE", "AGORA_DEVNET_DIR"):
    ENV.pop(name, None)


def _run(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=ENV, cwd=cwd)


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_binary("bash", "bash")
    root = tmp_path_factory.mktemp("flows")
    up = _run([sys.executable, "-m", "agora.cli", "devnet", "up", "--nodes", "2", "--json"], root)
    assert up.returncode == 0, up.stderr
    try:
        yield root
    finally:
        _run([sys.executable, "-m", "agora.cli", "devnet", "down"], root)


def flow(name: str, cwd: Path) -> str:
    proc = _run(["bash", str(FLOWS / name)], cwd)
    assert proc.returncode == 0, f"{name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_a_flow_without_a_devnet_says_what_to_do(tmp_path: Path) -> None:
    proc = _run(["bash", str(FLOWS / "a-wasm-market.sh")], tmp_path)
    assert proc.returncode == 2 and "agora devnet up" in proc.stderr


def test_flow_a_buys_wasm_compute_on_the_market(devnet: Path) -> None:
    out = flow("a-wasm-market.sh", devnet)
    assert "through the market (no --node" in out and "submitted" in out
    assert "completed" in out


def test_flow_b_shows_discovery(devnet: Path) -> None:
    out = flow("b-discovery.sh", devnet)
    assert "peer.joined did:key:" in out  # a peer the watcher heard join, by its DID


def test_flow_c_runs_the_marketplace_loop(devnet: Path) -> None:
    out = flow("c-marketplace.sh", devnet)
    assert "== 3. Match" in out and "contract contract-" in out
    assert "delivered" in out and "== 6. The marketplace" in out


def test_flow_d_trains_a_model_on_the_market(devnet: Path) -> None:
    require_binary("bwrap", "bubblewrap")
    out = flow("d-training.sh", devnet)
    assert out.count("offering data set data-") == 2  # one offer per provider
    assert "run run-" in out and ": completed" in out and "bound_to_round" in out and "update_released" in out
    assert "pending: 0 contracts" in out
    rounds = re.findall(r"round (\d+)/(\d+): 2 update\(s\) accepted", out)  # told from the JSON lines as they come
    assert rounds and [int(k) for k, _ in rounds] == list(range(1, int(rounds[0][1]) + 1)), out


def test_flow_e_buys_inference_with_the_openai_client(devnet: Path) -> None:
    out = flow("e-inference.sh", devnet)
    assert "> What is the capital of France?" in out and "verified)" in out
    assert "-- streamed: " in out
    spent = [ln for ln in out.splitlines() if ln.startswith("inference_spend: ")]
    assert len(spent) == 2 and int(spent[0].split()[1]) > 0  # the requester paid for its answers
    doc = json.loads((devnet / ".agora-devnet" / "devnet.json").read_text())
    [requester] = [m for m in doc["nodes"] if m["name"] == "node-2"]
    scrape = httpx.get(f"{requester['api']}/metrics", timeout=10).text
    series = {s.name: s.value for f in text_string_to_metric_families(scrape) for s in f.samples}
    assert series["agora_inference_requests_total"] >= 2  # the plain and the streamed answer, on /metrics too
    assert series["agora_inference_spend_total"] == int(spent[0].split()[1])
