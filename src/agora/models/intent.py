"""What a requester needs from the market: an intent (pure data, its validation and its status workflow).

An intent names what is needed (`kind`: `job`, or `training` with a `training` spec from
`agora.models.training` instead of a job; `inference` is reserved and refused with
`intent_kind_unsupported`), the budget for it (integer minor units), a policy (`min_trust` 0..1,
`max_price` in minor units, `data_tags`) and a validity window. The job itself is a job spec: this module
keeps it as a mapping (layer 1 does not parse); `agora.market.intents` validates it with the jobs package.

Status workflow, enforced here so that no caller (API, CLI, match) can skip it:

    draft -> open -> matched -> fulfilled
      |        |        |
      +--------+--------+---> cancelled        (and draft/open/matched -> expired, by validity)

Any other move raises `intent_transition_invalid` naming the moves allowed from the current status. An
intent whose `valid_until` has passed is `expired` when next read (`expire_due`, with the caller's clock).

Validation never stops at the first problem: `intent_from_dict` collects every field error (path,
expected, got) and raises one `intent_invalid` whose `details.field` names the first bad field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from agora.errors import AgoraError
from agora.models.capability import MAX_MINOR_UNITS
from agora.models.training import TrainingSpec, training_from_dict

KINDS = ("job", "training")
RESERVED_KINDS = ("inference",)  # in the model, not accepted yet

DRAFT = "draft"
OPEN = "open"
MATCHED = "matched"
FULFILLED = "fulfilled"
CANCELLED = "cancelled"
EXPIRED = "expired"
STATUSES = (DRAFT, OPEN, MATCHED, FULFILLED, CANCELLED, EXPIRED)
TERMINAL = frozenset({FULFILLED, CANCELLED, EXPIRED})
MOVES: dict[str, tuple[str, ...]] = {
    DRAFT: (OPEN, CANCELLED, EXPIRED),
    OPEN: (MATCHED, CANCELLED, EXPIRED),
    MATCHED: (FULFILLED, CANCELLED, EXPIRED),
    FULFILLED: (),
    CANCELLED: (),
    EXPIRED: (),
}
USER_MOVES = frozenset({OPEN, CANCELLED})  # what a person asks for; matched/fulfilled/expired come from the node

MAX_VALIDITY_S = 365 * 24 * 3600
DEFAULT_VALIDITY_S = 7 * 24 * 3600
MAX_TAGS = 64
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")
FIELDS = ("intent_id", "kind", "requester", "job", "budget", "policy", "valid_from", "valid_until", "name", "training")
POLICY_FIELDS = ("min_trust", "max_price", "data_tags")


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _show(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= 80 else value[:77] + "..."
    return f"a {type(value).__name__}"


class Problems:
    """Field errors of one intent, raised together as one `intent_invalid`."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, path: str, expected: str, got: Any = None) -> None:
        self.items.append({"path": path, "expected": expected, "got": _show(got)})

    def raise_if_any(self) -> None:
        if not self.items:
            return
        first = self.items[0]
        text = "; ".join(f"{p['path']}: expected {p['expected']}, got {p['got']!r}" for p in self.items[:5])
        more = f" (+{len(self.items) - 5} more)" if len(self.items) > 5 else ""
        raise AgoraError(
            "intent_invalid",
            text + more,
            hint=f"Fix `{first['path']}`: {first['expected']}.",
            details={"field": first["path"], "errors": list(self.items)},
        )


@dataclass(frozen=True)
class IntentPolicy:
    min_trust: float | None = None
    max_price: int | None = None
    data_tags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"data_tags": list(self.data_tags)}
        if self.min_trust is not None:
            out["min_trust"] = self.min_trust
        if self.max_price is not None:
            out["max_price"] = self.max_price
        return out


@dataclass(frozen=True)
class Intent:
    intent_id: str
    kind: str
    requester: str
    job: Mapping[str, Any]  # a job spec (validated by agora.market.intents with the jobs package)
    budget: int | None
    policy: IntentPolicy = field(default_factory=IntentPolicy)
    valid_from: int = 0
    valid_until: int = 0
    name: str = ""
    training: TrainingSpec | None = None  # kind training: what to train, on which data, how many rounds

    def is_valid_at(self, now: float) -> bool:
        return self.valid_from <= now < self.valid_until

    def to_dict(self) -> dict[str, Any]:
        return {
            "intent_id": self.intent_id,
            "kind": self.kind,
            "requester": self.requester,
            "name": self.name,
            "job": dict(self.job),
            "budget": self.budget,
            "policy": self.policy.to_dict(),
            "valid_from": self.valid_from,
            "valid_until": self.valid_until,
            **({"training": self.training.to_dict()} if self.training is not None else {}),
        }


