from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from agora.clock import ManualClock
from agora.errors import AgoraError
from agora.store import MemoryStore
from agora.telemetry import PEER_JOINED, REDACTED, EventRecorder, configure_logging


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buffer = io.StringIO()
    configure_logging("INFO", stream=buffer)
    try:
        yield buffer
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


async def test_records_in_the_store_and_in_the_log(stream: io.StringIO) -> None:
    clock = ManualClock()
    store = MemoryStore(clock)
    recorder = EventRecorder(store)
    event = await recorder.record(PEER_JOINED, "did:key:z6Mkpeer", addr="127.0.0.1:4222", kind="hub", subject="x")
    assert event.kind == "peer.joined" and event.subject == "did:key:z6Mkpeer" and event.ts == clock.now()
    assert event.data == {"addr": "127.0.0.1:4222", "kind": "hub", "subject": "x"}
    assert await store.events() == [event]
    (line,) = lines(stream)
    assert line["msg"] == "event peer.joined" and line["logger"] == "agora.events"
    assert (line["event"], line["subject"], line["seq"]) == ("peer.joined", "did:key:z6Mkpeer", event.seq)
    assert line["data"] == event.data


async def test_secrets_are_redacted_in_store_and_log(stream: io.StringIO) -> None:
    store = MemoryStore(ManualClock())
    await EventRecorder(store).record("node.started", "did:key:me", passphrase="hunter2", seed=b"\x00" * 32, n=1)
    (event,) = await store.events()
    assert event.data == {"passphrase": REDACTED, "seed": REDACTED, "n": 1}
    assert "hunter2" not in stream.getvalue()


@pytest.mark.parametrize(("kind", "subject"), [("started", "s"), ("Node.Started", "s"), ("node.", "s"), ("a.b", "")])
async def test_bad_events_are_refused_and_not_recorded(stream: io.StringIO, kind: str, subject: str) -> None:
    store = MemoryStore(ManualClock())
    with pytest.raises(AgoraError) as err:
        await EventRecorder(store).record(kind, subject)
    assert err.value.code == "invalid_argument"
    assert await store.events() == []
    assert stream.getvalue() == ""


async def test_sink_failure_is_logged_and_raised(stream: io.StringIO) -> None:
    store = MemoryStore(ManualClock())
    await store.close()
    with pytest.raises(AgoraError) as err:
        await EventRecorder(store).record("alloc.state", "a1", to="running")
    assert err.value.code == "store_closed"
    (line,) = lines(stream)
    assert line["level"] == "error" and line["event"] == "alloc.state" and "store_closed" in line["error"]


async def test_without_a_sink_it_only_logs(stream: io.StringIO) -> None:
    assert await EventRecorder(None, logger="agora.sim").record("job.state", "j1", to="queued") is None
    (line,) = lines(stream)
    assert line["logger"] == "agora.sim" and line["data"] == {"to": "queued"} and "seq" not in line
