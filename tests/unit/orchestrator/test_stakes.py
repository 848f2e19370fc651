"""`StakeView`: one batched call per round for the candidates it does not know recently, answers kept for
`max_age_s` (bounded staleness), a hub that does not answer leaves stakes unknown, the cache bounded."""

from __future__ import annotations

from collections.abc import Sequence

from agora.clock import ManualClock
from agora.errors import AgoraError
from agora.orchestrator.stakes import StakeView


class Hub:
    """The part of `Settlement` a `StakeView` uses: `stakes`, counted."""

    def __init__(self, table: dict[str, int]) -> None:
        self.table = table
        self.asked: list[list[str]] = []
        self.down = False

    async def stakes(self, dids: Sequence[str]) -> dict[str, int]:
        self.asked.append(list(dids))
        if self.down:
            raise AgoraError("ledger_unavailable", "no ledger hub answered")
        return {d: self.table.get(d, 0) for d in dids}


def view(hub: Hub, clock: ManualClock, **kw: object) -> StakeView:
    return StakeView(hub, clock=clock, max_age_s=30, **kw)  # type: ignore[arg-type]


async def test_one_call_per_round_then_cached_until_stale() -> None:
    hub, clock = Hub({"did:key:a": 500}), ManualClock()
    v = view(hub, clock)
    assert await v.of(["did:key:a", "did:key:b", "did:key:a"]) == {"did:key:a": 500, "did:key:b": 0}
    assert hub.asked == [["did:key:a", "did:key:b"]]
    hub.table["did:key:a"] = 10  # unstaked: seen once the answer is older than max_age_s
    clock.advance(29)
    assert await v.of(["did:key:a"]) == {"did:key:a": 500} and len(hub.asked) == 1
    clock.advance(2)
    assert await v.of(["did:key:a", "did:key:c"]) == {"did:key:a": 10, "did:key:c": 0}
    assert hub.asked[-1] == ["did:key:a", "did:key:c"] and v.calls == 2


async def test_a_hub_that_does_not_answer_leaves_stakes_unknown_and_the_cache_is_bounded() -> None:
    hub, clock = Hub({"did:key:a": 5}), ManualClock()
    hub.down = True
    v = view(hub, clock, max_entries=2)
    assert await v.of(["did:key:a"]) == {}
    hub.down = False
    assert await v.of(["did:key:a", "did:key:b", "did:key:c"]) == {"did:key:a": 5, "did:key:b": 0, "did:key:c": 0}
    assert len(v._known) == 2  # the oldest answer dropped
