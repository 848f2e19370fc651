"""`Matcher`: an open intent -> the market's placement -> contracts, or why not (with counts).

`preview(intent)` is matching only: it reads the market index and runs the pure `match` for each task of
the intent's job (the intent's budget and policy applied, `market.intents.job_spec`). No bid request is
sent, nothing is reserved on any provider, nothing is stored: the intent, the contracts and every
provider are as they were.

`match(intent)` runs the real thing. When the preview already shows a task that fits nowhere, it stops
there (rejections with counts; nothing was asked of anybody). Otherwise it submits the job to the
runner's market path (the same bid -> award -> commit as `agora job run` without --node, `placement.py`)
and waits, bounded, until every unit of the first stage has its contract paid for (escrow locked, or
prepaid), or a placement round did not commit (no bid, every bid declined or refused), or the job
ended. A round that did not commit cancels the job (it would otherwise wait in the queue: an intent is
answered now, and matched again later) and its counts are the rejections.

The answer, for both: `matched`, `contracts` (their ids and states), `rejections` (counts per reason,
the matching's codes, `declined_<code>` for coded declines and failure codes), `budget_rejections`
(candidates whose quote was over the budget or max price, plus bids declined for their price) and, per
task, the candidates considered and chosen (`candidates`: each one's verdict, quote, score, score breakdown and
reasons). A successful match moves the intent `open -> matched`; the
job completing moves it to `fulfilled` (`job_ended`). Each attempt is kept on the intent (`matches`,
the newest `MAX_MATCHES_KEPT`), which the market summary reads for the success rate and top reasons.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from agora.clock import SYSTEM_CLOCK, Clock
from agora.errors import AgoraError
from agora.jobs import stages
from agora.market import JobNeed, match
from agora.market.contracts import ContractBook
from agora.market.intents import IntentBook, job_spec
from agora.models.contract import CANCELLED as CONTRACT_CANCELLED
from agora.models.contract import CREATED, ESCROW_LOCKED, PAID, UNSETTLED, Contract
from agora.models.intent import FULFILLED, MATCHED, Intent, check_move
from agora.orchestrator.runner import JobRunner
from agora.orchestrator.settle import Settler

MAX_MATCHES_KEPT = 20
DEFAULT_WAIT_S = 30.0
BUDGET_CODES = ("over_budget", "declined_price", "bid_over_max_price")


def _paid_for(c: Contract) -> bool:
    """The contract's money moved as its payment mode says (or, with no settlement, it exists)."""
    return c.state in (ESCROW_LOCKED, PAID) or (c.payment_mode == UNSETTLED and c.state == CREATED)


def budget_rejections(counts: dict[str, int]) -> int:
    return sum(counts.get(code, 0) for code in BUDGET_CODES)


def _merge(into: dict[str, int], counts: dict[str, int]) -> None:
    for code, n in counts.items():
        into[code] = into.get(code, 0) + int(n)


