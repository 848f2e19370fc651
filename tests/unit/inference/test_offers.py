"""The model book: entries survive a reload, changes notify (the ad republishes), runners are shared per spec
and closed with the book, a bad runner spec is refused."""

from __future__ import annotations

import pytest

from agora.clock import ManualClock
from agora.errors import AgoraError
from agora.inference.offers import ModelBook
from agora.inference.runner import Runner, RunnerSpec
from agora.inference.runner_mock import MockRunner
from agora.store import MemoryStore
from agora.wire.model_offer import ModelOffer


class Counting(MockRunner):
    started = 0
    closed = 0

    async def start(self) -> None:
        type(self).started += 1

    async def close(self) -> None:
        type(self).closed += 1


async def test_book_persists_notifies_shares_and_closes_runners() -> None:
    store = await MemoryStore(ManualClock()).open()
    made: list[Runner] = []

    def factory(spec: RunnerSpec) -> Runner:
        r = Counting()
        made.append(r)
        return r

    book = ModelBook(store, runner_factory=factory)
    changes: list[int] = []
    book.on_change(lambda: changes.append(1))
    chat = ModelOffer("mock-chat", "chat", 100, 1, 2)
    embed = ModelOffer("mock-embed", "embeddings", 100, 1, 0)
    await book.add(chat, RunnerSpec("mock"))
    await book.add(embed, RunnerSpec("mock"))
    assert book.offers() == (chat, embed) and len(changes) == 2
    assert await book.runner("mock-chat") is await book.runner("mock-embed")  # one runner per spec
    assert len(made) == 1 and Counting.started == 1

    again = ModelBook(store, runner_factory=factory)
    await again.load()
    assert again.offers() == (chat, embed)

    await book.remove("mock-chat")
    assert book.offers() == (embed,) and len(changes) == 3
    with pytest.raises(AgoraError) as ei:
        await book.remove("mock-chat")
    assert ei.value.code == "model_not_found"
    await book.close()
    assert Counting.closed == 1


@pytest.mark.parametrize(
    "spec", [{"kind": "ssh"}, {"kind": "http"}, {"kind": "http", "url": "ftp://x"}, {"kind": "mock", "options": [1]}]
)
def test_bad_runner_specs_are_refused(spec: dict[str, object]) -> None:
    with pytest.raises(AgoraError) as ei:
        RunnerSpec.from_dict(spec)
    assert ei.value.code == "model_offer_invalid"
