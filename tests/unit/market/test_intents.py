"""The intent book: field-level validation, the status workflow enforced on every move (each illegal move
refused with the allowed ones named), expiry by validity with an injected clock, and the job a match places."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from agora.clock import ManualClock
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.market.intents import IntentBook, job_spec
from agora.models.intent import (
    CANCELLED,
    DEFAULT_VALIDITY_S,
    DRAFT,
    EXPIRED,
    FULFILLED,
    MATCHED,
    MOVES,
    OPEN,
    STATUSES,
)
from agora.store import MemoryStore

ME = Keypair.generate().did
JOB = {"name": "hello", "tasks": [{"name": "t", "module": "hello.wasm", "resources": {"cpu": 1, "memory": "64Mi"}}]}
NOW = 1_000_000


def body(**extra: Any) -> dict[str, Any]:
    return {"job": JOB, "budget": 500, **extra}


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    s = MemoryStore(ManualClock(NOW))
    await s.open()
    yield s
    await s.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def book(store: MemoryStore, clock: ManualClock) -> IntentBook:
    return IntentBook(store, ME, clock=clock)


async def test_create_fills_in_and_starts_as_a_draft(book: IntentBook, store: MemoryStore) -> None:
    doc = await book.create(body(policy={"min_trust": 0.5, "max_price": 400, "data_tags": ["eu"]}))
    assert doc["status"] == DRAFT and doc["intent"]["requester"] == ME
    assert doc["intent"]["valid_from"] == NOW and doc["intent"]["valid_until"] == NOW + DEFAULT_VALIDITY_S
    assert doc["intent"]["policy"] == {"min_trust": 0.5, "max_price": 400, "data_tags": ["eu"]}
    assert [e.subject for e in await store.events(kind="intent.created")] == [doc["intent_id"]]
    opened = await book.create(body(open=True))
    assert opened["status"] == OPEN and [h["status"] for h in opened["history"]] == [DRAFT, OPEN]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"budget": 500}, "job"),
        (body(budget=0), "budget"),
        (body(budget="10"), "budget"),
        (body(budget=True), "budget"),
        (body(policy={"min_trust": 2}), "policy.min_trust"),
        (body(policy={"max_price": -1}), "policy.max_price"),
        (body(policy={"max_price": 600}), "policy.max_price"),  # above the budget
        (body(policy={"data_tags": ["ok", "no spaces"]}), "policy.data_tags[1]"),
        (body(policy={"colour": "red"}), "policy.colour"),
        (body(policy=[1]), "policy"),
        (body(kind="lunch"), "kind"),
        (body(valid_from=NOW, valid_until=NOW - 1), "valid_until"),
        (body(valid_until="soon"), "valid_until"),
        (body(intent_id="has space"), "intent_id"),
        (body(extra=1), "extra"),
        (body(requester=Keypair.generate().did), "requester"),
        (body(job={"name": "x", "tasks": []}), "job.tasks"),
        (body(job={"name": "x", "tasks": [{"name": "t", "engine": "warp"}]}), "job.tasks[0].engine"),
        (body(open="yes"), "open"),
    ],
)
async def test_invalid_fields_are_named(book: IntentBook, data: dict[str, Any], field: str) -> None:
    with pytest.raises(AgoraError) as err:
        await book.create(data)
    assert err.value.code == "intent_invalid"
    assert err.value.details["field"] == field, err.value.details


async def test_every_bad_field_is_listed_at_once(book: IntentBook) -> None:
    with pytest.raises(AgoraError) as err:
        await book.create(body(budget=-5, policy={"min_trust": "high"}, kind="lunch"))
    paths = {e["path"] for e in err.value.details["errors"]}
    assert {"budget", "policy.min_trust", "kind"} <= paths


async def test_the_jobs_problems_are_listed_with_the_intents_own(book: IntentBook) -> None:
    """A person who got the budget and the job's units wrong reads every problem in one answer (the form shows
    each under its field), and a bad budget does not also blame max_price for being above it."""
    job = {
        "name": "x",
        "tasks": [{"name": "t", "module": "m.wasm", "resources": {"cpu": -1, "memory": "64 megabytes"}}],
    }
    with pytest.raises(AgoraError) as err:
        await book.create({"job": job, "budget": -3, "policy": {"max_price": 500}})
    assert err.value.code == "intent_invalid" and err.value.details["field"] == "budget"
    paths = [e["path"] for e in err.value.details["errors"]]
    assert paths == ["budget", "job.tasks[0].resources.cpu", "job.tasks[0].resources.memory"]
    assert "unknown unit 'megabytes'" in err.value.message


@pytest.mark.parametrize(
    ("data", "field"), [(body(budget=10**23), "budget"), (body(policy={"max_price": 2**63}), "policy.max_price")]
)
async def test_amounts_past_any_ledgers_are_intent_invalid(book: IntentBook, data: dict[str, Any], field: str) -> None:
    """Not the store's "integers must fit in 64 bits" when the intent is kept: the field, and the most there is."""
    with pytest.raises(AgoraError) as err:
        await book.create(data)
    assert err.value.code == "intent_invalid" and err.value.details["field"] == field
    assert err.value.details["errors"][0]["expected"] == f"at most {2**62:,} minor units"
    assert (await book.create(body(budget=2**62)))["intent"]["budget"] == 2**62


