"""The allocation protocol's one schema: what a provider accepts and what a requester believes."""

from __future__ import annotations

from typing import Any

import pytest

from agora.codec import decode, encode
from agora.errors import AgoraError
from agora.wire.alloc import (
    ALLOC_TERMINAL,
    ALLOC_VERSION,
    LogLine,
    LogsPage,
    StartArgs,
    StatusReply,
    WatchArgs,
    WatchReply,
    check_alloc_id,
    check_wait,
)

TASK = {"name": "t", "engine": "wasm", "module": "sha256:" + "a" * 64}


def test_start_args_survive_the_wire_and_say_their_version() -> None:
    args = StartArgs("job", "job-1", TASK, b"\0asm", {"in": b"x"}, {"big": "b" * 64})
    wire = decode(encode(args.to_args()))
    assert wire["v"] == ALLOC_VERSION
    assert StartArgs.from_args(wire) == args
    bare = StartArgs("job", "job-1", TASK).to_args()
    assert set(bare) == {"v", "job", "job_id", "task"}  # nothing sent that is not there


@pytest.mark.parametrize(
    ("change", "code", "says"),
    [
        ({"job": 3}, "invalid_argument", "args.job"),
        ({"job_id": None}, "invalid_argument", "args.job"),
        ({"task": "t"}, "job_spec_invalid", "task spec mapping"),
        ({"module_bytes": "not bytes"}, "invalid_argument", "module_bytes"),
        ({"input_data": {"a": "text"}}, "invalid_argument", "input_data"),
        ({"input_refs": {"a": b"x"}}, "invalid_argument", "input_refs"),
        ({"input_refs": ["a"]}, "invalid_argument", "input_refs"),
        ({"v": 2}, "invalid_argument", "version"),
        ({"v": True}, "invalid_argument", "version"),
    ],
)
def test_start_args_in_the_wrong_shape_are_refused(change: dict[str, Any], code: str, says: str) -> None:
    with pytest.raises(AgoraError) as err:
        StartArgs.from_args({"job": "j", "job_id": "job-1", "task": TASK} | change)
    assert err.value.code == code and says in err.value.message


def test_a_request_without_a_version_is_version_one() -> None:
    assert StartArgs.from_args({"job": "j", "task": TASK}).job_id == ""


def test_watch_args_are_checked_and_the_wait_is_capped() -> None:
    w = WatchArgs("alloc-1", 7, "running", 60.0, 10)
    back = WatchArgs.from_args(decode(encode(w.to_args())), max_wait_s=5.0)
    assert back == WatchArgs("alloc-1", 7, "running", 5.0, 10)
    for bad in ({"alloc_id": "x"}, {"alloc_id": "alloc-1", "after_seq": -1}, {"alloc_id": "alloc-1", "limit": 0}):
        with pytest.raises(AgoraError) as err:
            WatchArgs.from_args(bad, 5.0)
        assert err.value.code == "invalid_argument"
    with pytest.raises(AgoraError):
        WatchArgs.from_args({"alloc_id": "alloc-1", "known_state": 3}, 5.0)
    assert check_alloc_id({"alloc_id": "alloc-9"}) == "alloc-9"
    with pytest.raises(AgoraError):
        check_wait({"wait_s": True}, 5.0)


def _status(**over: Any) -> dict[str, Any]:
    return {"alloc_id": "alloc-1", "state": "completed", "error": None, "outputs": [], "receipt": b"r"} | over


def test_a_status_reply_keeps_the_record_and_checks_what_the_requester_relies_on() -> None:
    record = _status(history=[{"state": "accepted"}], job="j")
    reply = StatusReply.of_record(record)
    assert reply.ended and reply.extra["job"] == "j"
    back = StatusReply.from_wire(decode(encode(reply.to_wire())), "alloc-1")
    assert back == reply and back.receipt == b"r"
    for bad in (
        _status(alloc_id="alloc-2"),  # for another allocation
        _status(state=None),
        _status(error="boom"),
        _status(outputs={"a": 1}),
        _status(receipt="not the signed bytes"),
        "not a mapping",
    ):
        with pytest.raises(AgoraError) as err:
            StatusReply.from_wire(bad, "alloc-1")
        assert err.value.code == "receipt_invalid"


def test_a_logs_page_carries_only_lines_after_its_cursor_in_order() -> None:
    """A hostile provider could send the same lines again and again at a cursor that does not move: each
    reply would look like news (so the requester calls again at once, never waiting `min_poll_s`) and the
    requester's copy of the log would fill with duplicates. Lines must be in order, after the cursor sent,
    and not past the page's own `next`."""

    def page(*seqs: int, nxt: int) -> dict[str, object]:
        lines = [LogLine(s, "stdout", f"line {s}", 1.0).to_dict() for s in seqs]
        return {"lines": lines, "next": nxt, "dropped": 0, "done": False}

    assert [x.seq for x in LogsPage.from_wire(page(3, 4, nxt=4), after=2).lines] == [3, 4]
    for bad in (page(2, nxt=2), page(1, 2, nxt=5), page(4, 3, nxt=4), page(3, 3, nxt=4), page(3, 6, nxt=5)):
        with pytest.raises(AgoraError) as err:
            LogsPage.from_wire(bad, after=2)
        assert err.value.code == "receipt_invalid"


def test_terminal_states_are_the_providers() -> None:
    from agora.compute.allocation import STATES, TERMINAL

    assert ALLOC_TERMINAL == TERMINAL and set(STATES) >= ALLOC_TERMINAL


def test_a_logs_page_is_checked_and_its_cursor_never_goes_back() -> None:
    page = LogsPage([LogLine(3, "stdout", "hi", 1.5)], 3, 2, False)
    assert LogsPage.from_wire(decode(encode(page.to_dict())), after=2) == page
    with pytest.raises(AgoraError) as err:
        LogsPage.from_wire(page.to_dict(), after=4)  # a provider moving the cursor back would loop a reader
    assert err.value.code == "receipt_invalid"
    for bad in (
        {"lines": "x"},
        {"lines": [{"seq": "1", "stream": "s", "line": "l"}]},
        {"lines": [{"seq": 1, "stream": "s", "line": "l", "ts": "now"}]},
        {"lines": [], "next": 0, "dropped": -1},
    ):
        with pytest.raises(AgoraError):
            LogsPage.from_wire(bad)
    assert LogsPage.gone(5) == LogsPage([], 5, 0, True, True)


def test_a_watch_reply_carries_both_and_checks_both() -> None:
    reply = WatchReply(StatusReply.of_record(_status(state="running", receipt=None)), LogsPage([], 0, 0, False))
    back = WatchReply.from_wire(decode(encode(reply.to_wire())), "alloc-1", 0)
    assert back == reply
    with pytest.raises(AgoraError):
        WatchReply.from_wire({"status": _status(), "logs": None}, "alloc-1", 0)
    with pytest.raises(AgoraError):
        WatchReply.from_wire([], "alloc-1", 0)
