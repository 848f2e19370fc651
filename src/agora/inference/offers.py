"""The provider's model book: the models this node serves, with prices and the runner behind each.

Kept in the node's store (collection `inference_models`, one document per model id), so `agora model
add` survives a restart. What the capacity ad publishes is `offers()`: the `ModelOffer`s (model, kind,
context, prices, max concurrency); the runner spec stays here, it is the provider's business. Each change
calls the `on_change` callbacks (the advertiser republishes). Runners are built once per spec and owned
by the book: `close()` closes every one it started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from agora.errors import AgoraError
from agora.inference.runner import Runner, RunnerSpec
from agora.store import Store
from agora.wire.model_offer import MAX_MODELS, ModelOffer

COLLECTION = "inference_models"


@dataclass(frozen=True)
class ModelEntry:
    offer: ModelOffer
    runner: RunnerSpec

    def to_dict(self) -> dict[str, object]:
        return {"offer": self.offer.to_dict(), "runner": self.runner.to_dict()}


def build_runner(spec: RunnerSpec) -> Runner:
    """A runner for a spec (the builtin one starts a model server when started)."""
    if spec.kind == "http":
        from agora.inference.runner_http import HttpRunner

        return HttpRunner(spec.url or "", upstream_model=spec.upstream_model, api_key=spec.options.get("api_key"))
    if spec.kind == "builtin":
        from agora.inference.runner_builtin import BuiltinRunner

        return BuiltinRunner()
    from agora.inference.runner_mock import MockRunner

    return MockRunner(
        models=tuple(spec.options.get("models", "").split(","))
        if spec.options.get("models")
        else ("mock-chat", "mock-embed"),
        fail=spec.options.get("fail"),
        delay_s=float(spec.options.get("delay_s", "0")),
    )


class ModelBook:
    def __init__(self, store: Store, *, runner_factory: Callable[[RunnerSpec], Runner] = build_runner) -> None:
        self._store = store
        self._factory = runner_factory
        self._entries: dict[str, ModelEntry] = {}
        self._runners: dict[str, Runner] = {}  # by model id
        self._shared: dict[str, Runner] = {}  # one runner per distinct spec (the builtin serves two models)
        self._callbacks: list[Callable[[], None]] = []
        self._lock = asyncio.Lock()
        self.inflight: dict[str, int] = {}

    async def load(self) -> None:
        for rec in await self._store.query_records(COLLECTION, limit=MAX_MODELS):
            try:
                self._entries[rec.id] = ModelEntry(
                    ModelOffer.from_dict(rec.doc["offer"]), RunnerSpec.from_dict(rec.doc["runner"])
                )
            except (AgoraError, KeyError, TypeError):
                continue  # a damaged document does not stop the node; `model add` replaces it

    def on_change(self, cb: Callable[[], None]) -> None:
        self._callbacks.append(cb)

    def _changed(self) -> None:
        for cb in self._callbacks:
            cb()

    async def add(self, offer: ModelOffer, runner: RunnerSpec) -> ModelEntry:
        """Serve a model (replaces the entry of the same model id)."""
        if offer.model not in self._entries and len(self._entries) >= MAX_MODELS:
            raise AgoraError("model_offer_invalid", f"at most {MAX_MODELS} models per node", details={"field": "model"})
        entry = ModelEntry(offer, runner)
        await self._store.put(COLLECTION, offer.model, entry.to_dict())
        self._entries[offer.model] = entry
        self._runners.pop(offer.model, None)
        self._changed()
        return entry

    async def remove(self, model: str) -> None:
        if self._entries.pop(model, None) is None:
            raise AgoraError("model_not_found", f"this node does not serve {model!r}")
        await self._store.delete(COLLECTION, model)
        self._runners.pop(model, None)
        self._changed()

    def entries(self) -> list[ModelEntry]:
        return [self._entries[k] for k in sorted(self._entries)]

    def offers(self) -> tuple[ModelOffer, ...]:
        return tuple(e.offer for e in self.entries())

    def get(self, model: str) -> ModelEntry:
        entry = self._entries.get(model)
        if entry is None:
            raise AgoraError("model_not_found", f"this node does not serve {model!r}")
        return entry

    async def runner(self, model: str) -> Runner:
        """The started runner of a model (started on first use, shared by models with the same spec)."""
        entry = self.get(model)
        async with self._lock:
            r = self._runners.get(model)
            if r is None:
                key = repr(sorted(entry.runner.to_dict().items()))
                r = self._shared.get(key)
                if r is None:
                    r = self._factory(entry.runner)
                    await r.start()
                    self._shared[key] = r
                self._runners[model] = r
            return r

    async def close(self) -> None:
        runners, self._shared = list(self._shared.values()), {}
        self._runners.clear()
        for r in runners:
            await r.close()


__all__ = ["COLLECTION", "ModelBook", "ModelEntry", "build_runner"]
