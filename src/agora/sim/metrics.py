"""What a run measures: counters, distributions and time series, each with its definition.

`DEFINITIONS` is the one place a metric is explained; `report.json` carries it next to every value and
docs/simulator.md repeats it for readers. Money is in integer minor units, times in simulated seconds.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from agora.ledger import account_kind

if TYPE_CHECKING:
    from agora.sim.scenario import Scenario
    from agora.sim.world import Job, Replica, World

DEFINITIONS: dict[str, str] = {
    "jobs_submitted": "jobs that arrived during the run",
    "jobs_completed": "jobs whose every replica finished and was accepted",
    "jobs_expired": "jobs that were not (fully) placed before their deadline",
    "jobs_rejected": "jobs refused outright (the requester could not pay the escrow)",
    "jobs_in_flight": "jobs still pending or running when the run ended",
    "jobs_lost": "jobs that ended in no recorded state or with a replica left on a dead provider (must be 0)",
    "placements": "replicas placed (an award committed and started), re-placements included",
    "first_placement_latency_s": (
        "seconds from a job's arrival to the first placement of each of its replicas (p50/p90/p99/max, n); "
        "a re-placement is in replacement_latency_s"
    ),
    "replacements": "replicas placed again after a crash, partition, failure or caught wrong result",
    "replacement_latency_s": "seconds from a replica's loss to its placement again (p50/p90/p99/max, n)",
    "utilisation_mean": "mean over samples of cores held by runs / cores of the online providers",
    "queue_length_max": (
        "most replicas waiting in the pending queue at any moment (checked after every event, not only at samples)"
    ),
    "price_per_core_hour_mean": "mean awarded price per core-hour over all placements",
    "candidates_per_placement": "mean providers handed to the matcher per placement attempt",
    "bids_asked": "bid requests sent (the matcher's top k per attempt)",
    "declines": "bid declines by the provider's reason code (busy, policy, price, draining, expired)",
    "rejection_reasons": (
        "why placement attempts found no provider: per rejected candidate, the matcher's reason codes; "
        "per attempt, no_candidates, all_bids_declined, insufficient_funds"
    ),
    "earnings_by_decile": "mean earnings of the providers in each decile (lowest first) of earnings",
    "providers_earning_nothing": "share of providers that earned nothing (operator viability)",
    "requester_spend_total": "what requesters paid providers in total",
    "requester_spend_mean": "mean spend per requester",
    "refunds_total": "escrow refunded to requesters (failed, lost or caught runs; pay_before)",
    "unpaid_work_total": "work delivered and accepted that the requester never paid (pay_after)",
    "escrow_held_max": "most requester money locked in escrow at a sample (requester exposure, pay_before)",
    "failures": "replica failures by evidence kind (failure: the run failed or the provider crashed; timeout: cut off)",
    "churn": "provider churn events by kind (join, leave, crash, partition)",
    "dishonest_providers": "providers that return wrong results",
    "wrong_results_caught": "wrong results caught (redundancy disagreement or spot check) and re-placed",
    "wrong_results_accepted": "wrong results paid for without being noticed (what dishonesty costs requesters)",
    "time_to_catch_s": "seconds from the start to the first caught wrong result of each dishonest provider (mean)",
    "trust_end": "mean trust at the end of honest and of dishonest providers",
    "cooldowns": "times trust's penalty excluded a provider (provider_cooling_down)",
    "ledger_sum_max_abs": "largest absolute sum of all balances seen at any sample (must be 0)",
    "invariant_checks": "steps after which the invariants were checked",
    # inference routing (scenarios with an `inference` section)
    "inference_requests": "inference requests that arrived",
    "inference_served": "requests answered by a provider whose metering record verified (and paid)",
    "inference_failed": "requests no provider answered (every planned provider failed, or none was eligible)",
    "inference_failures": (
        "failed attempts by code (inference_rate_limited: busy; runner_failed; timeout: hung until the run "
        "timeout; metering_invalid: a record that did not verify), and failed requests as request:<code>"
    ),
    "inference_fallback_rate": "share of served requests that needed more than one provider (routing's fallback)",
    "inference_latency_s": (
        "simulated seconds from a request's arrival to its answer, per routing strategy (p50/p95): failed "
        "attempts' cost plus the answering provider's round trip, time to first token and generation time"
    ),
    "inference_spend_per_requester": "what the requesters paid for inference (mean and max per requester, total)",
    "inference_earnings_by_decile": "mean inference earnings of the model providers in each decile (lowest first)",
    "inference_price_per_1k_tokens": (
        "minor units paid per 1,000 tokens (input + output) of the served requests, per routing strategy and all"
    ),
    "metering_disputes_caught": (
        "metering records refused by verify_record (billed counts not the answer's): never paid"
    ),
    "inference_dishonest_providers": "model providers whose metering records overbill",
    "inference_trust_end": "mean trust at the end of honest and of overbilling model providers",
    "inference_cooldowns": "times trust's penalty started a model provider's cooldown (routing leaves it out)",
    # federated learning (scenarios with an `fl` section)
    "fl_runs": "training intents that arrived",
    "fl_runs_completed": "training runs that closed every round",
    "fl_runs_failed": "training runs that ended with a round below min_fit after its retry (training_too_few_updates)",
    "fl_runs_unmatched": "training intents that match_training found too few data offers for",
    "fl_unmatched_reasons": "match_training's reason counts over the unmatched intents",
    "fl_rounds_completed": "rounds closed with at least min_fit verified updates (paid and aggregated)",
    "fl_rounds_failed": "round attempts closed below min_fit (retried, or failing the run): their updates unpaid",
    "fl_round_duration_s": (
        "simulated seconds per round attempt (p50/p95): the slowest update in time, or the deadline when one was late"
    ),
    "fl_straggler_share": "share of the updates asked for that missed the round deadline (timeout)",
    "fl_updates": (
        "updates asked for (participants x round attempts): paid (verified, in a closed round), unpaid, of which "
        "late (deadline or a dead trainer), rejected (failed the checks), accepted_in_failed_rounds"
    ),
    "fl_late_reasons": "late updates by why (timeout: past the deadline; unavailable: the trainer died)",
    "fl_bad_updates_sent": "bad updates the dishonest data providers sent, by kind (not_finite, shape, norm)",
    "fl_bad_updates_caught": "updates check_update and the receipt checks rejected, by reason (never paid)",
    "fl_spend_per_round": "mean money released to data providers per closed round",
    "fl_spend_total": "money released to data providers in total",
    "fl_earnings_by_decile": "mean earnings of the data providers in each decile (lowest first)",
    "fl_dishonest_providers": "data providers that send bad updates",
    "fl_trust_end": "mean trust at the end of honest and of dishonest data providers",
}
COMPUTE = tuple(k for k in DEFINITIONS if not k.startswith(("inference_", "metering_", "fl_")))
COMMON = ("ledger_sum_max_abs", "invariant_checks")  # in every report, whatever the scenario simulates
SERIES: dict[str, str] = {
    "t_h": "hours since the start",
    "utilisation": "cores held by runs / cores of the online providers",
    "queue": "replicas waiting in the pending queue at the sample (queue_length_max is the exact maximum)",
    "expired": "jobs that expired (not fully placed before their deadline) since the previous sample",
    "online": "providers online",
    "price": "mean awarded price per core-hour since the previous sample",
    "placements": "placements since the previous sample",
    "trust_honest": "mean trust of honest providers with evidence",
    "trust_dishonest": "mean trust of dishonest providers with evidence",
    "ledger_providers": "balance of providers' wallets",
    "ledger_requesters": "balance of requesters' wallets",
    "ledger_escrow": "money held in escrows",
    "ledger_issuance": "the issuance account (minus everything minted)",
    "ledger_sum": "sum of all balances (0 at every step)",
    "rejections": "placement rejections since the previous sample, by reason",
    "inference_served": "inference requests served since the previous sample",
    "inference_failed": "inference requests failed since the previous sample",
    "fl_rounds": "training rounds closed since the previous sample",
    "fl_runs_failed": "training runs failed since the previous sample",
}
SERIES_COMPUTE: tuple[str, ...] = ("utilisation", "queue", "expired", "online", "price", "placements")
SERIES_COMPUTE += ("rejections", "trust_honest", "trust_dishonest")
SERIES_INFERENCE = ("inference_served", "inference_failed")
SERIES_FL = ("fl_rounds", "fl_runs_failed")


def series_keys(scenario: Scenario) -> list[str]:
    """The time series a scenario's report has (the compute market's only when it has one)."""
    keys = [k for k in SERIES if k not in SERIES_INFERENCE + SERIES_FL]
    if not scenario.compute:
        keys = [k for k in keys if k not in SERIES_COMPUTE]
    if scenario.inference is not None:
        keys += SERIES_INFERENCE
    if scenario.fl is not None:
        keys += SERIES_FL
    return keys


def deciles(earnings: list[int]) -> list[float]:
    """Mean of each tenth of `earnings` (sorted ascending)."""
    n = len(earnings)
    out = []
    for d in range(10):
        part = earnings[d * n // 10 : (d + 1) * n // 10]
        out.append(round(sum(part) / len(part), 3) if part else 0.0)
    return out


def quantiles(xs: list[float], qs: tuple[float, ...] = (0.5, 0.9, 0.99)) -> dict[str, float]:
    if not xs:
        return {f"p{round(q * 100)}": 0.0 for q in qs} | {"max": 0.0, "n": 0}
    s = sorted(xs)
    out: dict[str, float] = {f"p{round(q * 100)}": s[min(len(s) - 1, int(q * len(s)))] for q in qs}
    out["max"] = s[-1]
    out["n"] = len(s)
    return out


class Metrics:
    def __init__(self, scenario: Scenario, world: World) -> None:
        self._sc = scenario
        self._w = world
        self.submitted = self.completed = self.expired = self.rejected = 0
        self.placements = 0
        self.latency: list[float] = []  # first placements
        self.replaced: list[float] = []  # re-placements
        self.queue_max = 0
        self.scanned = 0
        self.attempts = 0
        self.bids_asked = 0
        self.declines: Counter[str] = Counter()
        self.rejections: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.churn: Counter[str] = Counter()
        self.spend: Counter[str] = Counter()
        self.refunds = self.unpaid = 0
        self.caught = self.bad_accepted = self.cooldowns = 0
        self.core_hours_price: list[float] = []
        self.series: dict[str, list[Any]] = {k: [] for k in SERIES}  # trimmed to series_keys in the report
        self._interval_rej: Counter[str] = Counter()
        self._interval_prices: list[float] = []
        self._interval_placements = 0
        self._last_expired = 0
        self.escrow_max = 0
        self.sum_max = 0

    def reject(self, code: str, n: int = 1) -> None:
        self.rejections[code] += n
        self._interval_rej[code] += n

    def placed(self, job: Job, slot: int, since: float, now: float) -> None:
        """A replica was placed: its slot's first placement counts from the job's arrival, a re-placement
        from the loss that put it back in the queue (`since`)."""
        if job.placed_once >> slot & 1:
            self.replaced.append(now - since)
        else:
            job.placed_once |= 1 << slot
            self.latency.append(now - job.arrival)

    def queued(self, n: int) -> None:
        """The pending queue holds `n` replicas now (called after every event: the maximum is exact)."""
        if n > self.queue_max:
            self.queue_max = n

    def awarded(self, rep: Replica, job: Job) -> None:
        self.placements += 1
        self._interval_placements += 1
        per = rep.price / (job.cores * job.duration_s / 3600.0)
        self.core_hours_price.append(per)
        self._interval_prices.append(per)

    def sample(self, final: bool = False) -> None:
        w = self._w
        now = w.clock.now()
        s = self.series
        online = [p for p in w.providers.values() if p.state in ("online", "draining")]
        total = sum(p.cores for p in online)
        held = sum(p.cores * 1000 - p.book.free.cpu_millis for p in online)
        s["t_h"].append(round((now - w.end + self._sc.duration_s) / 3600.0, 6))
        s["utilisation"].append(round(held / (total * 1000), 6) if total else 0.0)
        s["queue"].append(len(w.pending))
        s["expired"].append(self.expired - self._last_expired)
        self._last_expired = self.expired
        s["online"].append(len(online))
        ip = self._interval_prices
        s["price"].append(round(sum(ip) / len(ip), 6) if ip else None)
        s["placements"].append(self._interval_placements)
        for name, dishonest in (("trust_honest", False), ("trust_dishonest", True)):
            ts = [w.trust[p.did] for p in w.providers.values() if p.dishonest == dishonest and p.did in w.trust]
            s[name].append(round(sum(ts) / len(ts), 6) if ts else None)
        totals: Counter[str] = Counter()
        providers, earners = w.providers, w.earners
        for account, balance in w.ledger.books.balances.items():
            kind = account_kind(account)
            if kind == "wallet":
                did = account[7:]
                totals["providers" if did in providers or did in earners else "requesters"] += balance
            else:
                totals[kind] += balance
        for name in ("providers", "requesters", "escrow", "issuance"):
            s[f"ledger_{name}"].append(totals[name])
        ledger_sum = sum(totals.values())
        s["ledger_sum"].append(ledger_sum)
        self.sum_max = max(self.sum_max, abs(ledger_sum))
        self.escrow_max = max(self.escrow_max, totals["escrow"])
        s["rejections"].append(dict(sorted(self._interval_rej.items())))
        if w.inference is not None:
            w.inference.sample(s)
        if w.fl is not None:
            w.fl.sample(s)
        self._interval_rej = Counter()
        self._interval_prices = []
        self._interval_placements = 0
        w.inv.ledger_total()

    def summary(self) -> dict[str, Any]:
        w = self._w
        earnings = sorted(p.earned for p in w.providers.values())
        n = len(earnings)
        in_flight = sum(j.state in ("pending", "running") for j in w.jobs.values())
        dishonest = [p for p in w.providers.values() if p.dishonest]
        honest = [p for p in w.providers.values() if not p.dishonest]
        catch = [p.caught_at - w.end + self._sc.duration_s for p in dishonest if p.caught_at is not None]

        def mean_trust(ps: list[Any]) -> float | None:
            ts = [w.trust[p.did] for p in ps if p.did in w.trust]
            return round(sum(ts) / len(ts), 6) if ts else None

        spend = [self.spend[r] for r in w.requesters]
        values: dict[str, Any] = {
            "jobs_submitted": self.submitted,
            "jobs_completed": self.completed,
            "jobs_expired": self.expired,
            "jobs_rejected": self.rejected,
            "jobs_in_flight": in_flight,
            "jobs_lost": self.submitted - self.completed - self.expired - self.rejected - in_flight,
            "placements": self.placements,
            "first_placement_latency_s": {k: round(v, 3) for k, v in quantiles(self.latency).items()},
            "replacements": len(self.replaced),
            "replacement_latency_s": {k: round(v, 3) for k, v in quantiles(self.replaced).items()},
            "utilisation_mean": _mean([u for u in self.series["utilisation"]]),
            "queue_length_max": max(self.queue_max, max(self.series["queue"], default=0)),
            "price_per_core_hour_mean": _mean(self.core_hours_price),
            "candidates_per_placement": round(
                self.scanned / max(1, self.placements + sum(self.rejections.values())), 3
            ),
            "bids_asked": self.bids_asked,
            "declines": dict(sorted(self.declines.items())),
            "rejection_reasons": dict(sorted(self.rejections.items())),
            "earnings_by_decile": deciles(earnings),
            "providers_earning_nothing": round(sum(e == 0 for e in earnings) / n, 6) if n else 0.0,
            "requester_spend_total": sum(spend),
            "requester_spend_mean": _mean([float(x) for x in spend]),
            "refunds_total": self.refunds,
            "unpaid_work_total": self.unpaid,
            "escrow_held_max": self.escrow_max,
            "failures": dict(sorted(self.failures.items())),
            "churn": dict(sorted(self.churn.items())),
            "dishonest_providers": len(dishonest),
            "wrong_results_caught": self.caught,
            "wrong_results_accepted": self.bad_accepted,
            "time_to_catch_s": _mean(catch) if catch else None,
            "trust_end": {"honest": mean_trust(honest), "dishonest": mean_trust(dishonest)},
            "cooldowns": self.cooldowns,
            "ledger_sum_max_abs": self.sum_max,
            "invariant_checks": w.inv.checks,
        }
        if not self._sc.compute:
            values = {k: v for k, v in values.items() if k in COMMON}
        if w.inference is not None:
            values.update(w.inference.summary())
        if w.fl is not None:
            values.update(w.fl.summary())
        return {k: {"value": v, "definition": DEFINITIONS[k]} for k, v in values.items()}

    def report_series(self) -> dict[str, Any]:
        keys = series_keys(self._sc)
        return {"definitions": {k: SERIES[k] for k in keys}, "values": {k: self.series[k] for k in keys}}


def _mean(xs: list[float]) -> float:
    return round(sum(xs) / len(xs), 6) if xs else 0.0


__all__ = ["COMPUTE", "DEFINITIONS", "SERIES", "Metrics", "deciles", "quantiles", "series_keys"]
