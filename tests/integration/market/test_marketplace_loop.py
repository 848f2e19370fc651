"""The marketplace loop on real nodes (NATS through a real nats-server, SQLite stores, wasmtime), driven from
the CLI through a real API server: offer -> intent -> match (preview first: nothing changes) -> contract ->
run -> automatic release -> timeline and summary; release twice and refund after release keep their codes;
an intent whose budget is below every quote is answered with the rejection counts.

The buyer settles on a local internal ledger (`settlement: local`, this node its operator): the test, as that
operator, mints the buyer's funds first (never a hard-coded balance)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from agora.api import ApiServer
from agora.cli.main import app
from agora.ledger import wallet
from agora.node import Node
from agora.node.compute import compute_of
from tests.integration.node.conftest import NodeFactory
from tests.unit.compute import wat

pytestmark = pytest.mark.integration

DEADLINE = 30.0
FUNDS = 100_000


def cli(url: str, *args: str) -> tuple[int, Any]:
    result = CliRunner().invoke(app, [*args, "--api", url, "--json"])
    try:
        return result.exit_code, json.loads(result.output)
    except ValueError:
        return result.exit_code, result.output


async def run_cli(url: str, *args: str) -> tuple[int, Any]:
    return await asyncio.to_thread(cli, url, *args)


async def _sees(buyer: Node, provider: str) -> None:
    index = compute_of(buyer).market_index
    assert index is not None
    async with asyncio.timeout(DEADLINE), index.watch() as w:
        if any(a.provider == provider for a in await index.ads()):
            return
        async for ad in w:
            if ad.provider == provider:
                return


def _intent_file(tmp: Path, name: str, budget: int) -> Path:
    (tmp / "hello.wasm").write_bytes(wat.hello(content="paid for\n"))
    task = {"name": "hello", "module": "hello.wasm", "resources": {"cpu": 0.5, "memory": "64Mi"}, "timeout": 30}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"job": {"name": name, "tasks": [task]}, "budget": budget}))
    return path


async def test_the_marketplace_loop_from_the_cli(make_node: NodeFactory, tmp_path: Path) -> None:
    seller = await make_node("seller", hub=True, sell=True)
    assert seller.hub is not None
    buyer = await make_node("buyer", hubs=[seller.hub.url], settlement="local")
    money = compute_of(buyer).settlement
    assert money is not None
    await money.mint(buyer.did, FUNDS, actor=buyer.did, idem="fund-buyer")  # the buyer's node is its own bank
    await _sees(buyer, seller.did)
    server = ApiServer(buyer, port=0)
    url = await server.start()
    try:
        code, intent = await run_cli(url, "intent", "create", str(_intent_file(tmp_path, "loop", 1_000)), "--open")
        assert code == 0 and intent["status"] == "open", intent
        intent_id = intent["intent_id"]

        code, preview = await run_cli(url, "match", intent_id, "--preview")
        assert code == 0 and preview["would_match"] is True and seller.did in preview["tasks"]["hello"]["chosen"]
        assert (await run_cli(url, "contract", "list"))[1] == []  # the preview stored nothing
        assert (await run_cli(url, "intent", "show", intent_id))[1]["status"] == "open"

        code, matched = await run_cli(url, "match", intent_id)
        assert code == 0 and matched["matched"] is True and matched["status"] == "matched", matched
        [contract] = matched["contracts"]
        assert contract["provider"] == seller.did and contract["intent_id"] == intent_id
        job = await compute_of(buyer).runner.wait(matched["job_id"], DEADLINE)
        assert job["state"] == "completed", job

        code, shown = await run_cli(url, "contract", "show", contract["contract_id"])
        events = [e["event"] for e in shown["timeline"]]
        assert code == 0 and shown["state"] == "escrow_released", shown
        assert events == [
            "created",
            "escrow_locked",
            "allocated",
            "running",
            "delivered",
            "countersigned",
            "escrow_released",
        ]
        times = [e["at"] for e in shown["timeline"]]
        assert times == sorted(times)
        price = shown["price"]
        assert await money.balance(wallet(buyer.did)) == FUNDS - price
        assert await money.balance(wallet(seller.did)) == price
        assert (await run_cli(url, "intent", "show", intent_id))[1]["status"] == "fulfilled"

        text = await asyncio.to_thread(
            CliRunner().invoke, app, ["contract", "show", contract["contract_id"], "--api", url]
        )
        assert text.exit_code == 0, text.output
        lines = [
            re.split(r"\d+s\s+", ln, maxsplit=1)[1].split()[0]
            for ln in text.output.splitlines()
            if ln.startswith("  +")
        ]
        assert lines == events  # the timeline, in order, one line per event (with its evidence below)
        assert f"usage_receipt={shown['timeline'][4]['evidence']['usage_receipt']}" in text.output
        code, again = await run_cli(url, "contract", "release", contract["contract_id"])
        assert code != 0 and again["error"]["code"] == "contract_already_released"
        code, late = await run_cli(url, "contract", "refund", contract["contract_id"])
        assert code != 0 and late["error"]["code"] == "contract_already_settled"

        code, poor = await run_cli(url, "intent", "create", str(_intent_file(tmp_path, "cheap", 1)), "--open")
        code, refused = await run_cli(url, "match", poor["intent_id"])
        assert code == 1 and refused["matched"] is False and refused["status"] == "open"
        assert refused["budget_rejections"] >= 1 and refused["rejections"]["over_budget"] >= 1

        code, summary = await run_cli(url, "market", "summary")
        assert code == 0 and summary["contracts"]["by_state"]["escrow_released"] == 1
        assert summary["escrow"] == {"locked": 0, "released": price}
        assert summary["intents"]["by_status"]["fulfilled"] == 1 and summary["intents"]["by_status"]["open"] == 1
        assert summary["matches"]["attempts"] == 2 and summary["matches"]["success_rate"] == 0.5
        assert summary["offers"]["providers_in_index"] >= 1
        assert (await money.verify()).ok
    finally:
        await server.stop()