class Matcher:
    def __init__(
        self,
        runner: JobRunner,
        intents: IntentBook,
        contracts: ContractBook,
        settler: Settler,
        *,
        clock: Clock = SYSTEM_CLOCK,
        wait_s: float = DEFAULT_WAIT_S,
    ) -> None:
        self.runner = runner
        self.intents = intents
        self.contracts = contracts
        self.settler = settler
        self.clock = clock
        self.wait_s = wait_s
        self._matching: set[str] = set()
        settler.on_job_end = self.job_ended
        # `kind: training` intents are matched by federated learning (set by node/fl.py: the fl manager)
        self.training: Callable[[Intent, bool], Awaitable[dict[str, Any]]] | None = None

    async def preview(self, intent_id: str) -> dict[str, Any]:
        """What a match would do now, without doing any of it (see the module doc)."""
        doc = await self.intents.show(intent_id)
        intent = self.intents.intent(doc)
        if intent.kind == "training":
            return await self._training(doc, intent, preview=True)
        spec = job_spec(intent)
        placer = self.runner.placer
        if placer is None:
            raise AgoraError("unavailable", "this node has no market index: nothing to match against")
        ads = await placer.index.ads()
        now = self.clock.now()
        tasks: dict[str, Any] = {}
        counts: dict[str, int] = {}
        fits = True
        for t in spec.tasks:
            need = JobNeed.from_spec(spec, t.name, requester=self.runner.did)
            decision = match(need, ads, await placer.round_policy(need, ads), now=now)
            _merge(counts, dict(decision.counts))
            fits = fits and bool(decision.chosen)
            quotes = {v.provider: v.quote for v in decision.passed}
            tasks[t.name] = {
                "considered": len(decision.candidates),
                "chosen": list(decision.chosen),
                "quotes": {p: quotes.get(p) for p in decision.chosen},
                "counts": dict(decision.counts),
                "what_would_fit": [s.text for s in decision.what_would_fit],
                "candidates": [v.to_dict() for v in decision.candidates],  # verdict, score breakdown, reasons
            }
        return {
            "intent_id": intent_id,
            "status": doc["status"],
            "preview": True,
            "would_match": fits,
            "tasks": tasks,
            "rejections": counts,
            "budget_rejections": budget_rejections(counts),
        }

    async def match(
        self, intent_id: str, *, base_dirs: Sequence[str] | None = None, wait_s: float | None = None
    ) -> dict[str, Any]:
        """Place the intent's job and answer with its contracts, or the rejections (see the module doc)."""
        if intent_id in self._matching:  # one match of an intent at a time: never two jobs for one intent
            raise AgoraError(
                "intent_transition_invalid",
                f"intent {intent_id} is being matched right now",
                hint="Wait for that match's answer (`agora intent show ID`).",
                details={"allowed": []},
            )
        self._matching.add(intent_id)
        try:
            return await self._match(intent_id, base_dirs, wait_s)
        finally:
            self._matching.discard(intent_id)

    async def _match(self, intent_id: str, base_dirs: Sequence[str] | None, wait_s: float | None) -> dict[str, Any]:
        doc = await self.intents.show(intent_id)
        check_move(intent_id, doc["status"], MATCHED)  # only an open intent is matched
        if doc["intent"].get("kind") == "training":
            return await self._training(doc, self.intents.intent(doc), preview=False)
        preview = await self.preview(intent_id)
        if not preview["would_match"]:
            return await self._answer(doc, None, [], preview["rejections"], preview["tasks"])
        intent = self.intents.intent(doc)
        spec = job_spec(intent)
        dirs = doc.get("base_dirs", []) if base_dirs is None else base_dirs  # default: those given at creation
        summary = await self.runner.submit(spec.to_dict(), base_dirs=[Path(d) for d in dirs])
        job_id = str(summary["id"])
        self.settler.link_intent(job_id, intent_id)
        first = stages(spec)[0]
        want = {u for u in summary["tasks"] if any(u == n or u.startswith(f"{n}-") for n in first)}
        contracts, rejections = await self._follow(job_id, want, self.wait_s if wait_s is None else wait_s)
        return await self._answer(doc, job_id, contracts, rejections, preview["tasks"])

    async def _follow(self, job_id: str, want: set[str], wait_s: float) -> tuple[list[Contract], dict[str, int]]:
        """Until each unit in `want` has a paid contract, a round did not commit, or the job ended."""
        news: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        paid: dict[str, Contract] = {}

        def on_contract(c: Contract, event: str) -> None:
            if c.job_id == job_id:
                news.put_nowait(("contract", c))

        def on_round(_job: str, unit: str, why: dict[str, Any]) -> None:
            news.put_nowait(("round", why))

        stop_contracts = self.contracts.on_change(on_contract)
        stop_rounds = self.settler.listen_rounds(job_id, on_round)
        ended = asyncio.create_task(self.runner.wait(job_id, wait_s), name=f"match:{job_id}")
        ended.add_done_callback(lambda t: news.put_nowait(("ended", None)))
        rejections: dict[str, int] = {}
        try:
            async with asyncio.timeout(wait_s):
                while True:
                    kind, item = await news.get()
                    if kind == "contract" and _paid_for(item):
                        paid.setdefault(item.unit, item)
                        if want <= set(paid):
                            break
                    elif kind == "contract" and item.state == CONTRACT_CANCELLED:
                        rejections[item.timeline[-1].note.split(":", 1)[0] or "payment_failed"] = 1
                        break
                    elif kind == "round" and item.get("outcome") != "committed":
                        _merge(rejections, dict(item.get("blocking", {})))
                        break
                    elif kind == "ended":  # (a quick job may end before its contracts' news is read here)
                        for c in await self.contracts.list(job_id=job_id):
                            if _paid_for(c) or c.state not in ("created", CONTRACT_CANCELLED):
                                paid.setdefault(c.unit, c)
                        if not want <= set(paid):
                            rejections.setdefault("job_ended", 1)
                        break
        except TimeoutError:
            rejections["match_timeout"] = 1
        finally:
            stop_contracts()
            stop_rounds()
            ended.cancel()
            with contextlib.suppress(asyncio.CancelledError, AgoraError):
                await ended
        if rejections:  # not matched now: the job does not stay queued behind the intent's back
            await self.runner.cancel(job_id, "match: not placed now; the intent stays open")
            return [], rejections
        return list(paid.values()), {}

    async def _training(self, doc: dict[str, Any], intent: Intent, *, preview: bool) -> dict[str, Any]:
        """A training intent: the fl manager matches it against the data offers (and starts its run)."""
        intent_id = doc["intent_id"]
        if self.training is None:
            raise AgoraError("intent_kind_unsupported", "this node does not run training", details={"kind": "training"})
        answer = await self.training(intent, preview)
        counts = dict(answer.get("match", {}).get("counts", {}))
        if preview:
            return {
                "intent_id": intent_id,
                "status": doc["status"],
                "preview": True,
                "would_match": bool(answer.get("matched")),
                "rejections": counts,
                "training": answer,
            }
        matched = answer.get("state") == "running"
        run_id = answer.get("run_id")
        attempt = {"at": self.clock.now(), "matched": matched, "run_id": run_id, "rejections": counts}
        fields: dict[str, Any] = {"matches": [*doc.get("matches", []), attempt][-MAX_MATCHES_KEPT:], "match": attempt}
        if matched:
            new = await self.intents.transition(intent_id, MATCHED, cause=f"training run {run_id} started", **fields)
        else:
            new = await self.intents.update(intent_id, **fields)
        return {
            "intent_id": intent_id,
            "status": new["status"],
            "preview": False,
            "matched": matched,
            "run_id": run_id,
            "rejections": counts,
            "training": answer,
        }

    async def _answer(
        self,
        doc: dict[str, Any],
        job_id: str | None,
        contracts: list[Contract],
        rejections: dict[str, int],
        tasks: dict[str, Any],
    ) -> dict[str, Any]:
        matched = bool(contracts) and not rejections
        ids = [c.contract_id for c in contracts]
        attempt: dict[str, Any] = {
            "at": self.clock.now(),
            "matched": matched,
            "job_id": job_id,
            "contracts": ids,
            "rejections": rejections,
            "budget_rejections": budget_rejections(rejections),
        }
        fields: dict[str, Any] = {"matches": [*doc.get("matches", []), attempt][-MAX_MATCHES_KEPT:], "match": attempt}
        intent_id = doc["intent_id"]
        if matched:
            fields["job_ids"] = [*doc.get("job_ids", []), job_id]
            fields["contracts"] = [*doc.get("contracts", []), *ids]
            new = await self.intents.transition(intent_id, MATCHED, cause=f"job {job_id} placed", **fields)
        else:
            new = await self.intents.update(intent_id, **fields)
        return {
            "intent_id": intent_id,
            "status": new["status"],
            "preview": False,
            "matched": matched,
            "job_id": job_id if matched else None,
            "contracts": [c.to_dict() for c in contracts],
            "rejections": rejections,
            "budget_rejections": attempt["budget_rejections"],
            "tasks": tasks,
        }

    async def job_ended(self, job_id: str, state: str) -> None:
        """An intent's job completed: the intent is fulfilled (a failed job leaves it matched, with the job's
        state recorded, for its requester to cancel or look into)."""
        intent_id = self.settler.intent_of(job_id)
        if intent_id is None:  # (after a restart the link is only in the intent's document)
            matched = await self.intents.list(status=MATCHED, limit=1000)
            intent_id = next((d["intent_id"] for d in matched if job_id in d.get("job_ids", [])), None)
        if intent_id is None:
            return
        with contextlib.suppress(AgoraError):
            doc = await self.intents.show(intent_id)
            if doc["status"] != MATCHED:
                return
            if state == "completed":
                await self.intents.transition(intent_id, FULFILLED, cause=f"job {job_id} completed")
            else:
                await self.intents.update(intent_id, last_job={"id": job_id, "state": state})

    async def summary(self) -> dict[str, Any]:
        """The intents and matching part of the market snapshot."""
        docs = await self.intents.list(limit=1000)
        by_status = await self.intents.counts()
        attempts = matched = 0
        reasons: dict[str, int] = {}
        for d in docs:
            for m in d.get("matches", []):
                attempts += 1
                matched += 1 if m.get("matched") else 0
                _merge(reasons, m.get("rejections", {}))
        top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        return {
            "intents": {"total": len(docs), "by_status": by_status},
            "matches": {
                "attempts": attempts,
                "matched": matched,
                "success_rate": round(matched / attempts, 4) if attempts else None,
                "top_rejections": [{"code": c, "count": n} for c, n in top],
            },
        }


__all__ = ["BUDGET_CODES", "Matcher", "budget_rejections"]