def intent_from_dict(data: Any) -> Intent:
    """A validated `Intent` (every field filled in: the intent book fills defaults first), or one
    `intent_invalid` listing every bad field; a reserved kind is `intent_kind_unsupported`."""
    p = Problems()
    if not isinstance(data, Mapping):
        p.add("intent", "an object", data)
        p.raise_if_any()
    assert isinstance(data, Mapping)
    for key in data:
        if key not in FIELDS:
            p.add(str(key), f"no such field; known fields: {', '.join(FIELDS)}", key)
    kind = data.get("kind", "job")
    if kind in RESERVED_KINDS:
        raise AgoraError(
            "intent_kind_unsupported",
            f"kind: {kind!r} intents are not supported yet (only {', '.join(KINDS)})",
            details={"field": "kind", "kind": kind},
        )
    if kind not in KINDS:
        p.add("kind", f"one of {', '.join(KINDS)} ({', '.join(RESERVED_KINDS)} come later)", kind)
    intent_id = data.get("intent_id")
    if not isinstance(intent_id, str) or not _ID_RE.match(intent_id):
        p.add("intent_id", "1-128 characters of letters, digits and ._:- (starting with a letter or digit)", intent_id)
    requester = data.get("requester")
    if not isinstance(requester, str) or not requester.startswith("did:") or not 8 <= len(requester) <= 256:
        p.add("requester", "a DID", requester)
    name = data.get("name", "")
    if not isinstance(name, str) or len(name) > 200:
        p.add("name", "a string of at most 200 characters", name)
    job = data.get("job", {} if kind == "training" else None)
    if not isinstance(job, Mapping):
        p.add("job", "a job spec (an object with tasks)", job)
    training = _training(p, kind, data.get("training"))
    budget = data.get("budget")
    if budget is not None and (not _is_int(budget) or budget <= 0):
        p.add("budget", "a positive integer (minor units)", budget)
    elif budget is not None and budget > MAX_MINOR_UNITS:
        p.add("budget", f"at most {MAX_MINOR_UNITS:,} minor units", budget)
    policy = _policy(p, data.get("policy", {}))
    valid_from, valid_until = data.get("valid_from"), data.get("valid_until")
    if not _is_int(valid_from) or valid_from < 0:
        p.add("valid_from", "a unix time in seconds (an integer)", valid_from)
    if not _is_int(valid_until) or valid_until < 0:
        p.add("valid_until", "a unix time in seconds (an integer)", valid_until)
    elif _is_int(valid_from) and not valid_from < valid_until <= valid_from + MAX_VALIDITY_S:
        p.add("valid_until", f"after valid_from, at most {MAX_VALIDITY_S // 86400} days later", valid_until)
    if policy is not None and policy.max_price is not None and _is_int(budget) and 0 < budget < policy.max_price:
        p.add("policy.max_price", f"at most the budget ({budget:,})", policy.max_price)
    p.raise_if_any()
    assert isinstance(job, Mapping) and isinstance(intent_id, str) and isinstance(requester, str)
    assert _is_int(valid_from) and _is_int(valid_until) and policy is not None and isinstance(name, str)
    return Intent(
        intent_id=intent_id,
        kind=str(kind),
        requester=requester,
        job=dict(job),
        budget=budget,
        policy=policy,
        valid_from=valid_from,
        valid_until=valid_until,
        name=name,
        training=training,
    )


def _training(p: Problems, kind: Any, value: Any) -> TrainingSpec | None:
    if kind != "training":
        if value is not None:
            p.add("training", "no training spec on a kind job intent (kind: training)", value)
        return None
    try:
        return training_from_dict(value)
    except AgoraError as err:
        for e in err.details.get("errors", []):
            p.items.append(e)
        return None


def _policy(p: Problems, value: Any) -> IntentPolicy | None:
    if value is None:
        return IntentPolicy()
    if not isinstance(value, Mapping):
        p.add("policy", "an object (min_trust, max_price, data_tags)", value)
        return None
    ok = True
    for key in value:
        if key not in POLICY_FIELDS:
            p.add(f"policy.{key}", f"no such field; known fields: {', '.join(POLICY_FIELDS)}", key)
            ok = False
    min_trust = value.get("min_trust")
    if min_trust is not None and (
        isinstance(min_trust, bool) or not isinstance(min_trust, int | float) or not 0 <= min_trust <= 1
    ):
        p.add("policy.min_trust", "a number from 0 to 1", min_trust)
        ok = False
    max_price = value.get("max_price")
    if max_price is not None and (not _is_int(max_price) or max_price <= 0):
        p.add("policy.max_price", "a positive integer (minor units)", max_price)
        ok = False
    elif max_price is not None and max_price > MAX_MINOR_UNITS:
        p.add("policy.max_price", f"at most {MAX_MINOR_UNITS:,} minor units", max_price)
        ok = False
    tags = value.get("data_tags", [])
    if not isinstance(tags, list | tuple) or len(tags) > MAX_TAGS:
        p.add("policy.data_tags", f"a list of at most {MAX_TAGS} tags", tags)
        ok = False
    else:
        for i, tag in enumerate(tags):
            if not isinstance(tag, str) or not _TAG_RE.match(tag):
                p.add(f"policy.data_tags[{i}]", "a tag of letters, digits and ._:/- (1-64 characters)", tag)
                ok = False
    if not ok:
        return None
    return IntentPolicy(
        min_trust=float(min_trust) if min_trust is not None else None,
        max_price=max_price,
        data_tags=tuple(tags),
    )


def check_move(intent_id: str, old: str, new: str) -> None:
    """Raise `intent_transition_invalid` unless `old -> new` is a move of the workflow."""
    allowed = MOVES.get(old, ())
    if new not in allowed:
        moves = ", ".join(allowed) if allowed else f"none ({old} is final)"
        raise AgoraError(
            "intent_transition_invalid",
            f"intent {intent_id} cannot go from {old} to {new}; allowed from {old}: {moves}",
            details={"from": old, "to": new, "allowed": list(allowed)},
        )


def due_to_expire(status: str, valid_until: float, now: float) -> bool:
    """Whether an intent in `status` is past its validity and should move to `expired`."""
    return status not in TERMINAL and now >= valid_until


__all__ = [
    "CANCELLED",
    "DEFAULT_VALIDITY_S",
    "DRAFT",
    "EXPIRED",
    "FULFILLED",
    "KINDS",
    "MATCHED",
    "MOVES",
    "OPEN",
    "RESERVED_KINDS",
    "STATUSES",
    "TERMINAL",
    "USER_MOVES",
    "Intent",
    "IntentPolicy",
    "Problems",
    "check_move",
    "due_to_expire",
    "intent_from_dict",
]
