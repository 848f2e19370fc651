"""The dashboard in a real browser (headless chromium) on two real nodes (a hub that sells, a buyer that
settles on a local ledger): create an offer, an intent, preview and match it and read the per-candidate
breakdown, release the escrow and see the timeline update, a second release shown as
`contract_already_released`, the marketplace summary; a bad value on each form shown next to its field;
labels and contrast on the forms; no JavaScript console error on any page. A training run started from
the training page, its contracts bound to each round. Screenshots of every page go to
the test's tmp dir."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_digits

from agora.api import ApiServer
from agora.dashboard import NAV
from agora.node import Node
from agora.node.compute import compute_of
from tests.integration.node.conftest import NodeFactory
from tests.support import require_binary
from tests.unit.compute import wat

pytestmark = pytest.mark.integration

DEADLINE = 30.0
FUNDS = 100_000

# every visible text in a form: its colour against the nearest opaque background, WCAG's contrast ratio
A11Y = """
() => {
  const lum = (rgb) => {
    const [r, g, b] = rgb.match(/[\\d.]+/g).slice(0, 3).map(Number).map((v) => {
      v = v / 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const bg = (el) => {
    for (; el; el = el.parentElement) {
      const c = getComputedStyle(el).backgroundColor;
      const parts = c.match(/[\\d.]+/g);
      if (parts && (parts.length < 4 || Number(parts[3]) > 0)) return c;
    }
    return "rgb(255, 255, 255)";
  };
  const problems = [];
  for (const el of document.querySelectorAll("form input:not([type=hidden]), form select, form textarea")) {
    const labelled = el.id && document.querySelector(`label[for="${el.id}"]`);
    if (!labelled) problems.push(`no label for ${el.name}`);
  }
  for (const el of document.querySelectorAll("form label, form small, form p, form button, .error, h1")) {
    const a = lum(getComputedStyle(el).color), b = lum(bg(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const what = `${el.tagName} ${el.textContent.trim().slice(0, 30)}`;
    if (ratio < 4.5) problems.push(`contrast ${ratio.toFixed(2)} for ${what}`);
  }
  return problems;
}
"""


# a Python repr on a page: a dict or a list of strings (raw or HTML-escaped), an empty one, or None as a value
# ("None." and "None (...)" are words)
PY_REPR = re.compile(r">(?:\{\}|\[\])<|[{\[](?:'|&#39;)|\bNone\b(?!\.| recorded| \()")


def python_reprs(html: str) -> list[str]:
    return [html[max(0, m.start() - 80) : m.end() + 40] for m in PY_REPR.finditer(html)]


async def _sees(buyer: Node, provider: str, offer_id: str | None = None) -> None:
    index = compute_of(buyer).market_index
    assert index is not None

    def ok(ad: Any) -> bool:
        return bool(ad.provider == provider and (offer_id is None or ad.offer.offer_id == offer_id))

    async with asyncio.timeout(DEADLINE), index.watch() as w:
        if any(ok(a) for a in await index.ads()):
            return
        async for ad in w:
            if ok(ad):
                return


async def _contract_state(url: str, contract_id: str, want: str) -> None:
    """Bounded wait for the contract to reach `want`, read through the API as the page does."""
    async with httpx.AsyncClient(base_url=url) as http, asyncio.timeout(DEADLINE):
        for _ in range(3000):
            if (await http.get(f"/contracts/{contract_id}")).json()["state"] == want:
                return
            await asyncio.sleep(0.01)
    raise AssertionError(f"{contract_id} never reached {want}")


async def test_the_marketplace_loop_in_a_browser(
    make_node: NodeFactory, browser: Any, shots: Path, tmp_path: Path
) -> None:
    seller = await make_node("seller", hub=True, sell=True)
    assert seller.hub is not None
    buyer = await make_node("buyer", hubs=[seller.hub.url], settlement="local")
    c = compute_of(buyer)
    assert c.settlement is not None
    await c.settlement.mint(buyer.did, FUNDS, actor=buyer.did, idem="fund-buyer")
    c.settler.settings = dataclasses.replace(c.settler.settings, auto_release=False)  # the person releases
    servers = [ApiServer(seller, port=0), ApiServer(buyer, port=0)]
    sell_url, buy_url = [await s.start() for s in servers]
    module = tmp_path / "hello.wasm"
    module.write_bytes(wat.hello(content="bought in a browser\n"))
    page = await browser.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console.append(str(e)))
    try:
        # overview
        await page.goto(f"{buy_url}/ui/")
        assert buyer.did in await page.inner_text("main")
        await page.screenshot(path=str(shots / "overview.png"), full_page=True)

        # create an offer on the seller: a bad price first, shown next to its field
        await page.goto(f"{sell_url}/ui/offers/new")
        assert await page.evaluate(A11Y) == []
        await page.fill("#f-offer_id", "ui-offer")
        await page.fill("#f-cpu_second", "-1")
        await page.click("button[type=submit]")
        error = page.locator(".field-error[data-field=cpu_second]")
        assert "non-negative integer" in await error.inner_text()
        assert await page.get_attribute("#f-cpu_second", "aria-invalid") == "true"
        assert await page.evaluate(A11Y) == []
        await page.screenshot(path=str(shots / "offer_bad.png"), full_page=True)
        await page.fill("#f-cpu_second", "1")
        await page.click("button[type=submit]")
        assert page.url.startswith(f"{sell_url}/ui/market")
        assert "ui-offer" in await page.inner_text("main")
        await _sees(buyer, seller.did, "ui-offer")

        # the market as the buyer sees it
        await page.goto(f"{buy_url}/ui/market")
        assert seller.did[:16] in await page.inner_text("main")
        await page.screenshot(path=str(shots / "market.png"), full_page=True)

        # create an intent: a bad budget first
        await page.goto(f"{buy_url}/ui/intents/new")
        assert await page.evaluate(A11Y) == []
        await page.fill("#f-module", str(module))
        await page.fill("#f-budget", "-5")
        await page.click("button[type=submit]")
        assert "positive integer" in await page.locator(".field-error[data-field=budget]").inner_text()
        await page.screenshot(path=str(shots / "intent_bad.png"), full_page=True)
        await page.fill("#f-budget", "1000")
        await page.click("button[type=submit]")
        assert "/ui/intents/intent-" in page.url
        assert await page.inner_text("#intent-status") == "open"

        # policy preview, then the match, each with the breakdown per candidate
        await page.click("#preview")
        assert await page.inner_text("#match-outcome") == "Would match.", await page.inner_text("#match-result")
        row = page.locator("table.breakdown tbody tr", has_text=seller.did[:16])
        assert "asked" in await row.inner_text()  # asked to bid: a preview places nothing
        assert await page.locator("table.breakdown th", has_text="Latency").count() == 1
        await page.screenshot(path=str(shots / "preview.png"), full_page=True)
        assert (await c.contracts.list()) == []  # the preview changed nothing
        await page.click("#match")
        assert (await page.inner_text("#match-outcome")).startswith("Matched")
        await page.screenshot(path=str(shots / "match.png"), full_page=True)
        [contract] = await c.contracts.list()
        job = await c.runner.wait(str(contract.job_id), DEADLINE)
        assert job["state"] == "completed", job
        await _contract_state(buy_url, contract.contract_id, "delivered")

        # the contract: release, the timeline updates; a second release is refused clearly
        await page.click(".contract-link")
        assert await page.inner_text("#contract-state") == "delivered"
        await page.click("#release")
        assert await page.inner_text("#settle-outcome") == "Done: release."
        events = await page.locator("#timeline li strong").all_inner_texts()
        assert events[-1] == "escrow_released" and events[0] == "created"
        await page.screenshot(path=str(shots / "contract.png"), full_page=True)
        await page.click("#release")
        refused = await page.inner_text("#settle-outcome")
        assert "contract_already_released" in refused and "already released" in refused
        await page.screenshot(path=str(shots / "contract_refused.png"), full_page=True)

        # the marketplace summary, then every other page renders without a console error
        await page.goto(f"{buy_url}/ui/market")
        summary = await page.inner_text("#marketplace-summary")
        assert f"Escrow released\n{contract.price}" in summary or f"Escrow released\t{contract.price}" in summary
        for name in ("contracts", "intents", "jobs", f"jobs/{contract.job_id}", "ledger", "trust", "training"):
            await page.goto(f"{buy_url}/ui/{name}")
            assert await page.locator("h1").count() == 1
            await page.screenshot(path=str(shots / f"{name.replace('/', '_')}.png"), full_page=True)
        await page.goto(f"{buy_url}/ui/trust")
        assert seller.did[:16] in await page.inner_text("#trust")  # the evidence the delivery left
        async with httpx.AsyncClient(base_url=buy_url) as http:
            scrape = (await http.get("/metrics")).text
        [trust_min] = [ln for ln in scrape.splitlines() if ln.startswith("agora_provider_trust_min ")]
        assert 0.0 < float(trust_min.split()[1]) < 1.0  # the seller's score, from evidence, not the "none" 1
        await page.goto(f"{buy_url}/ui/jobs")
        await page.click(f'a[href="/ui/jobs/{contract.job_id}"]')  # the list links to the job
        assert "hello from wat" in await page.inner_text("#logs")  # the job's log, as its provider streamed it
        assert await page.inner_text("#job-state") == "completed"
        verdicts = await page.locator("table.why tbody tr td:nth-child(2)").all_inner_texts()
        assert [v for v in verdicts if v.startswith("placed here")] == ["placed here at " + str(contract.price)]
        await page.screenshot(path=str(shots / "job.png"), full_page=True)
        assert "hello.txt" in await page.inner_text("main")  # its output

        # every page on both nodes, with data: nothing shown as a Python repr; peers by their devnet names
        devnet = {"hub": {"name": "seller", "did": seller.did}, "nodes": [{"name": "buyer", "did": buyer.did}]}
        (tmp_path / "devnet.json").write_text(json.dumps(devnet))  # the nodes' homes are tmp_path/NAME
        async with httpx.AsyncClient(base_url=buy_url) as http:
            [intent_id] = [i["intent_id"] for i in (await http.get("/intents")).json()["intents"]]
        pages = [p for p, _ in NAV] + [
            f"intents/{intent_id}",
            f"contracts/{contract.contract_id}",
            f"jobs/{contract.job_id}",
            "health",
        ]
        for url in (buy_url, sell_url):
            async with httpx.AsyncClient(base_url=url) as http:
                for path in pages:
                    html = (await http.get(f"/ui/{path}")).text
                    assert python_reprs(html) == [], (url, path, python_reprs(html))
        await page.goto(f"{buy_url}/ui/")
        seller_row = page.locator("#peers tbody tr", has_text="seller")
        assert await seller_row.count() == 1
        cells = await seller_row.locator("td").all_inner_texts()
        assert cells[0] == "seller" and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+ s ago\)", cells[3])
        await page.screenshot(path=str(shots / "overview_names.png"), full_page=True)
        await page.goto(f"{buy_url}/ui/market")
        await page.screenshot(path=str(shots / "market_after.png"), full_page=True)
        await page.goto(f"{buy_url}/ui/intents/new")
        assert "hello.wasm" in (await page.get_attribute("#f-module", "placeholder") or "")
        await page.screenshot(path=str(shots / "intent_new.png"), full_page=True)
        assert console == [], console
    finally:
        await page.close()
        for s in servers:
            await s.stop()


def _digits_parts(folder: Path, n: int) -> list[str]:
    """n NPZ parts of load_digits (300 rows each) in a folder the sandbox user can read."""
    x, y = load_digits(return_X_y=True)
    folder.chmod(0o755)
    paths = []
    for i, idx in enumerate(np.array_split(np.arange(300 * n), n)):
        np.savez(folder / f"part{i}.npz", x=x[idx] / 16.0, y=y[idx])
        paths.append(str(folder / f"part{i}.npz"))
    return paths


async def test_a_training_round_in_a_browser(make_node: NodeFactory, browser: Any, shots: Path, tmp_path: Path) -> None:
    """Start a training run from the training page (a bad spec first, shown next to it), see its contracts
    bound, the rounds, the per-provider updates and the accuracy plot; a contract's timeline shows the
    rounds it was bound to."""
    require_binary("bwrap", "bubblewrap")
    owner = await make_node("owner", hub=True, settlement="none")
    server = ApiServer(owner, port=0)
    url = await server.start()
    async with httpx.AsyncClient(base_url=url, timeout=DEADLINE) as http:
        for path in _digits_parts(tmp_path, 2):
            made = await http.post("/datasets", json={"path": path, "tags": ["digits"], "licence": "BSD-3-Clause"})
            assert made.status_code == 201, made.text
    spec = {
        "schema": {"features": [f"x{i}" for i in range(64)], "label": "y", "classes": [str(i) for i in range(10)]},
        "data_tags": ["digits"],
        "rounds": 2,
        "min_providers": 2,
        "max_providers": 2,
        "min_fit": 2,
        "round_deadline_s": 60,
        "hyper": {"learning_rate": 0.5},
        "max_update_norm": 1e4,
    }
    page = await browser.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console.append(str(e)))
    try:
        await page.goto(f"{url}/ui/training")
        assert await page.evaluate(A11Y) == []
        await page.fill("#f-spec", json.dumps({**spec, "rounds": 0}))
        await page.select_option("#f-providers", "local")
        await page.click("button[type=submit]")
        assert "rounds" in await page.locator(".field-error[data-field=spec]").inner_text()
        assert await page.get_attribute("#f-spec", "aria-invalid") == "true"
        assert await page.evaluate(A11Y) == []
        await page.screenshot(path=str(shots / "training_bad.png"), full_page=True)

        await page.fill("#f-spec", json.dumps(spec))
        await page.click("button[type=submit]")
        assert "Started run" in await page.inner_text("#start-outcome")
        run_id = page.url.split("started=")[1].split("&")[0]
        links = page.locator(f"#run-{run_id} .contract-link")
        assert await links.count() == 2  # one contract bound per data set
        async with httpx.AsyncClient(base_url=url, timeout=2 * DEADLINE + 10) as http:
            done = (await http.get(f"/training/runs/{run_id}", params={"wait_s": 2 * DEADLINE})).json()
            scrape = (await http.get("/metrics")).text
        assert done["state"] == "completed", done
        series = {s.name: s.value for f in text_string_to_metric_families(scrape) for s in f.samples}
        assert series["agora_training_rounds_total"] == 2 and series["agora_training_updates_delivered_total"] == 4
        assert series["agora_training_runs_active"] == 0 and series["agora_training_last_accuracy"] > 0.5
        await page.reload()
        assert await page.inner_text(f"#run-state-{run_id}") == "completed"
        assert await page.locator(f"#run-{run_id} table.rounds tbody tr").count() == 2
        assert "1, 2" in await page.locator(f"#run-{run_id} table.providers tbody tr").first.inner_text()
        plot = page.locator(f'#run-{run_id} svg[aria-label^="Accuracy by round"]')
        assert await plot.locator("circle").count() == 2
        await page.screenshot(path=str(shots / "training.png"), full_page=True)

        await links.first.click()
        events = await page.locator("#timeline li strong").all_inner_texts()
        assert events.count("bound_to_round") == 2, events  # the contract bound to each round
        await page.screenshot(path=str(shots / "training_contract.png"), full_page=True)
        assert console == [], console
    finally:
        await page.close()
        await server.stop()
