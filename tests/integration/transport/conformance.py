"""The Transport contract as tests; every implementation runs all of them.

Use: subclass `TransportConformance` and provide a `make_transport` fixture returning
`async (max_message_bytes=...) -> Transport`, started, with a fresh DID, closed at teardown
(see test_conformance.py). Waits are events with a deadline, never fixed sleeps.
Every topic lives under `agora.test.`, so the suite also runs on an allowlisted hub that opens
just that namespace (`TEST_TOPICS`) besides agora's own public topics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.transport import ConnectionState, Transport

DEADLINE = 10.0
TEST_TOPICS = ("agora.test.>",)
MakeTransport = Callable[..., Awaitable[Transport]]


def fresh_did() -> str:
    return Keypair.generate().did


async def echo(data: bytes) -> bytes:
    return b"echo:" + data


class Collector:
    """Gathers delivered messages and lets a test wait for a count with a deadline."""

    def __init__(self) -> None:
        self.items: list[bytes] = []
        self._changed = asyncio.Event()

    async def __call__(self, data: bytes) -> None:
        self.items.append(data)
        self._changed.set()

    async def wait_for(self, count: int) -> list[bytes]:
        async with asyncio.timeout(DEADLINE):
            while len(self.items) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.items


async def _raises(code: str, aw: Awaitable[object]) -> AgoraError:
    with pytest.raises(AgoraError) as info:
        await aw
    assert info.value.code == code, f"expected {code}, got {info.value.code}: {info.value}"
    return info.value


class TransportConformance:
    # -- direct messages ---------------------------------------------------------------------

    async def test_send_reaches_the_served_inbox(self, make_transport: MakeTransport) -> None:
        a, b = await make_transport(), await make_transport()
        got = Collector()

        async def inbox(data: bytes) -> None:
            await got(data)

        await b.serve(inbox)
        await a.send(b.local_did, b"one")
        await a.send(b.local_did, b"\x00\xff binary")
        assert sorted(await got.wait_for(2)) == sorted([b"one", b"\x00\xff binary"])

    async def test_send_to_nobody_is_fire_and_forget(self, make_transport: MakeTransport) -> None:
        a = await make_transport()
        await a.send(fresh_did(), b"lost")  # no listener: no error, nothing to wait for

    async def test_request_reply(self, make_transport: MakeTransport) -> None:
        a, b = await make_transport(), await make_transport()
        await b.serve(echo)
        assert await a.request(b.local_did, b"ping", timeout=DEADLINE) == b"echo:ping"
        assert await a.request(b.local_did, b"", timeout=DEADLINE) == b"echo:"

    async def test_serve_replaces_the_handler(self, make_transport: MakeTransport) -> None:
        a, b = await make_transport(), await make_transport()
        await b.serve(echo)

        async def other(data: bytes) -> bytes:
            return b"other:" + data

        await b.serve(other)
        assert await a.request(b.local_did, b"x", timeout=DEADLINE) == b"other:x"

    async def test_request_to_unknown_did_is_peer_unreachable(self, make_transport: MakeTransport) -> None:
        a = await make_transport()
        err = await _raises("peer_unreachable", a.request(fresh_did(), b"hello", timeout=DEADLINE))
        assert err.retryable

    async def test_request_to_node_that_does_not_serve_is_peer_unreachable(self, make_transport: MakeTransport) -> None:
        a, b = await make_transport(), await make_transport()
        await _raises("peer_unreachable", a.request(b.local_did, b"hello", timeout=DEADLINE))

    async def test_no_reply_is_timeout(self, make_transport: MakeTransport) -> None:
        a, b = await make_transport(), await make_transport()
        seen = Collector()

        async def silent(data: bytes) -> None:
            await seen(data)
            return None

        await b.serve(silent)
        await _raises("timeout", a.request(b.local_did, b"anyone?", timeout=0.3))
        assert await seen.wait_for(1) == [b"anyone?"]

    async def test_hanging_handler_is_timeout(self, make_transport: MakeTransport) -> None:
        a, b = await make_transport(), await make_transport()
        release = asyncio.Event()

        async def stuck(data: bytes) -> bytes:
            await release.wait()
            return data

        await b.serve(stuck)
        try:
            await _raises("timeout", a.request(b.local_did, b"x", timeout=0.2))
        finally:
            release.set()

    async def test_failing_handler_is_handler_failed(self, make_transport: MakeTransport) -> None:
        a, b = await make_transport(), await make_transport()

        async def broken(data: bytes) -> bytes:
            raise RuntimeError("boom")

        await b.serve(broken)
        await _raises("handler_failed", a.request(b.local_did, b"x", timeout=DEADLINE))
        await b.serve(echo)  # the node survives its handler's failure
        assert await a.request(b.local_did, b"y", timeout=DEADLINE) == b"echo:y"

    async def test_bad_arguments(self, make_transport: MakeTransport) -> None:
        a = await make_transport()
        for did in ("did:key:z6Mk.a", "did:key:*", "did:key:>", "did:key:a b", "", "node1", "did:key:z\n"):
            await _raises("did_invalid", a.send(did, b"x"))
            await _raises("did_invalid", a.request(did, b"x", timeout=1.0))
        await _raises("invalid_argument", a.request(fresh_did(), b"x", timeout=0))
        await _raises("invalid_argument", a.send(fresh_did(), "text"))  # type: ignore[arg-type]

    # -- size limits -------------------------------------------------------------------------

    async def test_size_limit_on_the_sending_side(self, make_transport: MakeTransport) -> None:
        a, b = await make_transport(max_message_bytes=1000), await make_transport(max_message_bytes=1000)
        await b.serve(echo)
        big = b"x" * 1001
        err = await _raises("message_too_large", a.send(b.local_did, big))
        assert err.details == {"size": 1001, "limit": 1000}
        await _raises("message_too_large", a.request(b.local_did, big, timeout=DEADLINE))
        await _raises("message_too_large", a.publish("agora.test.size", big))
        exact = b"x" * (1000 - len(b"echo:"))
        assert await a.request(b.local_did, exact, timeout=DEADLINE) == b"echo:" + exact

    async def test_size_limit_on_the_receiving_side(self, make_transport: MakeTransport) -> None:
        a, b = await make_transport(max_message_bytes=10_000), await make_transport(max_message_bytes=1000)
        handled = Collector()

        async def short_reply(data: bytes) -> bytes:
            await handled(data)
            return b"ok"

        await b.serve(short_reply)
        await _raises("message_too_large", a.request(b.local_did, b"x" * 2000, timeout=DEADLINE))
        assert await a.request(b.local_did, b"x" * 1000, timeout=DEADLINE) == b"ok"
        assert [len(m) for m in handled.items] == [1000], "an oversized request reached the handler"

        got = Collector()
        await b.subscribe("agora.test.recv", got)
        await a.publish("agora.test.recv", b"y" * 2000)  # over b's limit: b drops it
        await a.publish("agora.test.recv", b"small")
        assert await got.wait_for(1) == [b"small"]

    async def test_reply_size_limits(self, make_transport: MakeTransport) -> None:
        small, large = await make_transport(max_message_bytes=1000), await make_transport(max_message_bytes=10_000)

        async def blow_up(data: bytes) -> bytes:
            return data * 100

        await small.serve(blow_up)
        await large.serve(blow_up)
        # the reply is over the replier's own limit
        await _raises("message_too_large", large.request(small.local_did, b"0123456789" * 2, timeout=DEADLINE))
        # the reply fits the replier but is over the requester's limit
        await _raises("message_too_large", small.request(large.local_did, b"0123456789" * 2, timeout=DEADLINE))

    # -- topics ------------------------------------------------------------------------------

    async def test_publish_subscribe_unsubscribe(self, make_transport: MakeTransport) -> None:
        pub, sub1, sub2 = await make_transport(), await make_transport(), await make_transport()
        first, second, wild, control = Collector(), Collector(), Collector(), Collector()
        s1 = await sub1.subscribe("agora.test.announce", first)
        await sub2.subscribe("agora.test.announce", second)
        await sub2.subscribe("agora.test.*", wild)
        await sub1.subscribe("agora.test.>", control)

        await pub.publish("agora.test.announce", b"hello")
        assert await first.wait_for(1) == [b"hello"]
        assert await second.wait_for(1) == [b"hello"]
        assert await wild.wait_for(1) == [b"hello"]

        await s1.unsubscribe()
        await s1.unsubscribe()  # idempotent
        await pub.publish("agora.test.announce", b"again")
        await pub.publish("agora.test.other.deep", b"deep")
        await pub.publish("agora.test.end", b"end")  # a marker: per-publisher order is kept
        assert await control.wait_for(4) == [b"hello", b"again", b"deep", b"end"]
        assert await second.wait_for(2) == [b"hello", b"again"]
        assert first.items == [b"hello"], "an unsubscribed handler still got messages"
        assert await wild.wait_for(3) == [b"hello", b"again", b"end"], "'*' must match exactly one token"

    async def test_topic_handlers_run_in_order(self, make_transport: MakeTransport) -> None:
        pub, sub = await make_transport(), await make_transport()
        got = Collector()
        await sub.subscribe("agora.test.order", got)
        for i in range(50):
            await pub.publish("agora.test.order", str(i).encode())
        assert await got.wait_for(50) == [str(i).encode() for i in range(50)]

    async def test_bad_topics(self, make_transport: MakeTransport) -> None:
        a = await make_transport()
        for topic in ("", "a..b", ".a", "a.", "a b", "a.*", "a.>", "agora.node.x", "_INBOX.x", "$SYS.x", "a\r\nb"):
            await _raises("topic_invalid", a.publish(topic, b"x"))
        for pattern in ("a.>.b", "a b", "agora.node.*", "a..b"):
            await _raises("topic_invalid", a.subscribe(pattern, Collector()))

    async def test_topic_handler_failure_does_not_stop_the_subscription(self, make_transport: MakeTransport) -> None:
        pub, sub = await make_transport(), await make_transport()
        got = Collector()

        async def picky(data: bytes) -> None:
            if data == b"bad":
                raise ValueError("bad message")
            await got(data)

        await sub.subscribe("agora.test.picky", picky)
        await pub.publish("agora.test.picky", b"bad")
        await pub.publish("agora.test.picky", b"good")
        assert await got.wait_for(1) == [b"good"]

    # -- concurrency -------------------------------------------------------------------------

    async def test_many_concurrent_requests_keep_correlation(self, make_transport: MakeTransport) -> None:
        server, c1, c2 = await make_transport(), await make_transport(), await make_transport()

        async def slow_echo(data: bytes) -> bytes:
            await asyncio.sleep(0)  # interleave handlers
            return b"re:" + data

        await server.serve(slow_echo)
        calls = [(c, f"{i}:{c.local_did[-6:]}".encode()) for i in range(100) for c in (c1, c2)]
        replies = await asyncio.gather(*(c.request(server.local_did, msg, timeout=DEADLINE) for c, msg in calls))
        assert replies == [b"re:" + msg for _, msg in calls]

    async def test_a_handler_may_call_back_into_its_own_node(self, make_transport: MakeTransport) -> None:
        caller, a, b = await make_transport(), await make_transport(), await make_transport()

        async def a_inbox(data: bytes) -> bytes:
            if data == b"start":
                return b"a<-" + await a.request(b.local_did, b"go", timeout=DEADLINE)
            return b"pong"

        async def b_inbox(data: bytes) -> bytes:
            return b"b<-" + await b.request(a.local_did, b"ping", timeout=DEADLINE)

        await a.serve(a_inbox)
        await b.serve(b_inbox)
        assert await caller.request(a.local_did, b"start", timeout=DEADLINE) == b"a<-b<-pong"

    # -- lifecycle ---------------------------------------------------------------------------

    async def test_close_is_clean(self, make_transport: MakeTransport) -> None:
        a, b = await make_transport(), await make_transport()
        states: list[ConnectionState] = []
        stop_watching = b.on_state_change(states.append)
        assert b.state is ConnectionState.CONNECTED
        await b.serve(echo)
        await b.subscribe("agora.test.closing", Collector())
        assert await a.request(b.local_did, b"x", timeout=DEADLINE) == b"echo:x"

        await b.close()
        await b.close()  # idempotent
        assert states == [ConnectionState.CLOSED]
        assert b.state is ConnectionState.CLOSED
        stop_watching()
        await _raises("peer_unreachable", a.request(b.local_did, b"x", timeout=DEADLINE))
        await _raises("transport_closed", b.send(a.local_did, b"x"))
        await _raises("transport_closed", b.request(a.local_did, b"x", timeout=1.0))
        await _raises("transport_closed", b.publish("agora.test.closing", b"x"))
        await _raises("transport_closed", b.subscribe("agora.test.closing", Collector()))
        await _raises("transport_closed", b.serve(echo))

    async def test_close_leaves_no_tasks_behind(self, make_transport: MakeTransport) -> None:
        before = asyncio.all_tasks()
        a, b = await make_transport(), await make_transport()
        await b.serve(echo)
        await a.subscribe("agora.test.tasks", Collector())
        await a.request(b.local_did, b"x", timeout=DEADLINE)
        await a.close()
        await b.close()
        async with asyncio.timeout(DEADLINE):
            while asyncio.all_tasks() - before - {asyncio.current_task()}:  # noqa: ASYNC110 - no event exists
                await asyncio.sleep(0.01)

    async def test_close_lets_running_handlers_finish(self, make_transport: MakeTransport) -> None:
        a, b = await make_transport(), await make_transport()
        started, finished = asyncio.Event(), asyncio.Event()

        async def slowish(data: bytes) -> None:
            started.set()
            await asyncio.sleep(0.05)
            finished.set()

        await b.serve(slowish)
        await a.send(b.local_did, b"work")
        await asyncio.wait_for(started.wait(), DEADLINE)
        await b.close()
        assert finished.is_set(), "close cut a running handler short"
