"""The runner conformance suite: every runner (mock, http, builtin) passes the same checks.

A test module provides a fixture `conf` (a `Conformance`: a started runner, a chat model, an embeddings model
or None, whether the output is known in advance) and `from .runner_conformance import *` style-imports
the tests below.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from agora.errors import AgoraError
from agora.inference.runner import Delta, Runner, RunRequest, RunResult


@dataclass
class Conformance:
    runner: Runner
    chat_model: str
    embed_model: str | None
    completion: bool = True


def chat(model: str, text: str = "Say hello in one word.", max_tokens: int = 8) -> RunRequest:
    return RunRequest("chat", model, messages=({"role": "user", "content": text},), max_tokens=max_tokens)


async def test_models_lists_what_it_serves(conf: Conformance) -> None:
    models = await conf.runner.models()
    assert conf.chat_model in models
    if conf.embed_model is not None:
        assert conf.embed_model in models


async def test_chat_counts_its_own_tokens_and_is_deterministic(conf: Conformance) -> None:
    a = await conf.runner.run(chat(conf.chat_model))
    b = await conf.runner.run(chat(conf.chat_model))
    assert a.text and a.text == b.text  # temperature 0, fixed seed
    assert a.tokens_in > 0 and 0 < a.tokens_out <= 8
    assert (a.tokens_in, a.tokens_out) == (b.tokens_in, b.tokens_out)
    assert a.duration_s >= a.ttft_s >= 0


async def test_stream_gives_the_same_text_and_usage_as_run(conf: Conformance) -> None:
    req = chat(conf.chat_model)
    whole = await conf.runner.run(req)
    deltas: list[str] = []
    final: RunResult | None = None
    async for ev in conf.runner.stream(req):
        if isinstance(ev, Delta):
            assert final is None
            deltas.append(ev.text)
        else:
            final = ev
    assert final is not None, "a complete stream ends with the usage"
    assert "".join(deltas) == final.text == whole.text
    assert (final.tokens_in, final.tokens_out) == (whole.tokens_in, whole.tokens_out)


async def test_completion(conf: Conformance) -> None:
    if not conf.completion:
        pytest.skip("this runner serves chat only")
    res = await conf.runner.run(RunRequest("completion", conf.chat_model, prompt="Once upon a time", max_tokens=4))
    assert res.text and 0 < res.tokens_out <= 4


async def test_embeddings_one_vector_per_input(conf: Conformance) -> None:
    if conf.embed_model is None:
        pytest.skip("no embeddings model")
    req = RunRequest("embeddings", conf.embed_model, inputs=("first text", "second text"))
    res = await conf.runner.run(req)
    assert len(res.embeddings) == 2 and len(res.embeddings[0]) == len(res.embeddings[1]) > 0
    assert res.embeddings[0] != res.embeddings[1]
    assert res.tokens_in > 0
    again = await conf.runner.run(req)
    assert again.output_hash == res.output_hash


async def test_unknown_model_is_model_not_found(conf: Conformance) -> None:
    with pytest.raises(AgoraError) as ei:
        await conf.runner.run(chat("no-such-model-anywhere"))
    assert ei.value.code == "model_not_found"


__all__ = [
    "Conformance",
    "chat",
    "test_chat_counts_its_own_tokens_and_is_deterministic",
    "test_completion",
    "test_embeddings_one_vector_per_input",
    "test_models_lists_what_it_serves",
    "test_stream_gives_the_same_text_and_usage_as_run",
    "test_unknown_model_is_model_not_found",
]
