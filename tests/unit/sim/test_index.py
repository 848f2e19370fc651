from __future__ import annotations

import random

from agora.sim.index import CandidateIndex


def _index(seed: int = 1) -> CandidateIndex:
    ix = CandidateIndex(random.Random(seed))
    for i in range(100):
        ix.update(f"p{i:03d}", i % 9)  # free cores 0..8
    return ix


def test_candidates_have_enough_free_cores_and_are_bounded() -> None:
    ix = _index()
    got = ix.candidates(6, 10)
    assert len(got) == 10 and len(set(got)) == 10
    assert all(ix.free_cores(p) is not None and ix.free_cores(p) >= 6 for p in got)  # type: ignore[operator]
    everyone = ix.candidates(6, 0)
    assert sorted(everyone) == sorted(f"p{i:03d}" for i in range(100) if i % 9 >= 6)


def test_the_same_updates_and_seed_draw_the_same_candidates() -> None:
    assert _index(3).candidates(2, 15) == _index(3).candidates(2, 15)


def test_update_and_remove_move_providers_between_buckets() -> None:
    ix = _index()
    ix.update("p008", 0)  # was 8 free cores, now full
    assert "p008" not in ix.candidates(1, 0)
    ix.remove("p017")
    assert "p017" not in ix and "p017" not in ix.candidates(0, 0)
    assert len(ix) == 99
