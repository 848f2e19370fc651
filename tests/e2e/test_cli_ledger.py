"""`agora ledger` the way a person uses it on a devnet: the members were funded by the hub operator's signed
issuance at `up`; balance, entries, mint (the operator may, a member may not), transfer, stake, unstake and
verify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_cli_devnet import agora, j

pytestmark = pytest.mark.integration


def test_ledger_on_a_devnet(tmp_path: Path) -> None:
    d = str(tmp_path / "devnet")
    state = j("devnet", "up", "--nodes", "2", "--dir", d)
    try:
        hub, (a, b) = state["hub"], state["nodes"]
        members = [hub, a, b]
        # funded at `up` by mints the hub signed, one per member, and nothing else
        funded = {f["did"]: f for f in state["funded"]}
        assert set(funded) == {m["did"] for m in members}
        everything = j("ledger", "entries", "all", "--api", a["api"])["entries"]
        assert [e["kind"] for e in everything] == ["mint"] * 3
        assert {e["actor"] for e in everything} == {hub["did"]}
        assert {e["postings"][1]["account"] for e in everything} == {f"wallet:{m['did']}" for m in members}
        funds = funded[a["did"]]["amount"]

        assert j("ledger", "balance", "--api", a["api"]) == {"account": f"wallet:{a['did']}", "balance": funds}
        text = agora("ledger", "balance", "node-2", "--api", a["api"], env={"AGORA_DEVNET_DIR": d}).stdout  # a name
        assert text.strip() == f"wallet:{b['did']}: {funds:,}"

        # a member may not mint; the hub operator may, and a retry with the same key issues nothing twice
        refused = agora("ledger", "mint", a["did"], "5", "--api", a["api"], "--json", check=False)
        assert refused.returncode == 1
        assert json.loads(refused.stdout)["error"]["code"] == "ledger_unauthorized"
        minted = j("ledger", "mint", a["did"], "250", "--idem", "bonus-a", "--memo", "bonus", "--api", hub["api"])
        again = j("ledger", "mint", a["did"], "250", "--idem", "bonus-a", "--memo", "bonus", "--api", hub["api"])
        assert minted == again and minted["entry"]["seq"] == 4
        out = agora("ledger", "mint", b["did"], "1", "--api", hub["api"]).stdout
        assert out.startswith("minted: entry 5 mint:")

        # a transfer moves the caller's own money; more than it holds is refused
        sent = j("ledger", "transfer", b["did"], "100", "--api", a["api"])
        assert sent["entry"]["actor"] == a["did"]
        poor = agora("ledger", "transfer", b["did"], str(10 * funds), "--api", a["api"], check=False)
        assert poor.returncode == 1 and "insufficient_funds" in poor.stderr
        assert j("ledger", "balance", "--api", a["api"])["balance"] == funds + 250 - 100
        mine = j("ledger", "entries", "--api", b["api"])["entries"]
        assert [e["kind"] for e in mine] == ["mint", "mint", "transfer"]

        # a provider locks its own stake, and takes part of it back
        out = agora("ledger", "stake", "40", "--api", b["api"]).stdout
        assert out.startswith("staked: entry 7 stake_lock:") and "stake now: 40" in out
        back = j("ledger", "unstake", "15", "--api", b["api"])
        assert back["entry"]["kind"] == "stake_unlock" and back["stake"] == 25
        assert j("ledger", "balance", f"stake:{b['did']}", "--api", a["api"])["balance"] == 25

        # every node walks the whole chain itself
        for m in members:
            report = j("ledger", "verify", "--api", m["api"])
            assert report["ok"] and report["agrees"] and report["entries"] == 8 and report["sum"] == 0
        text = agora("ledger", "verify", "--api", b["api"]).stdout
        assert text.startswith("ledger ok: 8 entries, sum 0") and f"this node's balance: {funds + 101 - 25:,}" in text
    finally:
        agora("devnet", "down", "--dir", d, check=False)
