"""`Placer`: the requester's side of the market: where one unit of a job runs, through bid -> award -> commit.

One placement round for a unit (`Placer.place`):

1. **matching**: read every verified ad of the `MarketIndex`, drop the providers this unit must avoid
   (`exclude`: a provider that was lost under it) or keep only the one named (`only`: `--node DID`
   without a grant), and `match` them (pure; every candidate's verdict, reasons, score breakdown).
2. **bidding**: send `/agora/market/bid_request` to the best k (the job's `placement.bids`, else
   `PlacementSettings.k`, default 3; never fewer than the providers wanted) in parallel, each asked to
   answer by `respond_by`; wait for all of them or `bid_timeout_s`, whichever is first (a late or broken
   answer is recorded as a failure, never waited for).
3. **award**: `choose_bid` picks the best valid bid (lowest price, then the match order, then the DID;
   never the first to arrive); the award asks for the commit by `commit_by`. A commit refused with
   `insufficient_capacity` / `bid_expired` (or any other error, or no answer in `award_timeout_s`) moves
   on to the next best bid; an award that may have been committed is released at once.
4. **committed**: the result carries the bid's delegation (the proof of `/agora/alloc/start`) and the
   committed request id (`StartArgs.reservation`); the caller starts the allocation before
   `commit.start_by`, and `release`s the award when it cannot.

A round may want more than one provider (`want`: the replicas of a unit under redundant execution): it
then awards the best bids one after the other until `want` distinct providers committed or the bids run
out (`placed_all`; `outcome` `committed`, or `partly_committed` with fewer), and when fewer than `want`
candidates pass the hard filter it asks none of them (`not_enough_providers`: no reservation is taken
that could not make up the set).

Every step has a deadline, so a round ends in bounded time whatever the providers do. `PlacementRound.why`
is what `agora job why` shows: the decision, the bids, the declines (with their coded reasons), the
failures per provider and stage, and the outcome.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import secrets
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agora.actor import Runtime
from agora.clock import SYSTEM_CLOCK, Clock
from agora.errors import AgoraError
from agora.market import Decision, JobNeed, MarketIndex, MatchPolicy, choose_bid
from agora.market.fastmatch import match_table
from agora.market.table import TableCache
from agora.orchestrator.provider import ProofSource
from agora.orchestrator.stakes import StakeView
from agora.ucan import Delegation, covers
from agora.wire.market import Award, Bid, BidRequest, CapacityAd, Commit, Decline, Release
from agora.wire.market_rpc import (
    AWARD_CMD,
    BID_REQUEST_CMD,
    RELEASE_CMD,
    award_args,
    bid_request_args,
    read_bid_reply,
    read_commit_reply,
    release_args,
)

log = logging.getLogger("agora.orchestrator.placement")

MAX_CANDIDATES_KEPT = 50  # a why keeps the first candidates of the decision (all the counts, always)
MOVE_ON = frozenset({"insufficient_capacity", "bid_expired"})  # a refused commit: the next bid is tried

StateHook = Callable[[str, str], Awaitable[None]]  # (state, cause): the caller records the move


@dataclass(frozen=True)
class PlacementSettings:
    k: int = 3  # providers asked for a bid
    bid_timeout_s: float = 2.0  # how long to wait for the bids (respond_by is this far ahead)
    award_timeout_s: float = 5.0  # how long an award may take to be committed (commit_by)
    release_timeout_s: float = 2.0
    stale_after_s: int = 300
    default_deadline_s: float = 3600.0  # how long a job that fits nowhere waits in the queue (no spec deadline)
    max_rounds: int = 1000  # re-evaluations of one pending job (each one triggered by an index change)

    def __post_init__(self) -> None:
        if self.k < 1 or self.bid_timeout_s <= 0 or self.award_timeout_s <= 0 or self.default_deadline_s <= 0:
            raise AgoraError("invalid_argument", "placement settings: k, timeouts and deadline must be positive")


@dataclass(frozen=True)
class Placed:
    """A committed placement: where the unit runs, the proof to start it and the reservation it takes."""

    provider: str
    request_id: str
    bid: Bid
    award: Award
    commit: Commit

    @property
    def proofs(self) -> list[Delegation]:
        token = self.bid.delegation_token()
        return [] if token is None else [token]

    def proof_source(self, fallback: ProofSource) -> ProofSource:
        """Proofs for calls about this placement: the bid's delegation (scoped to the job) where it covers
        the command on this provider, else `fallback`'s."""
        bid_proofs = self.proofs

        def proofs_for(target: str, command: str) -> list[Delegation]:
            if target == self.provider:
                for d in bid_proofs:
                    if d.cmd is not None and covers(d.cmd, command):
                        return [d]
            return fallback(target, command)

        return proofs_for


