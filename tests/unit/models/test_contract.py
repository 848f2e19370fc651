"""The contract state machine: the timeline only grows along the allowed moves, and the settle checks give the
stable codes (release twice, refund after release, anything on a disputed contract)."""

from __future__ import annotations

import pytest

from agora.errors import AgoraError
from agora.models.contract import (
    ALLOCATED,
    DELIVERED,
    DISPUTED,
    ESCROW_LOCKED,
    ESCROW_RELEASED,
    MOVES,
    PAY_AFTER,
    PAY_BEFORE,
    REFUNDED,
    RUNNING,
    STATES,
    TERMINAL,
    UNSETTLED,
    Contract,
    check_settle,
)

HAPPY = [ESCROW_LOCKED, ALLOCATED, RUNNING, DELIVERED, ESCROW_RELEASED]


def contract(mode: str = PAY_AFTER) -> Contract:
    c = Contract("contract-1", "did:key:zreq", "did:key:zprov", "job-1", "t", 100, 100, mode, {})
    c.record("created", 1.0, "did:key:zreq")
    return c


def test_the_happy_timeline_in_order_and_back_from_a_dict() -> None:
    c = contract()
    for i, event in enumerate(HAPPY, start=2):
        c.record(event, float(i), "did:key:zreq", {"ledger_entries": ["e"]} if i == 2 else {})
    assert c.events() == ["created", *HAPPY] and c.state == ESCROW_RELEASED and c.ended
    assert [e.at for e in c.timeline] == sorted(e.at for e in c.timeline)
    again = Contract.from_dict(c.to_dict())
    assert again == c and again.timeline[1].evidence == {"ledger_entries": ["e"]}


@pytest.mark.parametrize("old", [s for s in STATES if s != "created"])
@pytest.mark.parametrize("new", STATES)
def test_every_move_outside_the_machine_is_refused(old: str, new: str) -> None:
    c = contract()
    c.state = old
    if new in MOVES.get(old, ()):
        c.record(new, 2.0, "x")
        assert c.state == new
        return
    with pytest.raises(AgoraError) as err:
        c.record(new, 2.0, "x")
    assert err.value.code == "contract_invalid_state"
    assert err.value.details["allowed"] == list(MOVES.get(old, ()))
    assert c.state == old and len(c.timeline) == 1


def test_notes_do_not_move_the_state() -> None:
    c = contract()
    c.record("note", 2.0, "x", note="hello")
    assert c.state == "created" and c.events() == ["created", "note"]


def test_settle_codes() -> None:
    c = contract()
    c.state = ESCROW_RELEASED
    with pytest.raises(AgoraError) as err:
        check_settle(c, "release")
    assert err.value.code == "contract_already_released"
    with pytest.raises(AgoraError) as err:
        check_settle(c, "refund")
    assert err.value.code == "contract_already_settled"
    c.state = REFUNDED
    with pytest.raises(AgoraError) as err:
        check_settle(c, "release")
    assert err.value.code == "contract_already_settled"
    c.state = DISPUTED
    for action in ("release", "refund", "dispute"):
        with pytest.raises(AgoraError) as err:
            check_settle(c, action)
        assert err.value.code == "contract_disputed"
    before = contract(PAY_BEFORE)
    before.state = RUNNING
    with pytest.raises(AgoraError) as err:
        check_settle(before, "release")
    assert err.value.code == "contract_invalid_state" and "pay_before" in err.value.message
    before.state = DELIVERED  # prepaid and delivered: that is the end
    with pytest.raises(AgoraError) as err:
        check_settle(before, "refund")
    assert err.value.code == "contract_already_settled"
    unsettled = contract(UNSETTLED)
    unsettled.state = RUNNING
    with pytest.raises(AgoraError) as err:
        check_settle(unsettled, "refund")
    assert err.value.code == "contract_invalid_state" and "no settlement" in err.value.message
    c.state = RUNNING
    for action in ("refund", "dispute", "release"):
        check_settle(c, action)  # allowed here (release then needs the receipt: the settler checks)
    assert set(STATES) >= TERMINAL
