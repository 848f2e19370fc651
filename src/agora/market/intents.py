"""The requester's intent book: what this node asks of the market, kept in the node's store.

`create` validates an intent (`intent_invalid` naming the field; the job spec with the jobs package's own
validation, its errors reported under `job`) and fills in what the body leaves out: `requester` (this
node; another DID is refused), `intent_id`, `valid_from` (now) and `valid_until` (`DEFAULT_VALIDITY_S`
later). A new intent is a `draft` unless the body says `open: true`.

The status workflow is `agora.models.intent`'s; this book enforces it on every move (`transition`), so
the API, the CLI and the matcher all go through the same check. Expiry is by validity, with the injected
clock: an intent past its `valid_until` moves to `expired` when it is next read or moved (`show`, `list`,
`transition`, `expire_due`), and that move is recorded like any other. Each move is one store transaction
with its event (`intent.created`, `intent.status`); the intent's document keeps its history.

`base_dirs` (not part of the intent: where the job's relative file paths are read on this machine when
it is matched) is kept next to it.

What a match places is the intent's job with the intent's budget and policy written into its spec
(`job_spec`): `payment.budget` from the budget, `placement.max_price` and `placement.min_trust` from the
policy (the tighter of the two where the job sets them too).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from agora.clock import SYSTEM_CLOCK, Clock
from agora.errors import AgoraError
from agora.jobs import parse_job
from agora.models.intent import (
    DEFAULT_VALIDITY_S,
    DRAFT,
    EXPIRED,
    OPEN,
    STATUSES,
    USER_MOVES,
    Intent,
    check_move,
    due_to_expire,
    intent_from_dict,
)
from agora.models.job import JobSpec
from agora.store import Store

COLLECTION = "intents"
MAX_LISTED = 1000


def new_intent_id() -> str:
    return "intent-" + secrets.token_hex(6)


def job_spec(intent: Intent) -> JobSpec:
    """The job a match places for `intent`: its spec with the intent's budget and policy applied."""
    doc = dict(intent.job)
    payment = dict(doc.get("payment") or {})
    placement = dict(doc.get("placement") or {})
    if intent.budget is not None:
        payment["budget"] = min(intent.budget, payment.get("budget", intent.budget))
    if intent.policy.max_price is not None:
        placement["max_price"] = min(intent.policy.max_price, placement.get("max_price", intent.policy.max_price))
    if intent.policy.min_trust is not None:
        placement["min_trust"] = max(intent.policy.min_trust, placement.get("min_trust", intent.policy.min_trust))
    if payment:
        doc["payment"] = payment
    if placement:
        doc["placement"] = placement
    return parse_job(doc)


def _job_error(job: Any) -> AgoraError | None:
    """The `intent_invalid` a bad job spec makes (its problems under `job.`), or None."""
    if not isinstance(job, Mapping):
        return None  # intent_from_dict reports it
    try:
        parse_job(job)
    except AgoraError as err:
        if err.code not in ("job_spec_invalid", "workflow_cycle"):
            raise
        inner = err.details.get("errors") if isinstance(err.details, dict) else None
        problems = [
            {**e, "path": f"job.{e['path']}" if e.get("path") else "job"}
            for e in (inner if isinstance(inner, list) else [])
            if isinstance(e, dict)
        ] or [{"path": "job", "expected": "a valid job spec", "got": err.message[:80]}]
        return AgoraError(
            "intent_invalid",
            f"job: {err.message}",
            hint=err.hint,
            details={"field": problems[0]["path"], "errors": problems, "job": err.code},
        )
    return None


def _check_job(job: Any) -> None:
    err = _job_error(job)
    if err is not None:
        raise err


def _with_job_problems(err: AgoraError, data: Mapping[str, Any]) -> AgoraError:
    """An intent's own field errors and its job's, in one `intent_invalid` (every problem at once)."""
    if err.code != "intent_invalid" or data.get("kind", "job") != "job":
        return err
    try:
        job_err = _job_error(data.get("job"))
    except AgoraError:
        return err  # the job fails otherwise (a module that cannot be read): the intent's own errors first
    if job_err is None:
        return err
    errors = [*err.details.get("errors", []), *job_err.details["errors"]]
    return AgoraError(
        "intent_invalid", f"{err.message}; {job_err.message}", hint=err.hint, details={**err.details, "errors": errors}
    )