@dataclass
class PlacementRound:
    """One round's record: what `job why` shows for it."""

    at: float
    only: str | None = None
    excluded: tuple[str, ...] = ()
    decision: Decision | None = None
    bids: list[dict[str, Any]] = field(default_factory=list)
    declines: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    placed: Placed | None = None  # the first (best) of `placed_all`
    placed_all: list[Placed] = field(default_factory=list)  # every commit of the round, best bid first
    k: int = 0  # providers asked for a bid
    want: int = 1  # providers wanted (distinct replicas of the unit)
    outcome: str = "no_fit"  # committed | partly_committed | no_fit | not_enough_providers | no_bid | no_commit
    asked: dict[str, str] = field(default_factory=dict)  # provider -> the bid request id sent to it
    rtt_ms: dict[str, float] = field(default_factory=dict)  # provider -> round trip of its bid or decline
    trust: dict[str, Any] = field(default_factory=dict)  # provider -> its trust breakdown (the TrustRecorder)

    @property
    def blocking(self) -> dict[str, int]:
        """Counts per reason why the unit is not placed (matching reasons, decline codes, failures)."""
        counts: dict[str, int] = dict(self.decision.counts) if self.decision is not None else {}
        for d in self.declines:
            for code in {r["code"] for r in d["reasons"]}:
                counts[f"declined_{code}"] = counts.get(f"declined_{code}", 0) + 1
        for f in self.failures:
            counts[f["code"]] = counts.get(f["code"], 0) + 1
        if self.outcome in ("not_enough_providers", "partly_committed"):
            counts["not_enough_providers"] = counts.get("not_enough_providers", 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def why(self) -> dict[str, Any]:
        decision: dict[str, Any] = {"candidates": [], "counts": {}, "what_would_fit": [], "considered": 0}
        if self.decision is not None:
            decision = self.decision.to_dict(limit=MAX_CANDIDATES_KEPT)
        return {
            "at": self.at,
            "outcome": self.outcome,
            "provider": self.placed.provider if self.placed else None,
            "price": self.placed.bid.price if self.placed else None,
            "providers": [p.provider for p in self.placed_all],
            "k": self.k,
            "want": self.want,
            "only": self.only,
            "excluded": list(self.excluded),
            "decision": decision,
            "bids": list(self.bids),
            "declines": list(self.declines),
            "failures": list(self.failures),
            "blocking": self.blocking,
            "trust": dict(self.trust),
        }


class Placer:
    """Places units through the market index and the providers' bid/award/release behaviors."""

    def __init__(
        self,
        runtime: Runtime,
        index: MarketIndex,
        *,
        clock: Clock = SYSTEM_CLOCK,
        settings: PlacementSettings | None = None,
        policy: Callable[[], MatchPolicy] | None = None,
        stakes: StakeView | None = None,
    ) -> None:
        self.runtime = runtime
        self.index = index
        self.clock = clock
        self.settings = settings or PlacementSettings()
        self._policy = policy
        self._tables = TableCache()  # the index's ads as columns, rebuilt when an ad changes
        self.stakes = stakes  # the candidates' stake at the hub, for a job's placement.min_stake (stakes.py)

    @property
    def did(self) -> str:
        return self.runtime.did

    def match_policy(self, k: int | None = None) -> MatchPolicy:
        """The policy of one round; `k`: providers to ask (None: `PlacementSettings.k`)."""
        base = self._policy() if self._policy is not None else MatchPolicy()
        return MatchPolicy(
            k=self.settings.k if k is None else k,
            stale_after_s=self.settings.stale_after_s,
            trust=base.trust,
            latency_ms=base.latency_ms,
            requester_trust=base.requester_trust,
            default_trust=base.default_trust,
            cooling_down=base.cooling_down,
            weights=base.weights,
            affinity_weight=base.affinity_weight,
        )

    async def round_policy(self, need: JobNeed, ads: Sequence[CapacityAd], k: int | None = None) -> MatchPolicy:
        """`match_policy` plus, for a job with a `min_stake`, the stake of every candidate (one batched call
        to the hub for those not known recently; none at all without a min_stake)."""
        policy = self.match_policy(k)
        if need.min_stake is None or self.stakes is None:
            return policy
        stakes = await self.stakes.of(a.provider for a in ads)
        return dataclasses.replace(policy, stakes=stakes)

    async def place(
        self,
        job_id: str,
        unit: str,
        need: JobNeed,
        *,
        only: str | None = None,
        exclude: Collection[str] = (),
        on_state: StateHook | None = None,
        k: int | None = None,
        want: int = 1,
    ) -> PlacementRound:
        """One round: match, ask the best k for bids, award the best (the `want` best, each on another
        provider), read the commits (see the module doc). `k`: the job's `placement.bids` (None: the
        node's default); at least `want` providers are asked."""
        if want < 1:
            raise AgoraError("invalid_argument", f"a placement round wants at least one provider, not {want}")

        async def state(s: str, cause: str) -> None:
            if on_state is not None:
                await on_state(s, cause)

        now = self.clock.now()
        asks = max(self.settings.k if k is None else k, want)
        rnd = PlacementRound(at=now, only=only, excluded=tuple(sorted(exclude)), k=asks, want=want)
        ads = [a for a in await self.index.ads() if a.provider not in exclude and (only is None or a.provider == only)]
        rnd.decision = decision = match_table(
            need, self._tables.table(ads), await self.round_policy(need, ads, asks), now=now
        )
        if not decision.chosen:
            rnd.outcome = "no_fit"
            return rnd
        if len(decision.passed) < want:  # the set cannot be made up: reserve nothing
            rnd.outcome = "not_enough_providers"
            return rnd
        await state("bidding", f"asking {len(decision.chosen)} provider(s) for a bid: {', '.join(decision.chosen)}")
        offers = {a.provider: a.offer.offer_id for a in ads}
        requests = self._requests(job_id, unit, need, decision, offers)
        bids = await self._collect(requests, rnd)
        pending = list(bids)
        for _ in range(len(bids)):
            choice = choose_bid(requests, pending, decision.chosen, now=self.clock.now())
            for provider, why in choice.set_aside:
                if all(f["provider"] != provider or f["stage"] != "bid" for f in rnd.failures):
                    rnd.failures.append(_failure(provider, "bid", why.split(":", 1)[0], why))
            if choice.award is None:
                break
            bid = choice.award
            pending = [b for b in pending if b is not bid]
            if not rnd.placed_all:
                await state("awarded", f"awarded {bid.provider} at {bid.price:,}")
            placed = await self._award(bid, rnd)
            if placed is not None:
                rnd.placed_all.append(placed)
                rnd.placed = rnd.placed_all[0]
                if len(rnd.placed_all) == want:
                    rnd.outcome = "committed"
                    return rnd
            elif pending and not rnd.placed_all:
                await state("bidding", f"{bid.provider} did not commit; trying the next bid")
        if rnd.placed_all:
            rnd.outcome = "partly_committed"
        else:
            rnd.outcome = "no_commit" if bids else "no_bid"
        return rnd

    def _requests(
        self, job_id: str, unit: str, need: JobNeed, decision: Decision, offers: Mapping[str, str]
    ) -> dict[str, BidRequest]:
        now = int(self.clock.now())
        # rounded up from the real time: rounding `now` down first would leave as little as a fraction of a second
        respond_by = math.ceil(self.clock.now() + max(1.0, self.settings.bid_timeout_s))
        out: dict[str, BidRequest] = {}
        for provider in decision.chosen:
            rid = f"{job_id}/{unit}/{secrets.token_hex(6)}"[-128:]
            out[provider] = BidRequest.issue(
                self.runtime.keypair,
                provider=provider,
                request_id=rid,
                job_id=job_id,
                task=unit,
                offer_id=offers[provider],
                need=need.need,
                engine=need.engine,
                duration_s=need.duration_s,
                max_price=need.limit,
                respond_by=respond_by,
                iat=now,
            )
        return out

    async def _collect(self, requests: Mapping[str, BidRequest], rnd: PlacementRound) -> list[Bid]:
        """Every bid that arrived by the deadline (declines and failures recorded in `rnd`)."""

        async def ask(provider: str, request: BidRequest) -> Bid | Decline:
            t0 = self.clock.monotonic()
            reply = await self.runtime.call(
                provider, BID_REQUEST_CMD, bid_request_args(request), timeout=self.settings.bid_timeout_s
            )
            if not isinstance(reply, Mapping):
                raise AgoraError("market_message_invalid", "a bid reply is a map")
            answer = read_bid_reply(reply, provider=provider)
            rnd.rtt_ms[provider] = (self.clock.monotonic() - t0) * 1000.0  # the latency this node measured
            return answer

        rnd.asked.update({p: r.request_id for p, r in requests.items()})
        tasks = {p: asyncio.create_task(ask(p, r), name=f"bid:{p}") for p, r in requests.items()}
        try:
            await asyncio.wait(tasks.values(), timeout=self.settings.bid_timeout_s)
        finally:
            for t in tasks.values():
                t.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
        bids: list[Bid] = []
        for provider, task in tasks.items():
            if task.cancelled():
                rnd.failures.append(_failure(provider, "bid", "timeout", "no answer before the bid deadline"))
                continue
            exc = task.exception()
            if exc is not None:
                err = exc if isinstance(exc, AgoraError) else AgoraError("internal", f"{type(exc).__name__}: {exc}")
                rnd.failures.append(_failure(provider, "bid", err.code, err.message))
                continue
            answer = task.result()
            if isinstance(answer, Bid):
                bids.append(answer)
                rnd.bids.append(
                    {
                        "provider": provider,
                        "price": answer.price,
                        "valid_until": answer.valid_until,
                        "request_id": answer.request_id,
                    }
                )
            else:
                reasons = [r.to_dict() for r in answer.reasons]
                rnd.declines.append({"provider": provider, "codes": answer.codes, "reasons": reasons})
        return bids

    async def _award(self, bid: Bid, rnd: PlacementRound) -> Placed | None:
        now = int(self.clock.now())
        commit_by = math.ceil(self.clock.now() + max(1.0, self.settings.award_timeout_s))  # rounded up, as respond_by
        try:
            award = Award.issue(self.runtime.keypair, bid, commit_by=commit_by, iat=now)
        except AgoraError as err:
            rnd.failures.append(_failure(bid.provider, "award", err.code, err.message))
            return None
        try:
            reply = await self.runtime.call(
                bid.provider, AWARD_CMD, award_args(award), timeout=self.settings.award_timeout_s
            )
            if not isinstance(reply, Mapping):
                raise AgoraError("market_message_invalid", "a commit reply is a map")
            commit = read_commit_reply(reply, provider=bid.provider, award=award)
        except (AgoraError, TimeoutError) as exc:
            problem = (
                exc if isinstance(exc, AgoraError) else AgoraError("timeout", "no commit before the award deadline")
            )
            rnd.failures.append(_failure(bid.provider, "commit", problem.code, problem.message))
            if problem.code not in MOVE_ON:  # it may have committed without us hearing it: give it back
                await self.release_award(award, f"no usable commit ({problem.code})")
            return None
        return Placed(bid.provider, bid.request_id, bid, award, commit)

    async def release(self, placed: Placed, reason: str) -> bool:
        """Give a committed placement back (the start failed or the unit was cancelled); best effort."""
        return await self.release_award(placed.award, reason)

    async def release_award(self, award: Award, reason: str) -> bool:
        release = Release.issue(self.runtime.keypair, award, reason=reason[:500], iat=int(self.clock.now()))
        try:
            reply = await self.runtime.call(
                award.provider, RELEASE_CMD, release_args(release), timeout=self.settings.release_timeout_s
            )
        except (AgoraError, TimeoutError) as exc:
            log.warning("could not release award %s on %s: %s", award.request_id, award.provider, exc)
            return False
        return bool(isinstance(reply, Mapping) and reply.get("released"))


def _failure(provider: str, stage: str, code: str, message: str) -> dict[str, Any]:
    return {"provider": provider, "stage": stage, "code": code, "message": message[:500]}


__all__ = ["MOVE_ON", "Placed", "PlacementRound", "PlacementSettings", "Placer"]
