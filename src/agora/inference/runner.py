"""The runner interface: what a provider's model backend does, whatever it is (mock, http, builtin).

A runner answers one `RunRequest` (chat, completion or embeddings) with a `RunResult` that carries the
runner's OWN token counts, time to first token and duration: the provider signs those in the metering
record, so they must come from the model's tokenizer, not from a guess of ours. `stream` yields `Delta`s
as text arrives and ends with the `RunResult` (usage included); a stream that ends without one stopped
mid-way (the caller meters what was delivered).

Errors are `AgoraError`s with the codes routing falls back on: `inference_rate_limited` (429),
`runner_failed` (5xx, garbage), `timeout`, `model_not_found`, `runner_unavailable` (nothing answers).

Prompt and output text live only in memory, in these objects: nothing here logs them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from agora.errors import AgoraError
from agora.wire.inference import content_hash
from agora.wire.model_offer import MODEL_KINDS


@dataclass(frozen=True)
class RunRequest:
    """One inference request as a runner sees it (the OpenAI request's content, no routing controls)."""

    kind: str  # chat | completion | embeddings
    model: str
    messages: tuple[Mapping[str, str], ...] = ()  # chat
    prompt: str = ""  # completion
    inputs: tuple[str, ...] = ()  # embeddings
    max_tokens: int = 64
    temperature: float = 0.0
    seed: int = 42

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise AgoraError("invalid_argument", f"kind must be one of {', '.join(MODEL_KINDS)}, got {self.kind!r}")
        if type(self.max_tokens) is not int or not 1 <= self.max_tokens <= 1_000_000:
            raise AgoraError("invalid_argument", "max_tokens must be an integer in [1, 1000000]")

    @property
    def content(self) -> str:
        """The request's content as one canonical string (what `prompt_hash` covers)."""
        body: dict[str, object] = {"kind": self.kind, "model": self.model}
        if self.kind == "chat":
            body["messages"] = [dict(m) for m in self.messages]
        elif self.kind == "completion":
            body["prompt"] = self.prompt
        else:
            body["input"] = list(self.inputs)
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @property
    def prompt_hash(self) -> str:
        return content_hash(self.content)

    def text_size(self) -> int:
        """Characters of content (a cheap bound for the context check before any tokenizer runs)."""
        if self.kind == "chat":
            return sum(len(m.get("content", "")) for m in self.messages)
        return len(self.prompt) if self.kind == "completion" else sum(len(i) for i in self.inputs)


@dataclass(frozen=True)
class RunResult:
    """What a request produced, with the runner's own counts."""

    text: str = ""
    embeddings: tuple[tuple[float, ...], ...] = ()
    tokens_in: int = 0
    tokens_out: int = 0
    ttft_s: float = 0.0
    duration_s: float = 0.0
    finish_reason: str = "stop"
    partial: bool = False  # the stream stopped before the end (only what was delivered is counted)

    @property
    def output(self) -> str:
        """The output as one canonical string (what `output_hash` covers)."""
        if self.embeddings:
            return json.dumps([list(e) for e in self.embeddings], separators=(",", ":"))
        return self.text

    @property
    def output_hash(self) -> str:
        return content_hash(self.output)


@dataclass(frozen=True)
class Delta:
    """A piece of streamed text."""

    text: str


StreamEvent = Delta | RunResult


class Runner(Protocol):
    """A model backend. `start` before use, `close` always (the builtin one owns a server)."""

    name: str

    async def start(self) -> None: ...

    async def models(self) -> Sequence[str]:
        """The model ids this runner can serve now."""
        ...

    async def run(self, req: RunRequest) -> RunResult: ...

    def stream(self, req: RunRequest) -> AsyncIterator[StreamEvent]:
        """Deltas, then the RunResult with usage; ends without a RunResult if the backend stopped mid-way."""
        ...

    async def close(self) -> None: ...


@dataclass
class RunnerSpec:
    """How a provider reaches a model's runner: `mock`, `http` (url + upstream model name) or `builtin`."""

    kind: str = "mock"
    url: str | None = None
    upstream_model: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "url": self.url, "upstream_model": self.upstream_model, "options": self.options}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> RunnerSpec:
        kind = data.get("kind", "mock")
        if kind not in ("mock", "http", "builtin"):
            raise AgoraError(
                "model_offer_invalid",
                f"runner must be mock, http or builtin, got {kind!r}",
                details={"field": "runner"},
            )
        url, up, opts = data.get("url"), data.get("upstream_model"), data.get("options") or {}
        if kind == "http" and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
            raise AgoraError(
                "model_offer_invalid", "an http runner needs url: http(s)://host:port", details={"field": "url"}
            )
        if not isinstance(opts, dict):
            raise AgoraError("model_offer_invalid", "runner options must be a map", details={"field": "options"})
        return cls(
            str(kind),
            url if isinstance(url, str) else None,
            up if isinstance(up, str) else None,
            {str(k): str(v) for k, v in opts.items()},
        )


__all__ = ["Delta", "RunRequest", "RunResult", "Runner", "RunnerSpec", "StreamEvent"]
