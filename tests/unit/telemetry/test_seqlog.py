import asyncio

import pytest

from agora.telemetry import SeqLog


def test_cursor_reads_and_reports_what_was_dropped() -> None:
    log: SeqLog[str] = SeqLog(3)
    for i in range(5):
        assert log.append(f"l{i}") == i + 1
    page = log.read(after=0)
    assert [s for s, _ in page.items] == [3, 4, 5] and page.dropped == 2 and page.next == 5 and not page.done
    assert log.read(after=4).items == [(5, "l4")] and log.read(after=4).dropped == 0
    assert log.read(after=99).next == 5  # a cursor from the future is clamped
    log.close()
    assert log.read(after=5).done and log.append("late") == 5


def test_limits_by_count_and_size_but_never_returns_nothing() -> None:
    log: SeqLog[str] = SeqLog(10)
    for _ in range(4):
        log.append("x" * 100)
    assert len(log.read(limit=2).items) == 2
    page = log.read(size=len, max_bytes=250)
    assert len(page.items) == 2 and page.next == 2
    assert len(log.read(size=len, max_bytes=10).items) == 1  # one oversized item still comes through


async def test_wait_returns_on_news_or_close_or_timeout() -> None:
    log: SeqLog[int] = SeqLog(4)
    waiter = asyncio.create_task(log.wait(0, 5.0))
    await asyncio.sleep(0)
    log.append(1)
    await asyncio.wait_for(waiter, 1.0)
    closer = asyncio.create_task(log.wait(1, 5.0))
    await asyncio.sleep(0)
    log.close()
    await asyncio.wait_for(closer, 1.0)
    await log.wait(99, 0.01)  # nothing new: returns after the timeout


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SeqLog(0)


def test_a_byte_bound_drops_the_oldest_and_counts_them() -> None:
    log: SeqLog[str] = SeqLog(100, max_bytes=250, size=len)
    for i in range(5):
        log.append(str(i) * 100)
    assert log.bytes == 200 and [s for s, _ in log.read().items] == [4, 5]
    assert log.read(after=0).dropped == 3
    log.append("x" * 1000)  # one item over the bound is still kept, alone
    assert [s for s, _ in log.read().items] == [6] and log.bytes == 1000
    small: SeqLog[str] = SeqLog(2, max_bytes=10_000, size=len)
    for word in ("aa", "bbb", "cccc"):
        small.append(word)
    assert small.bytes == 7  # the count bound dropped "aa" and its bytes with it
    with pytest.raises(ValueError):
        SeqLog(3, max_bytes=10)


async def test_wait_does_not_return_before_there_is_news() -> None:
    """A long-poll that returns at once would turn every follower into a busy loop."""
    log: SeqLog[int] = SeqLog(4)
    log.append(1)
    waiter = asyncio.create_task(log.wait(1, 30.0))
    for _ in range(20):  # many turns of the loop, no news: the waiter must still be waiting
        await asyncio.sleep(0)
    assert not waiter.done()
    log.append(2)
    await asyncio.wait_for(waiter, 5.0)
    closer = asyncio.create_task(log.wait(2, 30.0))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not closer.done()
    log.close()
    await asyncio.wait_for(closer, 5.0)