async def test_reserved_kinds_are_not_yet(book: IntentBook) -> None:
    with pytest.raises(AgoraError) as err:
        await book.create(body(kind="inference"))
    assert err.value.code == "intent_kind_unsupported" and "not supported yet" in err.value.message


async def test_a_training_intent_needs_its_training_spec(book: IntentBook) -> None:
    with pytest.raises(AgoraError) as err:
        await book.create({"kind": "training", "budget": 500})
    assert err.value.code == "intent_invalid" and err.value.details["field"] == "training"
    spec = {"schema": {"features": ["a", "b"], "label": "y"}, "data_tags": ["digits"], "rounds": 2}
    made = await book.create({"kind": "training", "budget": 500, "training": spec})
    intent = book.intent(made)
    assert intent.kind == "training" and intent.training is not None and intent.training.rounds == 2


async def _in_status(book: IntentBook, status: str) -> str:
    """A new intent moved along the workflow into `status`."""
    doc = await book.create(body())
    path = {
        DRAFT: [],
        OPEN: [OPEN],
        MATCHED: [OPEN, MATCHED],
        FULFILLED: [OPEN, MATCHED, FULFILLED],
        CANCELLED: [CANCELLED],
        EXPIRED: [EXPIRED],
    }[status]
    for s in path:
        await book.transition(doc["intent_id"], s)
    return str(doc["intent_id"])


@pytest.mark.parametrize("old", STATUSES)
@pytest.mark.parametrize("new", STATUSES)
async def test_every_illegal_move_is_refused_naming_the_allowed_ones(book: IntentBook, old: str, new: str) -> None:
    intent_id = await _in_status(book, old)
    if new in MOVES[old]:
        doc = await book.transition(intent_id, new)
        assert doc["status"] == new and doc["history"][-1]["status"] == new
        return
    with pytest.raises(AgoraError) as err:
        await book.transition(intent_id, new)
    assert err.value.code == "intent_transition_invalid"
    assert err.value.details["allowed"] == list(MOVES[old])
    assert (", ".join(MOVES[old]) or "final") in err.value.message
    assert (await book.show(intent_id))["status"] == old  # nothing changed


async def test_a_person_may_only_open_or_cancel(book: IntentBook) -> None:
    intent_id = await _in_status(book, OPEN)
    with pytest.raises(AgoraError) as err:
        await book.transition(intent_id, MATCHED, by_user=True)
    assert err.value.code == "intent_transition_invalid" and "set by the node" in err.value.message
    assert (await book.transition(intent_id, CANCELLED, by_user=True))["status"] == CANCELLED


async def test_expiry_by_validity_with_the_clock(book: IntentBook, clock: ManualClock, store: MemoryStore) -> None:
    short = await book.create(body(valid_until=NOW + 60, open=True))
    long = await book.create(body())
    clock.advance(59)
    assert (await book.show(short["intent_id"]))["status"] == OPEN
    clock.advance(1)
    shown = await book.show(short["intent_id"])
    assert shown["status"] == EXPIRED and "past it" in shown["history"][-1]["cause"]
    assert (await book.show(long["intent_id"]))["status"] == DRAFT
    with pytest.raises(AgoraError) as err:  # an expired intent is not matched
        await book.transition(short["intent_id"], MATCHED)
    assert err.value.code == "intent_transition_invalid"
    assert [e.data["status"] for e in await store.events(kind="intent.status")] == [OPEN, EXPIRED]
    assert (await book.counts())[EXPIRED] == 1


async def test_the_job_a_match_places_carries_the_budget_and_policy(book: IntentBook) -> None:
    job = {**JOB, "payment": {"budget": 900}, "placement": {"max_price": 100}}
    doc = await book.create(body(job=job, budget=500, policy={"max_price": 300, "min_trust": 0.2}))
    spec = job_spec(book.intent(doc))
    assert spec.payment.budget == 500  # the tighter of the two
    assert spec.placement.max_price == 100 and spec.placement.min_trust == 0.2


async def test_unknown_intent(book: IntentBook) -> None:
    with pytest.raises(AgoraError) as err:
        await book.show("intent-nope")
    assert err.value.code == "intent_not_found"
