"""Quote -> route -> run -> verify the metering record -> pay, and every bad path of the issue."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from agora.clock import ManualClock
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.inference.provider import InferenceProvider
from agora.inference.requester import InferenceRequester, Outcome
from agora.inference.routing import RoutingPolicy
from agora.inference.runner import Delta, RunRequest, RunResult
from agora.inference.runner_mock import MockRunner, expected_output
from agora.ledger import InternalLedgerSettlement, Ledger, MemoryJournalStore
from agora.wire.inference import MeteringRecord, content_hash
from agora.wire.market import CapacityAd
from tests.unit.inference.net import CLOCK_START, Link, make_provider

OPERATOR = Keypair.generate()
FUNDS = 10_000


def chat(text: str = "hello there market", max_tokens: int = 16) -> RunRequest:
    return RunRequest("chat", "mock-chat", messages=({"role": "user", "content": text},), max_tokens=max_tokens)


async def market(
    runners: Sequence[MockRunner],
    *,
    payment: str = "pay_after",
    prices: Sequence[tuple[int, int]] | None = None,
    run_timeout_s: float = 30.0,
) -> tuple[InferenceRequester, list[InferenceProvider], InternalLedgerSettlement, Link, list[tuple[str, str]]]:
    clock = ManualClock(CLOCK_START)
    provs: list[InferenceProvider] = []
    ads: list[CapacityAd] = []
    for i, r in enumerate(runners):
        p, ad = await make_provider(clock, r, price=prices[i] if prices else (1000 * (i + 1), 1000 * (i + 1)))
        provs.append(p)
        ads.append(ad)
    me = Keypair.generate()
    bank = InternalLedgerSettlement(Ledger(MemoryJournalStore()), OPERATOR.did)
    await bank.mint(me.did, FUNDS, actor=OPERATOR.did, idem="fund")
    link = Link(me.did, provs)
    failures: list[tuple[str, str]] = []

    async def ads_now() -> list[CapacityAd]:
        return ads

    async def on_failure(provider: str, exc: AgoraError) -> None:
        failures.append((provider, exc.code))

    req = InferenceRequester(
        me.did,
        link,
        ads_now,
        settlement=bank,
        payment=payment,
        clock=clock,
        on_failure=on_failure,
        run_timeout_s=run_timeout_s,
        keypair=me,
    )
    return req, provs, bank, link, failures


@pytest.mark.parametrize("payment", ["pay_after", "pay_before"])
async def test_a_request_is_metered_verified_and_paid(payment: str) -> None:
    r, provs, bank, _, failures = await market([MockRunner()], payment=payment)
    req = chat()
    out = await r.run(req, RoutingPolicy("cheapest"))
    exp = expected_output(req)
    assert out.result.text == exp.text
    assert (out.record.tokens_in, out.record.tokens_out) == (exp.tokens_in, exp.tokens_out)
    assert out.record.prompt_hash == req.prompt_hash and out.record.output_hash == exp.output_hash
    assert out.paid == out.record.price == provs[0].book.get("mock-chat").offer.price(exp.tokens_in, exp.tokens_out) > 0
    assert await bank.balance(r.did) == FUNDS - out.paid
    assert await bank.balance(provs[0].did) == out.paid
    assert r.audit.accepted[provs[0].did] == 1 and r.totals.spend == out.paid and not failures
    esc = await bank.escrow(f"inference:{out.quote.cid}")
    assert esc is not None and esc.held == 0
    if payment == "pay_before":
        assert esc.released == 0  # the allowance came back, the price went by transfer
    else:  # the escrow was released against the record the requester countersigned, the rest refunded
        assert (esc.state, esc.released) == ("partially_released", out.paid) and esc.refunded > 0
        kinds = [e.kind for e in await bank.entries(r.did)]
        assert kinds[-2:] == ["escrow_lock", "escrow_release"] and "transfer" not in kinds
        release = (await bank.entries(r.did))[-1]
        assert str(out.record.cid) in release.receipts


async def test_fallback_on_429_5xx_garbage_and_model_not_found_each_provider_once() -> None:
    runners = [
        MockRunner(fail="rate_limit"),
        MockRunner(fail="error"),
        MockRunner(fail="garbage"),
        MockRunner(fail="not_found"),
        MockRunner(),
    ]
    r, provs, bank, link, failures = await market(runners)
    out = await r.run(chat(), RoutingPolicy("cheapest"))
    assert out.provider == provs[4].did
    assert [code for _, code in failures] == [
        "inference_rate_limited",
        "runner_failed",
        "runner_failed",
        "model_not_found",
    ]
    runs = [t for t, cmd in link.calls if cmd.endswith("/run")]
    assert len(runs) == len(set(runs)) == 5  # never the same provider twice
    for p in provs[:4]:
        assert await bank.balance(p.did) == 0


async def test_a_hanging_runner_times_out_and_falls_back() -> None:
    r, provs, _, _, failures = await market([MockRunner(fail="hang"), MockRunner()], run_timeout_s=0.3)
    out = await r.run(chat(), RoutingPolicy("cheapest"))
    assert out.provider == provs[1].did and failures == [(provs[0].did, "timeout")]


async def test_all_providers_failing_is_no_provider_and_nothing_is_paid() -> None:
    r, _, bank, _, _ = await market([MockRunner(fail="error"), MockRunner(fail="rate_limit")], payment="pay_before")
    with pytest.raises(AgoraError) as ei:
        await r.run(chat())
    assert ei.value.code == "no_provider"
    assert await bank.balance(r.did) == FUNDS  # the pay-before escrows were refunded whole


class Lying(InferenceProvider):
    """Signs a record that does not match what it delivered."""

    how = "tokens"

    async def serve(self, requester: str, quote_raw: bytes, req: RunRequest) -> tuple[RunResult, MeteringRecord]:
        res, rec = await super().serve(requester, quote_raw, req)
        from agora.wire.inference import Quote, content_hash

        q = Quote.open(quote_raw)
        kw = {
            "tokens_in": rec.tokens_in,
            "tokens_out": rec.tokens_out,
            "ttft_ms": 0,
            "duration_ms": 0,
            "prompt_hash": rec.prompt_hash,
            "output_hash": rec.output_hash,
        }
        if self.how == "tokens":
            kw["tokens_out"] = rec.tokens_out + 3
        elif self.how == "hash":
            kw["output_hash"] = content_hash("something else")
        bad = MeteringRecord.issue(self.keypair, quote=q, **kw)  # type: ignore[arg-type]
        return res, bad


@pytest.mark.parametrize("how", ["tokens", "hash"])
async def test_a_bad_record_is_refused_counted_unpaid_and_routing_falls_back(how: str) -> None:
    r, provs, bank, link, failures = await market([MockRunner(), MockRunner()], prices=[(1, 1), (5000, 5000)])
    liar = Lying(provs[0].keypair, provs[0].book, clock=provs[0].clock)
    liar.how = how
    link.providers[liar.did] = liar
    out = await r.run(chat(), RoutingPolicy("cheapest"))
    assert out.provider == provs[1].did
    assert failures == [(liar.did, "metering_invalid")]
    assert r.audit.refused[liar.did] == 1 and r.totals.refused_records == 1
    assert await bank.balance(liar.did) == 0
    refused = [e for e in await bank.entries(r.did) if e.kind.startswith("escrow")][:2]
    assert [e.kind for e in refused] == ["escrow_lock", "escrow_refund"]  # its escrow came back whole


async def test_unknown_model_over_budget_and_oversized_prompt_fail_before_any_payment() -> None:
    r, provs, bank, link, _ = await market([MockRunner()])
    with pytest.raises(AgoraError) as ei:
        await r.run(dataclasses.replace(chat(), model="no-such-model"))
    assert ei.value.code == "model_not_found" and ei.value.http_status == 404
    with pytest.raises(AgoraError) as ei:
        await r.run(chat(), RoutingPolicy(max_price=0))
    assert ei.value.code == "over_budget"
    with pytest.raises(AgoraError) as ei:
        await r.run(chat("word " * 2000))  # context 1000
    assert ei.value.code == "context_exceeded"
    assert link.calls == [] and provs[0].stats["quotes"] == 0
    assert await bank.balance(r.did) == FUNDS


async def test_a_quote_past_valid_until_is_refused_by_the_provider() -> None:
    r, provs, _, _, _ = await market([MockRunner()])
    p = provs[0]
    q = p.make_quote(r.did, "mock-chat", 10, 10)
    assert isinstance(p.clock, ManualClock)
    p.clock.advance(61)
    with pytest.raises(AgoraError) as ei:
        await p.serve(r.did, q.raw, chat())
    assert ei.value.code == "quote_expired"
    with pytest.raises(AgoraError) as ei:  # and a quote made for someone else
        await p.serve(Keypair.generate().did, p.make_quote(r.did, "mock-chat", 1, 1).raw, chat())
    assert ei.value.code == "quote_invalid"


async def test_quotes_are_signed_and_ordered_by_the_strategy() -> None:
    r, provs, _, _, _ = await market([MockRunner(), MockRunner()], prices=[(5000, 5000), (5, 5)])
    qs = await r.quotes("mock-chat", 100, 100, RoutingPolicy("cheapest"))
    assert [q.provider for q in qs] == [provs[1].did, provs[0].did]
    assert all(q.requester == r.did and q.valid_until > q.iat for q in qs)


async def test_embeddings_are_metered_with_input_tokens_only() -> None:
    r, _, _, _, _ = await market([MockRunner()])
    out = await r.run(RunRequest("embeddings", "mock-embed", inputs=("a b", "c")))
    assert len(out.result.embeddings) == 2 and out.record.tokens_in == 3 and out.record.tokens_out == 0


async def test_without_the_funds_for_the_quote_nothing_runs() -> None:
    r, provs, bank, link, _ = await market([MockRunner()])
    await bank.transfer(r.did, OPERATOR.did, FUNDS, actor=r.did, idem="drain")
    with pytest.raises(AgoraError) as ei:
        await r.run(chat())
    assert ei.value.code == "insufficient_funds" and ei.value.http_status == 402
    assert provs[0].stats["served"] == 0 and not [c for c in link.calls if c[1].endswith("/run")]


async def collect(r: InferenceRequester, req: RunRequest, **kw: object) -> tuple[list[str], object]:
    deltas: list[str] = []
    last: object = None
    async for ev in r.stream(req, RoutingPolicy("cheapest", **kw)):  # type: ignore[arg-type]
        if isinstance(ev, Delta):
            deltas.append(ev.text)
        else:
            last = ev
    return deltas, last


async def test_a_stream_is_delivered_metered_verified_and_paid() -> None:
    r, provs, bank, _, failures = await market([MockRunner(fail="rate_limit"), MockRunner()], payment="pay_before")
    req = chat()
    deltas, out = await collect(r, req)
    assert isinstance(out, Outcome) and out.provider == provs[1].did  # fell back before the first delta
    exp = expected_output(req)
    assert "".join(deltas) == exp.text == out.result.text and len(deltas) == exp.tokens_out
    assert not out.record.partial and out.record.tokens_out == exp.tokens_out
    assert out.paid == out.record.price > 0 and await bank.balance(provs[1].did) == out.paid
    assert failures == [(provs[0].did, "inference_rate_limited")]


async def test_a_runner_that_stops_mid_stream_is_paid_for_what_was_delivered() -> None:
    r, provs, bank, _, _ = await market([MockRunner(fail="die")])
    deltas, out = await collect(r, chat())
    assert isinstance(out, Outcome) and len(deltas) == 1
    assert out.record.partial and out.record.tokens_out == 1 and out.record.output_hash == content_hash(deltas[0])
    assert await bank.balance(provs[0].did) == out.paid == out.record.price


async def test_a_provider_gone_mid_stream_is_paid_nothing() -> None:
    r, provs, bank, link, failures = await market([MockRunner(delay_s=0.05)], payment="pay_before")
    deltas: list[str] = []
    with pytest.raises(AgoraError) as ei:
        async for ev in r.stream(chat(), RoutingPolicy("cheapest")):
            assert isinstance(ev, Delta)
            deltas.append(ev.text)
            link.gone.add(provs[0].did)  # after the first delta the provider stops answering
    assert ei.value.code == "timeout" and deltas
    assert await bank.balance(r.did) == FUNDS and await bank.balance(provs[0].did) == 0
    assert failures == [(provs[0].did, "timeout")]


async def test_a_quoted_request_is_answered_by_the_quotes_provider_without_reading_the_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    r, provs, bank, link, _ = await market([MockRunner(), MockRunner()])
    quotes = await r.quotes("mock-chat", 10, 16, RoutingPolicy("cheapest"))
    q = quotes[1]  # the dearer provider's: the one routing would NOT pick first
    assert q.provider == provs[1].did

    async def no_ads() -> list[CapacityAd]:  # the index read misses the provider's ad after the quote
        return []

    monkeypatch.setattr(r, "_ads", no_ads)
    link.calls.clear()
    out = await r.run(chat(), RoutingPolicy("cheapest"), quote=str(q.cid))
    assert out.provider == q.provider and out.quote.cid == q.cid and out.record.quote == q.cid
    assert link.calls == [(q.provider, "/agora/inference/run")]  # no second quote, no other provider
    assert out.paid == out.record.price > 0 and await bank.balance(q.provider) == out.paid
    # one quote, one request: it is used up; an unknown CID is no quote either
    for cid in (str(q.cid), "bafynotaquote"):
        with pytest.raises(AgoraError) as e:
            await r.run(chat(), quote=cid)
        assert e.value.code == "quote_invalid"


async def test_a_held_quote_is_checked_before_anything_is_paid() -> None:
    r, provs, bank, link, _ = await market([MockRunner()])
    q = (await r.quotes("mock-chat", 10, 16, RoutingPolicy()))[0]
    with pytest.raises(AgoraError) as e:  # another model than the quote's
        await r.run(dataclasses.replace(chat(), model="mock-embed"), quote=str(q.cid))
    assert e.value.code == "quote_invalid"
    with pytest.raises(AgoraError) as e:
        await r.run(chat(), RoutingPolicy(max_price=q.max_total - 1), quote=str(q.cid))
    assert e.value.code == "quote_invalid"
    with pytest.raises(AgoraError) as e:
        await r.run(chat("x " * 2000), quote=str(q.cid))
    assert e.value.code == "context_exceeded"
    assert isinstance(r.clock, ManualClock)
    r.clock.advance(q.valid_until - r.clock.now() + 1)
    with pytest.raises(AgoraError) as e:
        await r.run(chat(), quote=str(q.cid))
    assert e.value.code == "quote_expired"
    assert await bank.balance(provs[0].did) == 0 and not any(cmd.endswith("/run") for _, cmd in link.calls)
