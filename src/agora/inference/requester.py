"""The requester's side (a node routing for itself, or a hub routing for its members): quote, route, run,
verify the metering record, pay.

One request goes: candidates from the verified capacity ads offering the model -> a clear error before
anything is paid when the prompt cannot fit any offer's context (`context_exceeded`) or every offer's
estimate is over `max_price` (`over_budget`) -> `plan` (strategy + controls) -> for each planned provider,
at most once: a signed quote (it must verify, be for this node and model, and stay within `max_price`),
the payment's first step, the run, the metering record verified against what was sent and received ->
payment. `quotes()` holds the quotes it got (by CID, bounded, until used or expired): `run(quote=CID)`
goes to that quote's provider under it, with the offer it was quoted under, and reads no ads (a quote shown
to a person is the one their request is answered under). A failed attempt refunds what it locked and is
reported (`on_failure`: trust's reliability penalty); a record that does not verify is refused, counted
(`audit`) and never paid.

Payment (`payment`):
- `pay_after` (default): an escrow per request (contract `inference:<quote CID>`: one quote, one request)
  locks the most a verified record can charge (the quote's prices applied to the offer's context and the
  request's `max_tokens`, at most the balance) before the run; after a verified answer the requester
  countersigns the provider's record and the ledger releases the escrow against it (both signatures, the
  parties, the escrow the record's quote names, the price <= locked): the price goes to the provider and
  the rest comes back in the same entry. After a failure the escrow is refunded whole. (A record priced
  over what was locked, which the checks above make impossible for chat, is paid by refund + transfer.)
- `pay_before`: the quote's `max_total` (its prices applied to the estimate: the allowance) is locked in
  escrow under contract `inference:<quote CID>` before the run; after a verified answer the escrow is
  refunded and the record's price transferred, so the unused part of the allowance comes back; after a
  failure the escrow is refunded whole.
`settlement=None` runs without payment (tests, a free network).

Via a router (`router=` a hub's DID, `inference/router.py`): `run` sends the request to the hub, which
quotes, routes, runs, verifies and pays the provider the same way; this side still verifies the provider's
signed quote and record itself (the provider offers the model in a live ad, the hashes, counts, prices,
`max_price`) and then pays the hub the record's price by transfer, citing the record. `stream` goes through
the hub too (`route_stream`, followed with `route_watch`): the hub passes the provider's deltas on
unchanged and, at the end, the provider's quote and record, checked here against the text received the same
way (a `partial` record may count no more tokens than deltas came) before the hub is paid. Quotes stay
direct.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agora.clock import SYSTEM_CLOCK, Clock
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.inference.metering import Expected, MeteringAudit
from agora.inference.provider import check_context, estimate_tokens
from agora.inference.routing import (
    FALLBACK_CODES,
    Candidate,
    ProviderStats,
    RoutingPolicy,
    candidates_from_ads,
    fallback,
    plan,
)
from agora.inference.rpc import (
    QUOTE_CMD,
    ROUTE_CMD,
    ROUTE_STREAM_CMD,
    ROUTE_WATCH_CMD,
    RPC_VERSION,
    RUN_CMD,
    STREAM_CMD,
    WATCH_CMD,
    policy_to_wire,
    request_to_wire,
    result_from_wire,
)
from agora.inference.runner import Delta, RunRequest, RunResult
from agora.ledger import Settlement
from agora.wire.inference import MeteringRecord, Quote, content_hash
from agora.wire.market import CapacityAd
from agora.wire.settle import countersign_record, inference_contract

Call = Callable[[str, str, dict[str, Any], float], Awaitable[Any]]  # (provider, command, args, timeout)
PAYMENTS = ("pay_after", "pay_before")
MAX_HELD_QUOTES = 256  # quotes `quotes()` got and a later `run(quote=...)` may use (oldest dropped first)
WATCH_WAIT_S = 5.0  # how long one watch call of a stream waits on the provider for new text


@dataclass(frozen=True)
class Outcome:
    provider: str
    quote: Quote
    record: MeteringRecord
    result: RunResult
    paid: int


@dataclass
class Totals:
    requests: int = 0
    spend: int = 0
    refused_records: int = 0
    failures: int = 0
    by_provider: dict[str, int] = field(default_factory=dict)

    def count(self, provider: str, paid: int) -> None:
        """One request served and paid (`paid`, 0 without a settlement)."""
        self.requests += 1
        self.spend += paid
        self.by_provider[provider] = self.by_provider.get(provider, 0) + paid


def estimate_out(req: RunRequest) -> int:
    return 0 if req.kind == "embeddings" else req.max_tokens


class InferenceRequester:
    def __init__(
        self,
        did: str,
        call: Call,
        ads: Callable[[], Awaitable[Sequence[CapacityAd]]],
        *,
        settlement: Settlement | None = None,
        payment: str = "pay_after",
        clock: Clock = SYSTEM_CLOCK,
        on_failure: Callable[[str, AgoraError], Awaitable[None]] | None = None,
        cooling: Callable[[str], bool] = lambda _p: False,
        quote_timeout_s: float = 5.0,
        run_timeout_s: float = 60.0,
        keypair: Keypair | None = None,
        router: str | None = None,
    ) -> None:
        if payment not in PAYMENTS:
            raise AgoraError("config_invalid", f"payment must be one of {', '.join(PAYMENTS)}")
        if keypair is not None and keypair.did != did:
            raise AgoraError("config_invalid", "the requester's keypair is not its DID's")
        if settlement is not None and payment == "pay_after" and keypair is None:
            raise AgoraError("config_invalid", "pay_after countersigns metering records: give the requester's keypair")
        self.did = did
        self._keypair = keypair
        self.router = router or None
        self._call = call
        self._ads = ads
        self.settlement = settlement
        self.payment = payment
        self.clock = clock
        self._on_failure = on_failure
        self._cooling = cooling
        self.quote_timeout_s = quote_timeout_s
        self.run_timeout_s = run_timeout_s
        self.stats: dict[str, ProviderStats] = {}
        self._held: dict[str, tuple[Candidate, Quote]] = {}  # by quote CID, until used or expired
        self.audit = MeteringAudit()
        self.totals = Totals()

    async def candidates(self, model: str) -> list[Candidate]:
        return candidates_from_ads(await self._ads(), model, self.clock.now(), self.stats)

    async def models(self) -> dict[str, list[Candidate]]:
        """Every model offered in the live ads, with its candidates."""
        out: dict[str, list[Candidate]] = {}
        now = self.clock.now()
        for ad in await self._ads():
            if ad.expires_at < now:
                continue
            for m in ad.models:
                out.setdefault(m.model, []).append(
                    Candidate(ad.provider, m, self.stats.setdefault(ad.provider, ProviderStats()))
                )
        return dict(sorted(out.items()))

    async def _eligible(
        self, model: str, est_in: int, est_out: int, policy: RoutingPolicy, req: RunRequest | None
    ) -> list[Candidate]:
        cands = await self.candidates(model)
        if not cands:
            raise AgoraError("model_not_found", f"no provider offers model {model!r} now", details={"model": model})
        if req is not None:
            fits = [c for c in cands if c.offer.context >= est_in]
            if not fits:
                check_context(req, max(c.offer.context for c in cands))  # raises context_exceeded
                fits = cands
            cands = fits
        if policy.max_price is not None and all(c.estimate(est_in, est_out) > policy.max_price for c in cands):
            cheapest = min(c.estimate(est_in, est_out) for c in cands)
            raise AgoraError(
                "over_budget",
                f"the cheapest offer of {model!r} costs about {cheapest}, over max_price {policy.max_price}",
                details={"cheapest": cheapest, "max_price": policy.max_price},
            )
        return plan(cands, policy, est_in, est_out, cooling=self._cooling)

    async def _quote(self, c: Candidate, model: str, est_in: int, est_out: int, policy: RoutingPolicy) -> Quote:
        reply = await self._call(
            c.provider,
            QUOTE_CMD,
            {"v": RPC_VERSION, "model": model, "est_in": est_in, "est_out": est_out},
            self.quote_timeout_s,
        )
        raw = reply.get("quote") if isinstance(reply, dict) else None
        q = Quote.open(raw if isinstance(raw, bytes) else b"", expected_signer=c.provider)
        q.check_valid(self.clock.now(), requester=self.did, model=model)
        if policy.max_price is not None and q.max_total > policy.max_price:
            raise AgoraError("quote_invalid", f"the provider quoted {q.max_total}, over max_price {policy.max_price}")
        return q

    async def quotes(self, model: str, est_in: int, est_out: int, policy: RoutingPolicy) -> list[Quote]:
        """Signed quotes from the planned providers (those that answer), in plan order."""
        out = []
        for c in await self._eligible(model, est_in, est_out, policy, None):
            try:
                q = await self._quote(c, model, est_in, est_out, policy)
            except AgoraError as exc:
                await self._failed(c, exc)
                continue
            self._hold(c, q)
            out.append(q)
        return out

    def _hold(self, c: Candidate, q: Quote) -> None:
        """Keep a quote (with the offer it was asked under) for a `run(quote=...)`: bounded, expired ones
        dropped first, then the oldest."""
        now = self.clock.now()
        for cid in [cid for cid, (_, held) in self._held.items() if held.valid_until < now]:
            del self._held[cid]
        while len(self._held) >= MAX_HELD_QUOTES:
            del self._held[next(iter(self._held))]
        self._held[str(q.cid)] = (c, q)

    def _take_quote(self, cid: str, req: RunRequest, policy: RoutingPolicy) -> tuple[Candidate, Quote]:
        """A quote `quotes()` got, for this request (one quote, one request: it is used up here)."""
        held = self._held.get(cid)
        if held is None:
            raise AgoraError(
                "quote_invalid",
                f"this node holds no quote {cid} (not one of its `quote` answers, used, or dropped): ask again",
                details={"quote": cid},
            )
        c, q = held
        q.check_valid(self.clock.now(), requester=self.did, model=req.model)  # quote_expired / quote_invalid
        if policy.max_price is not None and q.max_total > policy.max_price:
            raise AgoraError("quote_invalid", f"the provider quoted {q.max_total}, over max_price {policy.max_price}")
        check_context(req, c.offer.context)  # context_exceeded before any money moves
        del self._held[cid]
        return c, q

    async def _failed(self, c: Candidate, exc: AgoraError) -> None:
        self.totals.failures += 1
        st = self.stats.setdefault(c.provider, ProviderStats())
        st.failures += 1
        if self._on_failure is not None:
            await self._on_failure(c.provider, exc)

    async def run(self, req: RunRequest, policy: RoutingPolicy | None = None, *, quote: str | None = None) -> Outcome:
        """One request: through the router when this node has one, else routed here. With `quote` (the CID
        of a quote `quotes()` got) it goes to THAT quote's provider under that quote, directly, without
        looking the model up again."""
        if self.router is not None and quote is None:
            return await self._via_router(self.router, req, policy or RoutingPolicy())
        return await self.run_direct(req, policy, quote=quote)

    async def _via_router(self, router: str, req: RunRequest, policy: RoutingPolicy) -> Outcome:
        args = {"v": RPC_VERSION, "request": request_to_wire(req), "policy": policy_to_wire(policy)}
        try:
            reply = await self._call(router, ROUTE_CMD, args, self.run_timeout_s + self.quote_timeout_s)
        except TimeoutError:
            raise AgoraError("timeout", f"the router did not answer within {self.run_timeout_s} s") from None
        provider, quote_raw, meter_raw = _routed_evidence(reply)
        res = result_from_wire(reply.get("result"))
        q, rec = await self._verify_routed(
            router, provider, quote_raw, meter_raw, req, policy, res.output_hash, res.tokens_in, res.tokens_out
        )
        paid = await self._pay_router(router, provider, rec)
        return Outcome(provider, q, rec, res, paid)

    async def _verify_routed(
        self,
        router: str,
        provider: str,
        quote_raw: bytes,
        meter_raw: bytes,
        req: RunRequest,
        policy: RoutingPolicy,
        output_hash: str,
        tokens_in: int | None = None,
        tokens_out: int | None = None,
        delivered: int | None = None,
    ) -> tuple[Quote, MeteringRecord]:
        """The provider's quote and record that a router handed back, checked here: the provider offers the
        model in a live ad, the quote is its (for the router, this model), the record matches what was sent
        and received (`delivered`: deltas of a stream), within `max_price`."""
        try:
            offers = {c.provider: c.offer for c in await self.candidates(req.model)}
            if provider not in offers:
                raise AgoraError("metering_invalid", "the router's provider offers no such model in a live ad")
            q = Quote.open(quote_raw, expected_signer=provider)
            if q.requester != router or q.model != req.model:
                raise AgoraError("metering_invalid", "the provider's quote is not the router's for this model")
            rec = self.audit.check(
                meter_raw,
                quote=q,
                expected=Expected(
                    req.prompt_hash,
                    output_hash,
                    tokens_in=tokens_in,
                    tokens_out=tokens_out,
                    max_tokens=None if req.kind == "embeddings" else req.max_tokens,
                    context=offers[provider].context,
                ),
            )
            if delivered is not None:
                self._check_partial(provider, rec, delivered)
            if policy.max_price is not None and rec.price > policy.max_price:
                raise AgoraError("metering_invalid", f"the record's price {rec.price} is over max_price")
        except AgoraError:
            self.totals.refused_records += 1
            raise
        return q, rec

    def _check_partial(self, provider: str, rec: MeteringRecord, delivered: int) -> None:
        """A `partial` record meters what was delivered: no more tokens than deltas came (else refused)."""
        if rec.partial and rec.tokens_out > delivered:
            self.audit.accepted[provider] -= 1
            self.audit.refused[provider] += 1
            raise AgoraError("metering_invalid", "a partial record counts more tokens than were delivered")

    async def _pay_router(self, router: str, provider: str, rec: MeteringRecord) -> int:
        """Pay the router the verified record's price (it advanced the provider's), citing the record."""
        paid = 0
        if self.settlement is not None and rec.price > 0:
            await self._transfer(router, rec, f"inference via router, metering {rec.cid}")
            paid = rec.price
        self.totals.count(provider, paid)
        return paid

    async def _transfer(self, payee: str, rec: MeteringRecord, memo: str) -> None:
        """Pay `rec`'s price to `payee` by transfer, once per record (the idempotency key names it)."""
        assert self.settlement is not None
        await self.settlement.transfer(
            self.did, payee, rec.price, actor=self.did, idem=f"inference:{rec.cid}", memo=memo
        )

    async def run_direct(
        self, req: RunRequest, policy: RoutingPolicy | None = None, *, quote: str | None = None
    ) -> Outcome:
        """Quote, route, run, verify and pay here (what a router does for its members too). With `quote`: the
        one provider that signed it, under it (the market index is not read again: the offer it was quoted
        under is the one kept with the quote)."""
        policy = policy or RoutingPolicy()
        est_in, est_out = estimate_tokens(req), estimate_out(req)
        held: Quote | None = None
        if quote is not None:
            c, held = self._take_quote(quote, req, policy)
            planned = [c]
        else:
            planned = await self._eligible(req.model, est_in, est_out, policy, req)

        async def attempt(c: Candidate) -> Outcome:
            return await self._attempt(c, req, est_in, est_out, policy, held)

        async def failed(c: Candidate, exc: AgoraError) -> None:
            await self._failed(c, exc)

        out = await fallback(planned, attempt, on_failure=failed, model=req.model)
        self.totals.count(out.provider, out.paid)
        return out

    async def _attempt(
        self, c: Candidate, req: RunRequest, est_in: int, est_out: int, policy: RoutingPolicy, held: Quote | None
    ) -> Outcome:
        q, balance = await self._admit_quote(c, req, est_in, est_out, policy, held)  # before the run: funds for it
        contract = inference_contract(q.cid)
        locked = 0
        try:
            locked = await self._lock(c, q, req, balance)
            try:
                reply = await self._call(
                    c.provider,
                    RUN_CMD,
                    {"v": RPC_VERSION, "quote": q.raw, "request": request_to_wire(req)},
                    self.run_timeout_s,
                )
            except TimeoutError:
                raise AgoraError("timeout", f"the provider did not answer within {self.run_timeout_s} s") from None
            if not isinstance(reply, dict) or not isinstance(reply.get("meter"), bytes):
                raise AgoraError("runner_failed", "the provider's answer has no metering record")
            res = result_from_wire(reply.get("result"))
            try:
                rec = self.audit.check(
                    reply["meter"],
                    quote=q,
                    expected=Expected(
                        req.prompt_hash,
                        res.output_hash,
                        tokens_in=res.tokens_in,
                        tokens_out=res.tokens_out,
                        max_tokens=None if req.kind == "embeddings" else req.max_tokens,
                        context=c.offer.context,
                    ),
                )
            except AgoraError:
                self.totals.refused_records += 1
                raise
        except BaseException:
            if locked and self.settlement is not None:
                await self.settlement.refund(contract, actor=self.did, idem=f"{contract}:refund", reason="failed")
            raise
        paid = await self._pay(c.provider, contract, locked, rec)
        self.stats.setdefault(c.provider, ProviderStats()).observe(res.tokens_out, res.duration_s, res.ttft_s)
        return Outcome(c.provider, q, rec, res, paid)

    async def _admit_quote(
        self,
        c: Candidate,
        req: RunRequest,
        est_in: int,
        est_out: int,
        policy: RoutingPolicy,
        held: Quote | None = None,
    ) -> tuple[Quote, int]:
        """The quote (`held`: one already got, else a new one), and the balance that covers it (0 when nothing
        is paid)."""
        q = held if held is not None else await self._quote(c, req.model, est_in, est_out, policy)
        balance = 0
        if self.settlement is not None and q.max_total > 0:
            balance = await self.settlement.balance(self.did)
            if balance < q.max_total:
                raise AgoraError(
                    "insufficient_funds",
                    f"this request may cost up to {q.max_total}; the account holds {balance}",
                    details={"needed": q.max_total, "balance": balance},
                )
        return q, balance

    async def _lock(self, c: Candidate, q: Quote, req: RunRequest, balance: int) -> int:
        """Lock this request's escrow before the run; the amount locked (0: none). pay_before: the quote's
        allowance; pay_after: what a verified record can charge at most (capped by the balance)."""
        if self.settlement is None or q.max_total <= 0:
            return 0
        if self.payment == "pay_before":
            amount = q.max_total
        else:
            amount = max(q.max_total, min(balance, q.price(c.offer.context, estimate_out(req))))
        contract = inference_contract(q.cid)
        await self.settlement.lock(contract, self.did, c.provider, amount, actor=self.did, idem=f"{contract}:lock")
        return amount

    async def stream(
        self, req: RunRequest, policy: RoutingPolicy | None = None
    ) -> AsyncGenerator[Delta | Outcome, None]:
        """Like `run`, streamed: `Delta`s as the provider's runner produces them, then the `Outcome`. Routing
        falls back only before the first delta; a provider that stops mid-way (an error, or it is gone) ends
        the stream with its error and is paid nothing; a runner that stopped mid-way is paid by a `partial`
        record for what was delivered, when it verifies. Through the router when this node has one."""
        policy = policy or RoutingPolicy()
        if self.router is not None:
            async with contextlib.aclosing(self._stream_via_router(self.router, req, policy)) as routed:
                async for ev in routed:
                    yield ev
            return
        est_in, est_out = estimate_tokens(req), estimate_out(req)
        planned = await self._eligible(req.model, est_in, est_out, policy, req)
        attempts: list[dict[str, str]] = []
        for c in planned:
            delivered: list[str] = []
            contract, locked = "", 0
            try:
                q, balance = await self._admit_quote(c, req, est_in, est_out, policy)
                contract = inference_contract(q.cid)
                locked = await self._lock(c, q, req, balance)
                args = {"v": RPC_VERSION, "quote": q.raw, "request": request_to_wire(req)}
                opened = await self._call(c.provider, STREAM_CMD, args, self.quote_timeout_s)
                sid = opened.get("session") if isinstance(opened, dict) else None
                if not isinstance(sid, str):
                    raise AgoraError("runner_failed", "the provider did not open a stream")
                end: dict[str, Any] = {}
                async with contextlib.aclosing(self._follow(c.provider, WATCH_CMD, sid, delivered, end)) as deltas:
                    async for d in deltas:
                        yield d
                meter = end.get("meter") if isinstance(end.get("meter"), bytes) else None
                if meter is None:
                    raise AgoraError("metering_invalid", "the stream ended without a metering record")
                text = "".join(delivered)
                try:
                    rec = self.audit.check(
                        meter,
                        quote=q,
                        expected=Expected(
                            req.prompt_hash, content_hash(text), max_tokens=req.max_tokens, context=c.offer.context
                        ),
                    )
                    self._check_partial(c.provider, rec, len(delivered))
                except AgoraError:
                    self.totals.refused_records += 1
                    raise
            except AgoraError as exc:
                if locked and self.settlement is not None:
                    await self.settlement.refund(contract, actor=self.did, idem=f"{contract}:refund", reason="failed")
                await self._failed(c, exc)
                attempts.append({"provider": c.provider, "code": exc.code, "message": exc.message})
                if delivered or exc.code not in FALLBACK_CODES:
                    raise
                continue
            except BaseException:  # the reader went away: nothing verified, nothing paid
                if locked and self.settlement is not None:
                    await self.settlement.refund(contract, actor=self.did, idem=f"{contract}:refund", reason="closed")
                raise
            paid = await self._pay(c.provider, contract, locked, rec)
            res = _streamed_result(text, rec, req)
            self.stats.setdefault(c.provider, ProviderStats()).observe(res.tokens_out, res.duration_s, res.ttft_s)
            self.totals.count(c.provider, paid)
            yield Outcome(c.provider, q, rec, res, paid)
            return
        if not planned:
            raise AgoraError("model_not_found", f"no eligible provider offers model {req.model!r} now")
        raise AgoraError(
            "no_provider", f"all {len(attempts)} provider(s) of {req.model!r} failed", details={"attempts": attempts}
        )

    async def _follow(
        self, target: str, command: str, sid: str, delivered: list[str], end: dict[str, Any]
    ) -> AsyncGenerator[Delta, None]:
        """Watch a stream session on `target` to its end: each new text as a `Delta` (also appended to
        `delivered`); the last watch reply in `end`; its error raised. Bounded: each watch waits at most
        WATCH_WAIT_S, the whole stream run_timeout_s (and a quote's time more through a router)."""
        limit_s = self.run_timeout_s + WATCH_WAIT_S + (self.quote_timeout_s if command == ROUTE_WATCH_CMD else 0.0)
        t0 = self.clock.monotonic()
        while True:
            if self.clock.monotonic() - t0 > limit_s:
                raise AgoraError("timeout", f"the stream did not finish within {self.run_timeout_s} s")
            w = await self._call(
                target,
                command,
                {"v": RPC_VERSION, "session": sid, "cursor": len(delivered), "wait": WATCH_WAIT_S},
                WATCH_WAIT_S + self.quote_timeout_s,
            )
            if not isinstance(w, dict) or not isinstance(w.get("deltas"), list):
                raise AgoraError("runner_failed", "the provider's stream reply is malformed")
            for d in w["deltas"]:
                delivered.append(str(d))
                yield Delta(str(d))
            if w.get("error"):
                raise AgoraError.from_dict(w["error"])
            if w.get("done"):
                end.update(w)
                return

    async def _stream_via_router(
        self, router: str, req: RunRequest, policy: RoutingPolicy
    ) -> AsyncGenerator[Delta | Outcome, None]:
        """A stream through the hub: its deltas as they come (the provider's, unchanged), then the provider's
        quote and record checked against the text received, then the hub paid. A failure anywhere pays
        nothing; the hub refunds the provider's escrow."""
        args = {"v": RPC_VERSION, "request": request_to_wire(req), "policy": policy_to_wire(policy)}
        opened = await self._call(router, ROUTE_STREAM_CMD, args, self.quote_timeout_s)
        sid = opened.get("session") if isinstance(opened, dict) else None
        if not isinstance(sid, str):
            raise AgoraError("runner_failed", "the router did not open a stream")
        delivered: list[str] = []
        end: dict[str, Any] = {}
        async with contextlib.aclosing(self._follow(router, ROUTE_WATCH_CMD, sid, delivered, end)) as deltas:
            async for d in deltas:
                yield d
        provider, quote_raw, meter_raw = _routed_evidence(end)
        text = "".join(delivered)
        q, rec = await self._verify_routed(
            router, provider, quote_raw, meter_raw, req, policy, content_hash(text), delivered=len(delivered)
        )
        paid = await self._pay_router(router, provider, rec)
        yield Outcome(provider, q, rec, _streamed_result(text, rec, req), paid)

    async def _pay(self, provider: str, contract: str, locked: int, rec: MeteringRecord) -> int:
        if self.settlement is None:
            return 0
        if locked and self.payment == "pay_after" and rec.price <= locked and self._keypair is not None:
            evidence = countersign_record(self._keypair, rec, iat=int(self.clock.now()))
            await self.settlement.release(contract, evidence, actor=self.did, idem=f"{contract}:release")
            return rec.price
        if locked:
            await self.settlement.refund(
                contract, actor=self.did, idem=f"{contract}:refund", reason="settled by record"
            )
        if rec.price > 0:
            await self._transfer(provider, rec, f"inference metering {rec.cid}")
        return rec.price


def _routed_evidence(reply: Any) -> tuple[str, bytes, bytes]:
    """The provider, its signed quote and its signed record, from a router's answer (not yet checked)."""
    if not isinstance(reply, dict) or not all(isinstance(reply.get(k), bytes) for k in ("quote", "meter")):
        raise AgoraError("runner_failed", "the router's answer lacks the provider's quote or metering record")
    return str(reply.get("provider")), reply["quote"], reply["meter"]


def _streamed_result(text: str, rec: MeteringRecord, req: RunRequest) -> RunResult:
    """A streamed answer as one result: the text received, the verified record's counts and times."""
    return RunResult(
        text=text,
        tokens_in=rec.tokens_in,
        tokens_out=rec.tokens_out,
        ttft_s=rec.ttft_ms / 1000,
        duration_s=rec.duration_ms / 1000,
        finish_reason="length" if rec.tokens_out >= req.max_tokens else ("error" if rec.partial else "stop"),
        partial=rec.partial,
    )


__all__ = ["PAYMENTS", "InferenceRequester", "Outcome", "Totals", "estimate_out"]