class IntentBook:
    def __init__(self, store: Store, requester: str, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.store = store
        self.requester = requester
        self.clock = clock

    async def create(self, data: Mapping[str, Any], *, source: str = "api") -> dict[str, Any]:
        """Validate `data`, fill in what it leaves out, and keep it as a draft (or open, with `open: true`)."""
        if not isinstance(data, Mapping):
            raise AgoraError("intent_invalid", "an intent is an object", details={"field": "intent", "errors": []})
        filled = dict(data)
        open_now = filled.pop("open", False)
        base_dirs = filled.pop("base_dirs", [])
        if not isinstance(base_dirs, list) or not all(isinstance(d, str) for d in base_dirs):
            raise AgoraError(
                "intent_invalid",
                "base_dirs: expected a list of directories",
                details={"field": "base_dirs", "errors": []},
            )
        if not isinstance(open_now, bool):
            raise AgoraError("intent_invalid", "open: expected true or false", details={"field": "open", "errors": []})
        now = int(self.clock.now())
        filled.setdefault("kind", "job")
        filled.setdefault("requester", self.requester)
        filled.setdefault("intent_id", new_intent_id())
        filled.setdefault("valid_from", now)
        if "valid_until" not in filled:
            start = filled["valid_from"]
            base = start if isinstance(start, int) and not isinstance(start, bool) else now
            filled["valid_until"] = base + DEFAULT_VALIDITY_S
        try:
            intent = intent_from_dict(filled)  # intent_invalid (every field), intent_kind_unsupported
        except AgoraError as err:
            raise _with_job_problems(err, filled) from None
        if intent.kind == "job":
            _check_job(intent.job)
        if intent.requester != self.requester:
            raise AgoraError(
                "intent_invalid",
                f"requester: an intent of this node is this node's ({self.requester}), not {intent.requester}",
                hint="Leave `requester` out; the node fills it in.",
                details={"field": "requester", "errors": [{"path": "requester", "expected": self.requester}]},
            )
        if await self.store.get(COLLECTION, intent.intent_id) is not None:
            raise AgoraError("already_exists", f"intent {intent.intent_id!r} already exists on this node")
        at = self.clock.now()
        doc = {
            "intent_id": intent.intent_id,
            "status": DRAFT,
            "source": source,
            "created_at": at,
            "updated_at": at,
            "intent": intent.to_dict(),
            "history": [{"status": DRAFT, "at": at, "cause": f"created ({source})"}],
            "job_ids": [],
            "contracts": [],
            "match": None,  # the last match's outcome: contracts or rejection counts
            "base_dirs": list(base_dirs),  # where the job's relative paths (modules, local inputs) are read at match
        }
        async with self.store.transaction():
            await self.store.put(COLLECTION, intent.intent_id, doc)
            await self.store.append_event("intent.created", intent.intent_id, {"kind": intent.kind, "source": source})
        if open_now:
            doc = await self.transition(intent.intent_id, OPEN, cause="opened at creation")
        return doc

    async def _get(self, intent_id: str) -> dict[str, Any]:
        doc = await self.store.get(COLLECTION, intent_id)
        if doc is None:
            raise AgoraError("intent_not_found", f"no intent {intent_id!r} on this node")
        return doc

    async def show(self, intent_id: str) -> dict[str, Any]:
        """One intent (moved to `expired` first when its validity has passed)."""
        return await self._expire(await self._get(intent_id))

    def intent(self, doc: Mapping[str, Any]) -> Intent:
        return intent_from_dict(doc["intent"])

    async def list(self, *, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        if status is not None and status not in STATUSES:
            raise AgoraError("invalid_argument", f"status is one of {', '.join(STATUSES)}, got {status!r}")
        docs = await self.store.query(COLLECTION, order_by="created_at", desc=True, limit=min(limit, MAX_LISTED))
        out = [await self._expire(d) for d in docs]
        return [d for d in out if status is None or d["status"] == status]

    async def counts(self) -> dict[str, int]:
        """Intents by status (expired ones moved first)."""
        counts = dict.fromkeys(STATUSES, 0)
        for d in await self.list(limit=MAX_LISTED):
            counts[d["status"]] += 1
        return counts

    async def transition(
        self, intent_id: str, status: str, *, cause: str = "", by_user: bool = False, **fields: Any
    ) -> dict[str, Any]:
        """Move an intent to `status` (the workflow's check: `intent_transition_invalid` naming the allowed
        moves). `by_user`: a person's request, which may only open or cancel (matched, fulfilled and expired
        are the node's word). `fields` are written with the move (job ids, contracts, the match)."""
        if status not in STATUSES:
            raise AgoraError("invalid_argument", f"status is one of {', '.join(STATUSES)}, got {status!r}")
        doc = await self._expire(await self._get(intent_id))
        if by_user and status not in USER_MOVES:
            check_move(intent_id, doc["status"], status)  # an illegal move says so first
            raise AgoraError(
                "intent_transition_invalid",
                f"intent {intent_id}: {status} is set by the node (match, delivery, validity), not by a request",
                hint="Ask for `open` or `cancelled`; `agora match INTENT` matches an open intent.",
                details={"from": doc["status"], "to": status, "allowed": sorted(USER_MOVES)},
            )
        return await self._move(doc, status, cause or status, **fields)

    async def update(self, intent_id: str, **fields: Any) -> dict[str, Any]:
        """Write `fields` (no status move): the match's outcome on an intent that stays open."""
        doc = {**await self._get(intent_id), **fields, "updated_at": self.clock.now()}
        await self.store.put(COLLECTION, intent_id, doc)
        return doc

    async def _move(self, doc: dict[str, Any], status: str, cause: str, **fields: Any) -> dict[str, Any]:
        check_move(doc["intent_id"], doc["status"], status)
        at = self.clock.now()
        new = {
            **doc,
            **fields,
            "status": status,
            "updated_at": at,
            "history": [*doc["history"], {"status": status, "at": at, "cause": cause[:500]}],
        }
        async with self.store.transaction():
            await self.store.put(COLLECTION, doc["intent_id"], new)
            await self.store.append_event("intent.status", doc["intent_id"], {"status": status, "cause": cause[:500]})
        return new

    async def _expire(self, doc: dict[str, Any]) -> dict[str, Any]:
        until = float(doc["intent"]["valid_until"])
        if due_to_expire(doc["status"], until, self.clock.now()):
            return await self._move(doc, EXPIRED, f"valid until {int(until)}: past it")
        return doc

    async def expire_due(self) -> int:
        """Move every intent past its validity to `expired`; how many moved."""
        n = 0
        for d in await self.store.query(COLLECTION, limit=MAX_LISTED):
            if (await self._expire(d))["status"] != d["status"]:
                n += 1
        return n


__all__ = ["COLLECTION", "IntentBook", "job_spec", "new_intent_id"]
