"""Privacy: a prompt with a unique marker goes through every path (success, streamed, embeddings, a failing
provider, a provider that hangs, a refusal over budget, a prompt over the context) and then every file under
every node's home (stores, event logs, journals, the hub's data) and everything logged is searched for the
marker, and for the output it produced: zero hits."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

import openai
import pytest

from agora.api import ApiServer
from agora.inference.runner import RunnerSpec
from agora.node.compute import compute_of
from agora.node.inference import inference_of
from agora.wire.model_offer import ModelOffer
from tests.integration.inference.test_market_openai import FUNDS, wait_for_model
from tests.integration.node.conftest import NodeFactory

pytestmark = pytest.mark.integration


def hits(root: Path, needles: list[bytes]) -> list[str]:
    found = []
    for f in root.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            found += [f"{f}: {n!r}" for n in needles if n in data]
    return found


async def test_no_prompt_or_output_reaches_disk_or_logs(
    make_node: NodeFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    marker = f"MARKER-{uuid.uuid4().hex}"
    seller = await make_node("seller", hub=True, sell=True)
    assert seller.hub is not None
    buyer = await make_node("buyer", hubs=[seller.hub.url], settlement="local")
    bank = compute_of(buyer).settlement
    assert bank is not None
    await bank.mint(buyer.did, FUNDS, actor=buyer.did, idem="fund")
    book = inference_of(seller).book
    await book.add(ModelOffer("ok-chat", "chat", 200, 100, 100), RunnerSpec("mock", options={"models": "ok-chat"}))
    await book.add(
        ModelOffer("ok-embed", "embeddings", 200, 100, 0), RunnerSpec("mock", options={"models": "ok-embed"})
    )
    await book.add(
        ModelOffer("bad-chat", "chat", 200, 1, 1), RunnerSpec("mock", options={"models": "bad-chat", "fail": "error"})
    )
    await book.add(
        ModelOffer("slow-chat", "chat", 200, 1, 1), RunnerSpec("mock", options={"models": "slow-chat", "fail": "hang"})
    )
    for m in ("ok-chat", "ok-embed", "bad-chat", "slow-chat"):
        await wait_for_model(buyer, m)
    inference_of(buyer).requester.run_timeout_s = 1.0
    api = ApiServer(buyer, port=0)
    url = await api.start()
    try:

        def every_path() -> dict[str, Any]:
            c = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
            msg = [{"role": "user", "content": f"tell me about {marker}"}]
            out: dict[str, Any] = {"errors": []}
            out["text"] = (
                c.chat.completions.create(model="ok-chat", messages=msg, max_tokens=4).choices[0].message.content
            )
            for _ in c.chat.completions.create(model="ok-chat", messages=msg, max_tokens=4, stream=True):
                pass
            c.embeddings.create(model="ok-embed", input=[marker])
            for model, extra in (
                ("bad-chat", {}),  # provider failure
                ("slow-chat", {}),  # timeout
                ("ok-chat", {"extra_body": {"provider": {"max_price": 0}}}),  # refusal: over budget
            ):
                try:
                    c.chat.completions.create(model=model, messages=msg, max_tokens=4, **extra)
                except openai.APIStatusError as exc:
                    out["errors"].append(exc.body["code"])
            try:  # over the context
                c.chat.completions.create(model="ok-chat", messages=[{"role": "user", "content": marker * 400}])
            except openai.APIStatusError as exc:
                out["errors"].append(exc.body["code"])
            return out

        out = await asyncio.to_thread(every_path)
    finally:
        await api.stop()
    assert out["errors"] == ["no_provider", "no_provider", "over_budget", "context_exceeded"]
    needles = [marker.encode(), out["text"].encode()]
    assert hits(tmp_path, needles) == []
    captured = capfd.readouterr()
    logged = caplog.text + captured.out + captured.err
    assert marker not in logged and out["text"] not in logged
