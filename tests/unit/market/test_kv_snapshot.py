"""Where a KV snapshot ends is the hub's word: a message with nothing pending after it, or a consumer info
with nothing pending whose delivered count is what was read. A scripted subscription plays the hub."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import nats.errors
import pytest
from nats.aio.msg import Msg
from nats.js.kv import KV_DEL, KV_MARKER_REASON, KV_OP

from agora.errors import AgoraError
from agora.market import index_nats
from agora.market.index_nats import kv_snapshot

PRE = "$KV.b."


def msg(key: str, value: bytes | None, *, cseq: int, pending: int, consumer: str = "c1", **headers: str) -> Msg:
    if value is None and not headers:
        headers = {KV_OP: KV_DEL}
    reply = f"$JS.ACK.KV_b.{consumer}.1.{cseq + 10}.{cseq}.1700000000000000000.{pending}"
    return Msg(None, subject=PRE + key, reply=reply, data=value or b"", headers=headers or None)  # type: ignore[arg-type]


def info(delivered: int, pending: int, name: str = "c1") -> Any:
    return SimpleNamespace(name=name, delivered=SimpleNamespace(consumer_seq=delivered), num_pending=pending)


@dataclass
class Script:
    """What the hub does: messages it delivers, one consumer info per ask (the last one repeats), and
    messages that arrive only after a given ask (`after_info[n]`: delivered once info n was answered)."""

    messages: list[Msg] = field(default_factory=list)
    infos: list[Any] = field(default_factory=list)
    after_info: dict[int, list[Msg]] = field(default_factory=dict)
    asked: int = 0
    read: int = 0
    unsubscribed: bool = False
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def subscribe(self, subject: str, **kw: Any) -> Script:
        assert subject == PRE + ">" and kw["ordered_consumer"] and kw["stream"] == "KV_b"
        return self

    async def consumer_info(self) -> Any:
        await asyncio.sleep(0)
        got = self.infos[min(self.asked, len(self.infos) - 1)]
        self.messages.extend(self.after_info.pop(self.asked, []))
        self._arrived.set()
        self.asked += 1
        return got

    async def next_msg(self, timeout: float) -> Msg:
        if not self.messages:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout)
            except TimeoutError:
                raise nats.errors.TimeoutError from None
        self.read += 1
        return self.messages.pop(0)

    async def unsubscribe(self) -> None:
        self.unsubscribed = True

    def kv(self) -> Any:
        return SimpleNamespace(_js=self, _stream="KV_b", _pre=PRE)


@pytest.fixture(autouse=True)
def quick_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_nats, "_RECHECK_S", 0.01)


async def test_an_empty_bucket_ends_at_the_first_info() -> None:
    hub = Script(infos=[info(0, 0)])
    assert await kv_snapshot(hub.kv(), what="b") == {}
    assert hub.read == 0 and hub.unsubscribed


async def test_entries_sent_before_the_info_but_read_after_it_are_in_the_snapshot() -> None:
    """The CI flake: the info says nothing is pending (all sent), the client has read nothing yet."""
    hub = Script(
        infos=[info(2, 0)], after_info={0: [msg("a", b"1", cseq=1, pending=1), msg("b", b"2", cseq=2, pending=0)]}
    )
    assert await kv_snapshot(hub.kv(), what="b") == {"a": b"1", "b": b"2"}


async def test_it_ends_at_the_message_with_nothing_pending_after_it() -> None:
    late = msg("c", b"3", cseq=3, pending=0)
    hub = Script(
        messages=[msg("a", b"1", cseq=1, pending=1), msg("b", b"2", cseq=2, pending=0), late],
        infos=[info(1, 1)],
    )
    assert await kv_snapshot(hub.kv(), what="b") == {"a": b"1", "b": b"2"}  # c was written after that moment
    assert hub.messages == [late] and hub.asked == 1


async def test_deleted_and_expired_keys_are_left_out() -> None:
    hub = Script(
        messages=[
            msg("a", b"1", cseq=1, pending=3),
            msg("b", None, cseq=2, pending=2),
            msg("c", b"", cseq=3, pending=1, **{KV_MARKER_REASON: "MaxAge"}),
            msg("a", None, cseq=4, pending=0),
        ],
        infos=[info(4, 0)],
    )
    assert await kv_snapshot(hub.kv(), what="b") == {}


async def test_a_pending_entry_that_expired_before_delivery_ends_it_at_the_next_info() -> None:
    hub = Script(messages=[msg("a", b"1", cseq=1, pending=1)], infos=[info(1, 1), info(1, 0)])
    assert await kv_snapshot(hub.kv(), what="b") == {"a": b"1"}
    assert hub.asked == 2


async def test_a_reset_consumer_counts_its_own_deliveries() -> None:
    """nats-py replaces an ordered consumer that saw a gap; the new one's sequence starts again at 1, so
    "delivered 1" of the new consumer is not the message read from the old one."""
    hub = Script(
        messages=[msg("a", b"1", cseq=1, pending=1)],
        infos=[info(1, 1), info(1, 0, name="c2")],
        after_info={1: [msg("b", b"2", cseq=1, pending=0, consumer="c2")]},
    )
    assert await kv_snapshot(hub.kv(), what="b") == {"a": b"1", "b": b"2"}


async def test_a_hub_that_never_delivers_what_it_says_it_sent_is_unreachable_within_the_limit() -> None:
    hub = Script(infos=[info(1, 0)])
    with pytest.raises(AgoraError) as raised:
        await kv_snapshot(hub.kv(), what="market bucket b", limit_s=0.1)
    assert raised.value.code == "hub_unreachable" and raised.value.message.startswith("market bucket b:")
    assert hub.unsubscribed


async def test_a_refusing_hub_is_permission_denied() -> None:
    hub = Script(infos=[info(0, 0)])

    async def refuse() -> Any:
        raise nats.errors.Error('nats: permissions violation for subscription to "$KV.b.>"')

    hub.consumer_info = refuse  # type: ignore[method-assign]
    with pytest.raises(AgoraError) as raised:
        await kv_snapshot(hub.kv(), what="b")
    assert raised.value.code == "hub_permission_denied"
