"""One mapping of nats-py's exceptions for every JetStream user: refused, did not answer, anything else."""

from __future__ import annotations

import nats.errors
import nats.js.errors
import pytest

from agora.errors import CATALOG, AgoraError
from agora.transport.nats_errors import hub_refused, map_nats_error

STORAGE = {"refused": "storage_auth_failed", "unreachable": "storage_unreachable", "unexpected": "internal"}

REFUSALS = [
    nats.errors.AuthorizationError(),
    nats.errors.Error('nats: permissions violation for publish to "$KV.agora-market.x"'),
    nats.errors.Error("nats: 'Authorization Violation'"),
    Exception("authentication timeout"),
]
SILENCES = [
    nats.errors.TimeoutError(),
    nats.errors.NoRespondersError(),
    nats.errors.NoServersError(),
    nats.errors.ConnectionClosedError(),
    nats.errors.StaleConnectionError(),
    nats.js.errors.ServiceUnavailableError(),
    ConnectionRefusedError("refused"),
    TimeoutError(),
]


@pytest.mark.parametrize("e", REFUSALS, ids=lambda e: type(e).__name__)
def test_a_refusal_is_the_callers_refused_code(e: Exception) -> None:
    assert hub_refused(e)
    got = map_nats_error(e, "market ad k")
    assert got.code == "hub_permission_denied" and got.message.startswith("market ad k: the hub refused it")
    assert map_nats_error(e, "hub put", **STORAGE).code == "storage_auth_failed"


@pytest.mark.parametrize("e", SILENCES, ids=lambda e: type(e).__name__)
def test_a_hub_that_does_not_answer_is_the_callers_unreachable_code(e: Exception) -> None:
    assert not hub_refused(e)
    got = map_nats_error(e, "ledger stream s")
    assert got.code == "hub_unreachable" and got.message.startswith("ledger stream s: the hub did not answer")
    assert type(e).__name__ in got.message
    assert map_nats_error(e, "hub put", **STORAGE).code == "storage_unreachable"


def test_anything_else_is_unreachable_unless_the_caller_names_a_code() -> None:
    e = nats.js.errors.BadRequestError(description="stream name is required")
    assert map_nats_error(e, "market bucket b").code == "hub_unreachable"
    got = map_nats_error(e, "hub put", **STORAGE)
    assert got.code == "internal" and "unexpected NATS error BadRequestError" in got.message
    assert map_nats_error(ValueError("bug"), "hub put", **STORAGE).code == "internal"


def test_an_agora_error_passes_through() -> None:
    e = AgoraError("ledger_conflict", "another writer appended first")
    assert map_nats_error(e, "x") is e and map_nats_error(e, "x", **STORAGE) is e


def test_every_code_it_can_give_is_in_the_catalog() -> None:
    for code in ("hub_permission_denied", "hub_unreachable", *STORAGE.values()):
        assert code in CATALOG
