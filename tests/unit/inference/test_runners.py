"""Conformance of the mock runner and of the http runner (against an OpenAI-compatible server in process),
plus the failures the http runner maps for routing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from agora.errors import AgoraError
from agora.inference.runner import Delta, RunRequest, RunResult
from agora.inference.runner_http import HttpRunner
from agora.inference.runner_mock import MockRunner, expected_output
from tests.unit.inference.fake_openai import fake_openai_app
from tests.unit.inference.runner_conformance import *  # noqa: F403
from tests.unit.inference.runner_conformance import Conformance, chat


@pytest.fixture(params=["mock", "http"])
async def conf(request: pytest.FixtureRequest) -> AsyncIterator[Conformance]:
    mock = MockRunner()
    if request.param == "mock":
        yield Conformance(mock, "mock-chat", "mock-embed")
        return
    runner = HttpRunner("http://fake", transport=httpx.ASGITransport(app=fake_openai_app(mock)))
    await runner.start()
    try:
        yield Conformance(runner, "mock-chat", "mock-embed")
    finally:
        await runner.close()


async def test_mock_output_is_a_pure_function_of_the_request() -> None:
    req = chat("mock-chat", "one two three")
    res = await MockRunner().run(req)
    exp = expected_output(req)
    assert (res.text, res.tokens_in, res.tokens_out) == (exp.text, 3, 6)
    assert res.text != (await MockRunner().run(chat("mock-chat", "other words"))).text


@pytest.mark.parametrize(
    ("fail", "code"),
    [("rate_limit", "inference_rate_limited"), ("error", "runner_failed"), ("not_found", "model_not_found")],
)
async def test_http_runner_maps_server_failures_to_routing_codes(fail: str, code: str) -> None:
    runner = HttpRunner("http://fake", transport=httpx.ASGITransport(app=fake_openai_app(MockRunner(fail=fail))))
    with pytest.raises(AgoraError) as ei:
        await runner.run(chat("mock-chat"))
    assert ei.value.code == code
    await runner.close()


async def test_http_runner_refuses_garbage() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>not json</html>")

    runner = HttpRunner("http://fake", transport=httpx.MockTransport(handler))
    with pytest.raises(AgoraError) as ei:
        await runner.run(chat("mock-chat"))
    assert ei.value.code == "runner_failed"
    await runner.close()


async def test_http_runner_nothing_listening_is_runner_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    runner = HttpRunner("http://fake", transport=httpx.MockTransport(handler))
    with pytest.raises(AgoraError) as ei:
        await runner.run(chat("mock-chat"))
    assert ei.value.code == "runner_unavailable"
    await runner.close()


async def test_http_stream_asks_for_usage_and_without_it_ends_partial() -> None:
    seen: list[dict[str, object]] = []
    app = fake_openai_app(MockRunner(), usage_in_stream=False)
    inner = httpx.ASGITransport(app=app)

    class Spy(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            import json

            if request.method == "POST":
                seen.append(json.loads(request.content))
            return await inner.handle_async_request(request)

    runner = HttpRunner("http://fake", transport=Spy())
    events = [ev async for ev in runner.stream(chat("mock-chat"))]
    await runner.close()
    assert seen[0]["stream_options"] == {"include_usage": True}
    assert events and all(isinstance(e, Delta) for e in events)  # no usage: no RunResult, the caller meters


async def test_mock_stream_that_dies_ends_without_usage() -> None:
    events = [ev async for ev in MockRunner(fail="die").stream(chat("mock-chat"))]
    assert len(events) == 1 and isinstance(events[0], Delta)
    assert not any(isinstance(e, RunResult) for e in events)


def test_run_request_rejects_bad_kind_and_max_tokens() -> None:
    with pytest.raises(AgoraError):
        RunRequest("image", "m")
    with pytest.raises(AgoraError):
        RunRequest("chat", "m", max_tokens=0)
