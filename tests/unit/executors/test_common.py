"""The shared executor helpers: capture bound, line splitting, log fan-out, disk accounting."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from agora.errors import AgoraError
from agora.executors._common import (
    MAX_LINE,
    CaptureBuffer,
    DiskWatcher,
    LogFanout,
    StreamSink,
    dir_usage,
    error_code_for,
    validate_work_dir,
)
from agora.executors.interfaces import ExecRequest, LogLine


async def collect(fanout: LogFanout, limit: int = 100_000) -> list[LogLine]:
    out: list[LogLine] = []
    async for line in fanout.subscribe():
        out.append(line)
        assert len(out) <= limit
    return out


def test_capture_keeps_the_tail() -> None:
    buf = CaptureBuffer(limit=10)
    buf.write(b"0123456")
    buf.write(b"789abc")
    assert buf.getvalue() == b"3456789abc"
    assert buf.total == 13 and buf.truncated
    buf.write(b"x" * 25)
    assert buf.getvalue() == b"x" * 10


def test_capture_not_truncated_below_limit() -> None:
    buf = CaptureBuffer(limit=10)
    buf.write(b"abc")
    assert buf.getvalue() == b"abc" and not buf.truncated


async def test_sink_splits_lines_and_flushes_partial_on_close() -> None:
    fan = LogFanout()
    sink = StreamSink("stdout", fan)
    sink.feed(b"hel")
    sink.feed(b"lo\r\nwor")
    sink.feed(b"ld\n\nlast")
    sink.close()
    fan.close()
    lines = await collect(fan)
    assert [(x.stream, x.line) for x in lines] == [
        ("stdout", "hello"),
        ("stdout", "world"),
        ("stdout", ""),
        ("stdout", "last"),
    ]
    assert sink.capture.getvalue() == b"hello\r\nworld\n\nlast"


async def test_sink_splits_overlong_lines_and_replaces_bad_utf8() -> None:
    fan = LogFanout()
    sink = StreamSink("stderr", fan)
    sink.feed(b"a" * (MAX_LINE * 2 + 5) + b"\n\xff\n")
    fan.close()
    lines = [x.line for x in await collect(fan)]
    assert [len(x) for x in lines[:3]] == [MAX_LINE, MAX_LINE, 5]
    assert lines[3] == "\ufffd"


async def test_fanout_live_from_another_thread_and_late_subscriber_gets_history() -> None:
    fan = LogFanout()
    early = asyncio.ensure_future(collect(fan))
    await asyncio.sleep(0)  # let the early subscriber register before lines arrive

    def produce() -> None:
        for i in range(200):
            fan.publish(LogLine("stdout", str(i), 0.0))
        fan.close()

    t = threading.Thread(target=produce)
    t.start()
    got = await asyncio.wait_for(early, 10)
    t.join()
    assert [x.line for x in got] == [str(i) for i in range(200)]
    late = await asyncio.wait_for(collect(fan), 10)
    assert [x.line for x in late] == [str(i) for i in range(200)]
    fan.publish(LogLine("stdout", "after close", 0.0))  # ignored, never raises
    assert len(await collect(fan)) == 200


async def test_fanout_tells_a_slow_reader_what_it_missed() -> None:
    fan = LogFanout(history=5)
    for i in range(12):
        fan.publish(LogLine("stdout", str(i), 0.0))
    fan.close()
    got = [x.line for x in await collect(fan)]
    assert got[0] == "[agora: 7 log lines dropped, reader too slow]"
    assert got[1:] == ["7", "8", "9", "10", "11"]


async def test_fanout_iterator_waits_for_lines() -> None:
    fan = LogFanout()
    it = fan.subscribe().__aiter__()
    nxt = asyncio.ensure_future(it.__anext__())
    for _ in range(5):  # give the iterator every chance to (wrongly) finish
        await asyncio.sleep(0)
    assert not nxt.done()
    fan.publish(LogLine("stdout", "x", 0.0))
    assert (await asyncio.wait_for(nxt, 5)).line == "x"
    fan.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(it.__anext__(), 5)


def test_dir_usage_counts_sparse_hardlinks_and_not_symlink_targets(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a").write_bytes(b"x" * 10_000)
    with open(tmp_path / "sparse", "wb") as f:
        f.truncate(5_000_000)
    os.link(tmp_path / "sub" / "a", tmp_path / "hard")
    big = tmp_path.parent / f"{tmp_path.name}-outside"
    big.write_bytes(b"y" * 3_000_000)
    os.symlink(big, tmp_path / "link")
    usage = dir_usage(tmp_path)
    assert 5_010_000 <= usage < 5_100_000


def test_dir_usage_of_missing_dir_is_zero(tmp_path: Path) -> None:
    assert dir_usage(tmp_path / "nope") == 0


def test_disk_watcher_fires_once_when_over_limit(tmp_path: Path) -> None:
    fired: list[int] = []
    done = threading.Event()

    def on_exceed(usage: int) -> None:
        fired.append(usage)
        done.set()

    w = DiskWatcher(tmp_path, 100_000, on_exceed, min_interval=0.01).start()
    try:
        (tmp_path / "small").write_bytes(b"x" * 1000)
        assert not w.check()
        (tmp_path / "big").write_bytes(b"x" * 200_000)
        assert done.wait(10)
        assert w.check() and w.exceeded
        assert len(fired) == 1 and fired[0] > 100_000
    finally:
        w.stop()
    assert not w.running
    w.stop()  # idempotent


def test_error_codes_for_reasons() -> None:
    assert error_code_for("exited", 0) is None
    assert error_code_for("exited", 3) == "task_failed"
    assert error_code_for("timeout", None) == "task_timeout"
    assert error_code_for("oom", None) == "task_oom"
    assert error_code_for("disk_limit", None) == "task_disk_limit"
    assert error_code_for("cancelled", None) == "task_cancelled"
    assert error_code_for("trap", None) == "module_trap"


def test_validate_work_dir(tmp_path: Path) -> None:
    req = ExecRequest(task_id="t", engine="wasm", work_dir=tmp_path)
    with pytest.raises(AgoraError) as e:
        validate_work_dir(req)
    assert e.value.code == "invalid_argument" and "inputs" in e.value.message
    (tmp_path / "inputs").mkdir()
    (tmp_path / "outputs").write_text("not a dir")
    with pytest.raises(AgoraError) as e:
        validate_work_dir(req)
    assert "outputs" in e.value.message
    (tmp_path / "outputs").unlink()
    (tmp_path / "outputs").mkdir()
    validate_work_dir(req)
