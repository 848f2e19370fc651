"""`TrustBook`: evidence kept durably in the node's SQLite store (it survives a restart), recorded once per
thing cited, with an event; latency EWMAs; the view matching reads."""

from __future__ import annotations

from pathlib import Path

from agora.clock import ManualClock
from agora.ledger import Evidence, TrustBook, TrustSettings
from agora.ledger.evidence import EVIDENCE
from agora.store import MemoryStore, SqliteStore

P = "did:key:z6MkProviderA"
Q = "did:key:z6MkProviderB"


async def test_evidence_and_latency_survive_a_restart_of_the_node(tmp_path: Path) -> None:
    clock = ManualClock()
    store = SqliteStore(tmp_path / "agora.db", clock=clock)
    await store.open()
    book = TrustBook(store, clock=clock)
    t = clock.now()
    assert await book.record(Evidence(P, "success", t, {"receipt": "bafy-1", "job": "j1"}))
    assert await book.record(Evidence(P, "failure", t, {"job": "j2", "unit": "u#1"}))
    assert await book.record(Evidence(Q, "success", t, {"receipt": "bafy-2", "job": "j3"}))
    await book.observe_latency(P, 40.0)
    await book.observe_latency(P, 140.0)
    before = [r.to_dict() for r in book.reports()]
    await store.close()

    store2 = SqliteStore(tmp_path / "agora.db", clock=clock)  # the node comes back
    await store2.open()
    try:
        again = TrustBook(store2, clock=clock)
        assert again.providers() == []
        assert await again.load() == 3
        assert [r.to_dict() for r in again.reports()] == before
        assert again.report(P).counts == {"failure": 1, "success": 1}
        assert again.report(P).latency_ms == 70.0
        # a record already kept is not kept twice, across the restart too
        assert not await again.record(Evidence(P, "success", t + 99, {"job": "j1", "receipt": "bafy-1"}))
        assert await store2.count(EVIDENCE) == 3
        events = await store2.events(kind="trust.evidence")
        assert [e.subject for e in events] == [P, P, Q]
        assert events[0].data["cites"] == {"receipt": "bafy-1", "job": "j1"}
    finally:
        await store2.close()


async def test_the_view_gives_scores_of_known_providers_the_prior_and_who_is_cooling_down() -> None:
    clock = ManualClock()
    settings = TrustSettings(penalty_failures=2, cooldown_s=60)
    book = TrustBook(MemoryStore(clock), clock=clock, settings=settings)
    await book.record(Evidence(P, "failure", clock.now(), {"job": "a"}))
    await book.record(Evidence(P, "timeout", clock.now(), {"job": "b"}))
    await book.record(Evidence(Q, "success", clock.now(), {"job": "c", "receipt": "bafy"}))
    view = book.view()
    assert view.prior == 0.5
    assert set(view.trust) == {P, Q} and view.trust[P] < 0.5 < view.trust[Q]
    assert view.cooling_down == {P: clock.now() + 60}
    clock.advance(60)
    assert book.view().cooling_down == {}


async def test_memory_keeps_the_newest_records_per_provider() -> None:
    clock = ManualClock()
    book = TrustBook(MemoryStore(clock), clock=clock, max_records=5)
    for i in range(8):
        await book.record(Evidence(P, "success", clock.now() + i, {"job": f"j{i}"}))
    kept = book.records(P)
    assert len(kept) == 5 and [r.cites["job"] for r in kept] == [f"j{i}" for i in range(3, 8)]


async def test_the_view_follows_every_new_record_and_latency_sample_within_the_same_second() -> None:
    clock = ManualClock()
    book = TrustBook(MemoryStore(clock), clock=clock)
    assert book.view().trust == {}
    await book.record(Evidence(P, "success", clock.now(), {"job": "a", "receipt": "bafy"}))
    assert book.view().trust[P] > 0.5
    await book.record(Evidence(P, "failure", clock.now(), {"job": "b"}))
    assert book.view().trust[P] == 0.5
    await book.observe_latency(P, 12.0)
    assert book.view().latency_ms == {P: 12.0}
    assert book.view() is book.view()  # nothing new: the same view
