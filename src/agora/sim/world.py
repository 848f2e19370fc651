"""The world and its discrete-event loop: providers, requesters, jobs and churn over a `ManualClock`.

Every event (a job arriving, a run finishing or failing, a provider joining, leaving, crashing or cut off
by a partition, a retry of the pending queue, a metrics sample) sits in one heap ordered by (time, seq);
the loop pops the next one, moves the clock to it and handles it. Nothing sleeps: a simulated day takes
as long as its events take to compute. All randomness comes from `random.Random` streams seeded from the
scenario's seed, one per concern, so the same seed gives the same run.

What runs is the real code, called in-process (see `REAL_CODE`): matching (`market.fastmatch.match_table`,
the vectorized equal of `market.matching.match`, on capacity ads, its table sliced from `columns.Columns`),
bidding (`market.bidding.answer` on the provider side, `choose_bid` on the requester side),
the provider's reservation book (`market.reservations.ReservationBook`: a commit never double-books),
money (`ledger.Ledger` over a `MemoryJournalStore`, `InternalLedgerSettlement` for mint, lock, refund and
transfer), trust (`ledger.trust.report` and `penalty` on the recorded evidence; the cooldown feeds the
matcher's `provider_cooling_down`) and re-placement of every replica a crash or partition took down.
The documented faster path (`FASTER_PATH`): messages are the wire dataclasses unsigned (no Ed25519 per
message) and handed over directly instead of over the memory transport; an escrow is released with the
escrow rules' own payout plan instead of a signed metering receipt; the candidate sample (`matching.sample`)
hands the matcher a bounded draw from capacity buckets instead of every provider.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agora.clock import ManualClock
from agora.errors import AgoraError
from agora.ledger import Evidence, InternalLedgerSettlement, Ledger, MemoryJournalStore, Plan, TrustSettings
from agora.ledger import escrow as esc
from agora.ledger import trust as trustlib
from agora.market.bidding import Quote, answer, choose_bid
from agora.market.fastmatch import match_table
from agora.market.matching import JobNeed, MatchPolicy
from agora.market.reservations import ReservationBook
from agora.models.capability import Capability, GiB, PriceSchedule, accounted
from agora.models.offer import OfferTerms, PriceTerms, ResourceOffer
from agora.sim.columns import Columns
from agora.sim.index import CandidateIndex
from agora.sim.invariants import CheckedSettlement, Invariants
from agora.sim.metrics import Metrics
from agora.sim.scenario import ENGINES, Arrivals, Scenario
from agora.wire.market import Bid, BidRequest, CapacityAd, ExecutorState

if TYPE_CHECKING:
    from agora.sim.fl import FlSim
    from agora.sim.inference import InferenceSim

START = 1_700_000_000.0
OPERATOR = "did:sim:operator"
AD_TTL_S = 10**9  # an ad lives until the provider's capacity changes (see `ad`)
TRUST_RECORDS = 256  # the most recent evidence records kept per provider (older ones weigh little)
REAL_CODE = {
    "matching": (
        "agora.market.matching.match's decision (hard filter, score, strategy order) on CapacityAd objects, "
        "computed by its vectorized equal agora.market.fastmatch.match_table"
    ),
    "bidding": "agora.market.bidding.answer (provider) and choose_bid (requester) on BidRequest/Bid objects",
    "reservations": "agora.market.reservations.ReservationBook per provider (commit, start, release)",
    "ledger": "agora.ledger.Ledger on MemoryJournalStore; InternalLedgerSettlement mint/lock/refund/transfer",
    "escrow": "agora.ledger.escrow rules (every entry checked by Books: no escrow paid out twice)",
    "trust": "agora.ledger.trust.report and penalty on recorded Evidence; cooldowns feed the matcher",
    "re-placement": "every replica of a crashed, partitioned or failing provider goes back to the pending queue",
}
FASTER_PATH = {
    "messages": "bid requests and bids are the wire dataclasses, unsigned, handed over in-process (no transport)",
    "release": "an escrow is released with escrow.payout_postings through Ledger.execute, not a signed receipt",
    "candidates": "matching sees a bounded sample drawn from capacity buckets (matching.sample; 0: every provider)",
    "runtime": "a run takes its drawn duration; failures and wrong results are drawn from the profile",
    "trust": "a provider's score is recomputed (decay included) when it gets new evidence, from its last 256 records",
}
JOB_STATES = ("pending", "running", "completed", "expired", "rejected")


@dataclass
class Provider:
    did: str
    cores: int
    memory_bytes: int
    benchmark: float
    price: int
    latency_ms: float
    reliability: float
    dishonest: bool
    offer: ResourceOffer
    book: ReservationBook
    engines: tuple[str, ...]
    state: str = "online"  # online | draining | partitioned | offline
    running: dict[str, Replica] = field(default_factory=dict)
    evidence: list[Evidence] = field(default_factory=list)
    earned: int = 0
    caught_at: float | None = None
    seq: int = 0


@dataclass
class Replica:
    job: Job
    slot: int
    attempt: int
    provider: str
    contract: str
    price: int
    started: float
    state: str = "running"  # running | done | failed


@dataclass
class Job:
    id: str
    requester: str
    need: JobNeed
    cores: int
    duration_s: float
    arrival: float
    deadline: float
    redundancy: int
    state: str = "pending"
    done: int = 0
    attempts: int = 0
    placed: dict[int, Replica] = field(default_factory=dict)  # slot -> live replica
    placed_once: int = 0  # bit i: slot i was placed once (its next placement is a re-placement); no set per job
    providers: set[str] = field(default_factory=set)


class SimulationError(AgoraError):
    pass


class World:
    def __init__(self, scenario: Scenario, *, progress: Callable[[float], None] | None = None) -> None:
        self.sc = scenario
        self.clock = ManualClock(START)
        self.end = START + scenario.duration_s
        self._progress = progress
        seed = scenario.seed
        self.rng = {
            k: random.Random(f"{seed}:{k}") for k in ("providers", "arrivals", "jobs", "churn", "runs", "index")
        }
        self.trust_settings = TrustSettings()
        self.ledger = Ledger(MemoryJournalStore(), clock=self.clock)
        self.settlement = InternalLedgerSettlement(self.ledger, OPERATOR)
        self.providers: dict[str, Provider] = {}
        self.requesters = [f"did:sim:r{i:06d}" for i in range(scenario.requesters.count)]
        self.jobs: dict[str, Job] = {}
        self.pending: dict[tuple[str, int], float] = {}  # (job, slot) -> waiting since (FIFO)
        self.index = CandidateIndex(self.rng["index"])
        self.trust: dict[str, float] = {}
        self.cooling: dict[str, float] = {}
        self.latency: dict[str, float] = {}
        self.operator = OPERATOR
        self.earners: set[str] = set()  # the inference and data providers' DIDs (their wallets are providers')
        # the inference and FL parts (and numpy, the FL code) are imported only by scenarios that have them
        self.inference: InferenceSim | None = None
        self.fl: FlSim | None = None
        if scenario.inference is not None:
            from agora.sim.inference import InferenceSim

            self.inference = InferenceSim(self, scenario.inference)
        if scenario.fl is not None:
            from agora.sim.fl import FlSim

            self.fl = FlSim(self, scenario.fl)
        self.metrics = Metrics(scenario, self)
        self.inv = Invariants(self)
        self.checked = CheckedSettlement(self.ledger, OPERATOR, self.inv)  # what the inference and FL code pays by
        self._events: list[tuple[float, int, str, Any]] = []
        self._seq = 0
        self._next_provider = 0
        self._next_job = 0
        self._ads: dict[str, CapacityAd] = {}
        self.columns = Columns(ENGINES)

    # -- events ----------------------------------------------------------------------------------------

    def at(self, t: float, kind: str, data: Any = None) -> None:
        self._seq += 1
        heapq.heappush(self._events, (t, self._seq, kind, data))

    def _after(self, rate_per_hour: float, rng: random.Random) -> float | None:
        return rng.expovariate(rate_per_hour / 3600.0) if rate_per_hour > 0 else None

    async def run(self) -> None:
        sc = self.sc
        for r in self.requesters if sc.compute else ():  # no compute market: its requesters are not minted
            if sc.requesters.funds:
                entry = await self.settlement.mint(r, sc.requesters.funds, actor=OPERATOR, idem=f"fund:{r}")
                self.inv.entry_appended(entry)
        for _ in range(sc.providers.count):
            self._add_provider()
        self._schedule_arrivals(START)
        if self.inference is not None:
            await self.inference.setup()
            self.inference.schedule(START)
        if self.fl is not None:
            await self.fl.setup()
            self.fl.schedule(START)
        if sc.requesters.arrivals.process == "burst":
            self.at(START + sc.requesters.arrivals.every_s, "burst")
        c = sc.churn
        for kind, rate in (
            ("join", c.join_per_hour),
            ("leave", c.leave_per_hour),
            ("crash", c.crash_per_hour),
            ("partition", c.partition_per_hour),
        ):
            if (d := self._after(rate, self.rng["churn"])) is not None:
                self.at(START + d, kind)
        self.at(START + sc.matching.retry_every_s, "retry")
        self.at(START, "sample")
        budget = 50_000_000  # bounded: no scenario the validator admits comes near it
        while self._events and budget > 0:
            budget -= 1
            t, _, kind, data = heapq.heappop(self._events)
            if t > self.end:
                break
            self.clock.set(t)
            self.inv.event(t, kind, data)
            await self._handle(kind, data)
            self.metrics.queued(len(self.pending))
            self.inv.step()
        self.clock.set(self.end)
        self.metrics.sample(final=True)
        self.inv.final()

    async def _handle(self, kind: str, data: Any) -> None:
        now = self.clock.now()
        match kind:
            case "arrive":
                self._new_job()
                self._schedule_arrivals(now)
                await self._place_pending(limit=4)
            case "infer":
                assert self.inference is not None
                await self.inference.arrive()
                self.inference.schedule(now)
            case "train":
                assert self.fl is not None
                await self.fl.arrive()
                self.fl.schedule(now)
            case "burst":
                for _ in range(self.sc.requesters.arrivals.size):
                    self._new_job()
                self.at(now + self.sc.requesters.arrivals.every_s, "burst")
                await self._place_pending(limit=self.sc.matching.retry_batch)
            case "finish":
                await self._finish(data)
                await self._place_pending(limit=4)
            case "fail":
                await self._fail(data, "failure")
                await self._place_pending(limit=4)
            case "join":
                self._add_provider()
                self._churn_next("join", self.sc.churn.join_per_hour)
                await self._place_pending(limit=self.sc.matching.retry_batch)
            case "leave":
                if (p := self._pick_online()) is not None:
                    self._set_state(p, "draining")
                    self.metrics.churn["leave"] += 1
                    if not p.running:
                        self._set_state(p, "offline")
                self._churn_next("leave", self.sc.churn.leave_per_hour)
            case "crash":
                if (p := self._pick_online()) is not None:
                    self.metrics.churn["crash"] += 1
                    await self._lose(p, "failure", "offline")
                self._churn_next("crash", self.sc.churn.crash_per_hour)
            case "partition":
                if (p := self._pick_online()) is not None:
                    self.metrics.churn["partition"] += 1
                    await self._lose(p, "timeout", "partitioned")
                    self.at(now + self.sc.churn.partition_s, "heal", p.did)
                self._churn_next("partition", self.sc.churn.partition_per_hour)
            case "heal":
                p = self.providers[data]
                if p.state == "partitioned":
                    self._set_state(p, "online")
                await self._place_pending(limit=self.sc.matching.retry_batch)
            case "retry":
                self._expire_overdue()
                await self._place_pending(limit=self.sc.matching.retry_batch)
                self.at(now + self.sc.matching.retry_every_s, "retry")
            case "sample":
                self.metrics.sample()
                if self._progress is not None:
                    self._progress(min(1.0, (now - START) / self.sc.duration_s))
                self.at(now + self.sc.sample_every_s, "sample")
            case _:
                raise AgoraError("internal", f"unknown simulator event {kind!r}")

    def _churn_next(self, kind: str, rate: float) -> None:
        if (d := self._after(rate, self.rng["churn"])) is not None:
            self.at(self.clock.now() + d, kind)

    # -- providers -------------------------------------------------------------------------------------

    def _add_provider(self) -> Provider:
        pr, rng = self.sc.providers, self.rng["providers"]
        did = f"did:sim:p{self._next_provider:07d}"
        self._next_provider += 1
        cores = pr.cores.draw_int(rng, 1)
        memory = max(1, pr.memory_gib.draw_int(rng, 1)) * GiB
        price = pr.price.draw_int(rng, 0)
        resources = Capability(cpu_millis=cores * 1000, memory_bytes=memory, executors=frozenset(pr.engines))
        offer = ResourceOffer(
            offer_id=f"o-{did[8:]}",
            provider=did,
            resources=resources,
            price=PriceTerms(base=PriceSchedule(cpu_second=price)),
            terms=OfferTerms(),
            valid_from=int(START) - 1,
            valid_until=int(self.end) + 86400,
        )
        p = Provider(
            did=did,
            cores=cores,
            memory_bytes=memory,
            benchmark=round(pr.benchmark.draw(rng), 3),
            price=price,
            latency_ms=round(pr.latency_ms.draw(rng), 1),
            reliability=pr.reliability.draw(rng),
            dishonest=rng.random() < pr.dishonest,
            offer=offer,
            book=ReservationBook(resources),
            engines=pr.engines,
        )
        self.providers[did] = p
        self.latency[did] = p.latency_ms
        self.index.update(did, cores)
        if self._next_provider > self.sc.providers.count:
            self.metrics.churn["join"] += 1
        return p

    def _pick_online(self) -> Provider | None:
        did = self.index.pick_any()
        return self.providers[did] if did is not None else None

    def _set_state(self, p: Provider, state: str) -> None:
        p.state = state
        self._reindex(p)

    def _reindex(self, p: Provider) -> None:
        self._ads.pop(p.did, None)  # its capacity or state changed: the next match sees a new ad
        if p.state == "online":
            self.index.update(p.did, p.book.free.cpu_millis // 1000)
        else:
            self.index.remove(p.did)

    def ad(self, p: Provider, now: float) -> CapacityAd:
        """The provider's current capacity ad: re-issued whenever its capacity or state changes (so never
        stale in the simulation), reused while nothing changed."""
        cached = self._ads.get(p.did)
        if cached is not None:
            return cached
        p.seq += 1
        ad = self._ads[p.did] = CapacityAd(
            provider=p.did,
            seq=p.seq,
            iat=int(now),
            ttl_s=AD_TTL_S,
            offer=p.offer,
            free=p.book.free,
            executors={e: ExecutorState(True) for e in p.engines},
            benchmark_score=p.benchmark,
            version="sim",
        )
        return ad

    # -- jobs ------------------------------------------------------------------------------------------

    def _schedule_arrivals(self, now: float) -> None:
        t = self.next_arrival(now, self.sc.requesters.arrivals, self.rng["arrivals"])
        if t is not None:
            self.at(t, "arrive")

    def next_arrival(self, now: float, a: Arrivals, rng: random.Random) -> float | None:
        """When the next arrival after `now` comes (poisson or diurnal; None: no arrivals)."""
        if a.rate_per_hour <= 0:
            return None
        if a.process != "diurnal":
            return now + rng.expovariate(a.rate_per_hour / 3600.0)
        peak = a.rate_per_hour * (1 + a.amplitude) / 3600.0  # thinning (Lewis & Shedler)
        t = now
        for _ in range(100_000):
            t += rng.expovariate(peak)
            rate = a.rate_per_hour * (1 + a.amplitude * math.sin(2 * math.pi * (t - START) / 86400.0)) / 3600.0
            if rng.random() * peak <= rate:
                return t
        return None

    def _new_job(self) -> Job:
        jb, rng, now = self.sc.jobs, self.rng["jobs"], self.clock.now()
        jid = f"j{self._next_job:08d}"
        self._next_job += 1
        engine = rng.choices(jb.engines, weights=jb.engine_weights)[0]
        cores = jb.cores.draw_int(rng, 1)
        memory = jb.memory_gib.draw(rng)
        duration = max(1, jb.duration_s.draw_int(rng, 1))
        cap = Capability(cpu_millis=cores * 1000, memory_bytes=int(memory * GiB), executors=frozenset({engine}))
        requester = self.requesters[rng.randrange(len(self.requesters))]
        need = JobNeed(
            need=accounted(cap, engine),
            engine=engine,
            duration_s=duration,
            requester=requester,
            max_price=None if jb.max_price is None else jb.max_price.draw_int(rng, 0),
            strategy=jb.strategy,
        )
        job = Job(
            id=jid,
            requester=requester,
            need=need,
            cores=cores,
            duration_s=float(duration),
            arrival=now,
            deadline=now + jb.deadline_s,
            redundancy=jb.redundancy.draw_int(rng, 1),
        )
        self.jobs[jid] = job
        for slot in range(job.redundancy):
            self.pending[(jid, slot)] = now
        self.metrics.submitted += 1
        self.inv.touch_job(job)
        return job

    async def _place_pending(self, limit: int) -> None:
        now = self.clock.now()
        tried = 0
        for key in list(itertools.islice(self.pending, max(limit, 0) * 4)):  # FIFO, never the whole queue
            if tried >= limit:
                break
            job = self.jobs[key[0]]
            if job.state not in ("pending", "running"):
                self.pending.pop(key, None)
                continue
            if now > job.deadline:
                self._expire(job)
                continue
            tried += 1
            since = self.pending[key]
            if await self._place(job, key[1]):
                self.pending.pop(key, None)
                if job.state != "rejected":  # placed (not refused for want of money)
                    self.metrics.placed(job, key[1], since, now)

    def _expire_overdue(self) -> None:
        """Every queued job past its deadline expires now, not when the FIFO retry reaches it."""
        now = self.clock.now()
        overdue = {jid for jid, _ in self.pending if now > self.jobs[jid].deadline}
        for jid in sorted(overdue):
            self._expire(self.jobs[jid])

    def _expire(self, job: Job) -> None:
        for slot in range(job.redundancy):
            self.pending.pop((job.id, slot), None)
        if job.placed:  # keep the replicas running; the job ends with them
            return
        job.state = "expired"
        self.metrics.expired += 1
        self.inv.touch_job(job)

    async def _place(self, job: Job, slot: int) -> bool:
        now = self.clock.now()
        cands = [
            self.providers[d]
            for d in self.index.candidates(job.cores, self.sc.matching.sample)
            if d not in job.providers
        ]
        self.metrics.scanned += len(cands)
        if not cands:
            self.metrics.reject("no_candidates")
            return False
        # the requester's views restricted to the candidates: the matcher reads them per candidate only, and
        # the table's columns are built from these (not from every provider of the world)
        trust, cooling = self.trust, self.cooling
        policy = MatchPolicy(
            k=self.sc.matching.k,
            trust={p.did: trust[p.did] for p in cands if p.did in trust},
            latency_ms={p.did: p.latency_ms for p in cands},
            default_trust=self.trust_settings.prior,
            cooling_down={p.did: cooling[p.did] for p in cands if p.did in cooling},
            stale_after_s=AD_TTL_S,
        )
        decision = match_table(job.need, self.columns.table([self.ad(p, now) for p in cands]), policy, now=now)
        if not decision.chosen:
            for code, n in decision.counts.items():
                self.metrics.reject(code, n)
            return False
        job.attempts += 1
        requests: dict[str, BidRequest] = {}
        bids: list[Bid] = []
        for did in decision.chosen:
            p = self.providers[did]
            rid = f"{job.id}.{slot}.{job.attempts}.{did[8:]}"
            req = BidRequest(
                requester=job.requester,
                provider=did,
                request_id=rid,
                job_id=job.id,
                task="main",
                offer_id=p.offer.offer_id,
                need=job.need.need,
                engine=job.need.engine,
                duration_s=job.need.duration_s,
                max_price=job.need.max_price,
                respond_by=int(now) + 30,
                iat=int(now),
            )
            requests[did] = req
            self.metrics.bids_asked += 1
            got = answer(p.offer, p.book.free, req, requester_trust=None, draining=p.state != "online", now=now)
            if isinstance(got, Quote):
                bids.append(
                    Bid(
                        provider=did,
                        requester=job.requester,
                        request=req.cid,
                        request_id=rid,
                        job_id=job.id,
                        offer_id=p.offer.offer_id,
                        price=got.price,
                        valid_until=int(now) + 60,
                        delegation=None,
                        iat=int(now),
                    )
                )
            else:
                for reason in got:
                    self.metrics.declines[reason.code] += 1
        choice = choose_bid(requests, bids, decision.chosen, now=now)
        if choice.award is None:
            self.metrics.reject("all_bids_declined")
            return False
        bid = choice.award
        p = self.providers[bid.provider]
        contract = f"c.{job.id}.{slot}.{job.attempts}"
        p.book.commit(contract, job.id, job.need.need, start_by=now + 60, now=now)
        p.book.start(contract, now=now)
        if self.sc.payment == "pay_before" and bid.price > 0:
            try:
                entry = await self.settlement.lock(
                    contract, job.requester, p.did, bid.price, actor=job.requester, idem=f"lock:{contract}"
                )
                self.inv.entry_appended(entry)
            except AgoraError as exc:
                if exc.code != "insufficient_funds":
                    raise
                p.book.release(contract)
                self._reindex(p)
                self.metrics.reject("insufficient_funds")
                await self._reject(job)
                return True  # handled: the job is out of the queue
        rep = Replica(job, slot, job.attempts, p.did, contract, bid.price, now)
        p.running[contract] = rep
        job.placed[slot] = rep
        job.providers.add(p.did)
        job.state = "running"
        self._reindex(p)
        self.metrics.awarded(rep, job)
        rng = self.rng["runs"]
        if rng.random() < p.reliability:
            self.at(now + job.duration_s, "finish", rep)
        else:
            self.at(now + rng.uniform(0.0, job.duration_s), "fail", rep)
        self.inv.touch_provider(p)
        self.inv.touch_job(job)
        return True

    async def _reject(self, job: Job) -> None:
        """The requester cannot pay for a replica: the job is refused and its running replicas are cancelled
        and refunded (no evidence: not the provider's fault)."""
        for slot in range(job.redundancy):
            self.pending.pop((job.id, slot), None)
        for rep in list(job.placed.values()):
            self._end_replica(rep, "failed")
            await self._refund(rep, "cancelled: the requester cannot pay for every replica")
        job.state = "rejected"
        self.metrics.rejected += 1
        self.inv.touch_job(job)

    # -- outcomes --------------------------------------------------------------------------------------

    def _end_replica(self, rep: Replica, state: str) -> Provider:
        p = self.providers[rep.provider]
        p.running.pop(rep.contract, None)
        p.book.release(rep.contract)
        rep.state = state
        job = rep.job
        if job.placed.get(rep.slot) is rep:
            del job.placed[rep.slot]
        if p.state == "draining" and not p.running:
            p.state = "offline"
        self._reindex(p)
        self.inv.touch_provider(p)
        self.inv.touch_job(job)
        return p

    async def _refund(self, rep: Replica, reason: str) -> None:
        if self.sc.payment == "pay_before" and rep.price > 0:
            entry = await self.settlement.refund(
                rep.contract, actor=OPERATOR, idem=f"refund:{rep.contract}", reason=reason
            )
            self.inv.entry_appended(entry)
            self.metrics.refunds += rep.price

    def _requeue(self, rep: Replica) -> None:
        job = rep.job
        if job.state == "running" and not job.placed and job.done == 0:
            job.state = "pending"
        self.pending[(job.id, rep.slot)] = self.clock.now()
        self.inv.touch_job(job)

    async def _fail(self, rep: Replica, kind: str) -> None:
        if rep.state != "running":
            return  # the provider's crash or partition ended it first
        p = self._end_replica(rep, "failed")
        self._evidence(p, kind, rep)
        await self._refund(rep, kind)
        self.metrics.failures[kind] += 1
        self._requeue(rep)

    async def _lose(self, p: Provider, kind: str, state: str) -> None:
        self._set_state(p, state)
        for rep in list(p.running.values()):
            await self._fail(rep, kind)

    async def _finish(self, rep: Replica) -> None:
        if rep.state != "running":
            return
        p = self._end_replica(rep, "done")
        job, now = rep.job, self.clock.now()
        if p.dishonest:
            caught = job.redundancy >= 2 or self.rng["runs"].random() < self.sc.providers.detect
            if caught:
                self._evidence(p, "disagreement", rep)
                if p.caught_at is None:
                    p.caught_at = now
                await self._refund(rep, "disagreement")
                self.metrics.caught += 1
                self._requeue(rep)
                return
            self.metrics.bad_accepted += 1
        self._evidence(p, "success", rep)
        await self._pay(rep, p)
        job.done += 1
        if job.done >= job.redundancy:
            job.state = "completed"
            self.metrics.completed += 1
        elif (
            not job.placed
            and now > job.deadline
            and not any((job.id, s) in self.pending for s in range(job.redundancy))
        ):
            job.state = "expired"  # the other replicas never found a provider in time
            self.metrics.expired += 1
        self.inv.touch_job(job)

    async def _pay(self, rep: Replica, p: Provider) -> None:
        if rep.price <= 0:
            return
        if self.sc.payment == "pay_before":
            c, amount = rep.contract, rep.price

            def plan(books: Any) -> Plan:
                state = esc.require_open(books.escrow(c), c, "escrow_release")
                return Plan("escrow_release", esc.payout_postings(state, amount), contract=c, memo="sim: delivered")

            entry = await self.ledger.execute("release", {"contract": c}, actor=p.did, idem=f"release:{c}", plan=plan)
            self.inv.released(c)
            self.inv.entry_appended(entry)
        else:
            if self.rng["runs"].random() < self.sc.requester_default:
                self.metrics.unpaid += rep.price
                return
            try:
                entry = await self.settlement.transfer(
                    rep.job.requester, p.did, rep.price, actor=rep.job.requester, idem=f"pay:{rep.contract}"
                )
                self.inv.entry_appended(entry)
            except AgoraError as exc:
                if exc.code != "insufficient_funds":
                    raise
                self.metrics.unpaid += rep.price
                return
        p.earned += rep.price
        self.metrics.spend[rep.job.requester] += rep.price

    def _evidence(self, p: Provider, kind: str, rep: Replica) -> None:
        now = self.clock.now()
        p.evidence.append(Evidence(p.did, kind, now, cites={"contract": rep.contract}))
        if len(p.evidence) > TRUST_RECORDS:
            del p.evidence[: len(p.evidence) - TRUST_RECORDS]
        r = trustlib.report(p.did, p.evidence, now, self.trust_settings)
        self.trust[p.did] = r.score
        if r.penalty.cooling_until is not None:
            self.cooling[p.did] = r.penalty.cooling_until
            self.metrics.cooldowns += 1
        else:
            self.cooling.pop(p.did, None)


def trail_line(t: float, kind: str, data: Any) -> str:
    what = ""
    if isinstance(data, Replica):
        what = f" {data.contract} on {data.provider}"
    elif isinstance(data, str):
        what = f" {data}"
    return f"t+{t - START:.1f}s {kind}{what}"


__all__ = ["FASTER_PATH", "JOB_STATES", "REAL_CODE", "START", "Job", "Provider", "Replica", "World"]
