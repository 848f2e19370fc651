"""The conformance suite every `JournalStore` passes (memory, SQLite, JetStream on a real nats-server).

A subclass provides the `store` fixture (a fresh, empty journal) and, when the store can be opened twice
on the same journal (a file, a stream), `second`: another writer on the same journal.
"""

from __future__ import annotations

import asyncio

import pytest

from agora.errors import AgoraError
from agora.ledger import Entry, JournalStore, Posting, wallet
from agora.ledger.interfaces import ISSUANCE


def entry(seq: int, prev: str, *, amount: int = 5, idem: str | None = None) -> Entry:
    return Entry.build(
        seq=seq,
        prev=prev,
        time=1_700_000_000.0 + seq,
        kind="mint",
        postings=(Posting(ISSUANCE, -amount), Posting(wallet("did:key:z6MkAlice"), amount)),
        idem=idem or f"k{seq}",
        actor="did:key:z6MkOperator",
        receipts=("bafyreceipt",),
        memo="memo ü",
        meta={"why": "test"},
    )


async def fill(store: JournalStore, n: int) -> list[Entry]:
    out: list[Entry] = []
    prev = ""
    for seq in range(1, n + 1):
        e = entry(seq, prev)
        await store.append(e, seq - 1)
        out.append(e)
        prev = e.id
    return out


class JournalConformance:
    @pytest.fixture
    def store(self) -> JournalStore:  # overridden by each implementation's test module
        raise NotImplementedError

    @pytest.fixture
    def second(self) -> JournalStore | None:  # another writer on the same journal, where one exists
        return None

    async def test_an_empty_journal_has_no_last_and_reads_nothing(self, store: JournalStore) -> None:
        assert await store.last() is None
        assert await store.read() == []
        assert isinstance(store, JournalStore)

    async def test_appended_entries_read_back_equal_in_order(self, store: JournalStore) -> None:
        written = await fill(store, 5)
        assert await store.read() == written
        assert await store.read(since_seq=2) == written[2:]
        assert await store.read(since_seq=1, limit=2) == written[1:3]
        assert await store.read(since_seq=5) == []
        assert await store.read(limit=0) == []
        assert await store.last() == written[-1]
        got = (await store.read(since_seq=4))[0]
        assert got.id == got.compute_id() and got.meta == {"why": "test"} and got.receipts == ("bafyreceipt",)

    async def test_an_append_naming_a_stale_sequence_is_a_conflict_and_stores_nothing(
        self, store: JournalStore
    ) -> None:
        written = await fill(store, 2)
        for expected, e in ((1, entry(2, written[0].id, amount=9)), (0, entry(1, "", amount=9)), (3, entry(4, "x"))):
            with pytest.raises(AgoraError) as raised:
                await store.append(e, expected)
            assert raised.value.code == "ledger_conflict"
        assert await store.read() == written

    async def test_an_entry_whose_seq_does_not_follow_the_expected_one_is_refused(self, store: JournalStore) -> None:
        with pytest.raises(AgoraError) as raised:
            await store.append(entry(3, ""), 0)
        assert raised.value.code == "ledger_conflict"
        assert await store.last() is None

    async def test_paging_reads_a_long_journal_exactly_once(self, store: JournalStore) -> None:
        written = await fill(store, 150)
        seen: list[Entry] = []
        since = 0
        for _ in range(100):
            page = await store.read(since_seq=since, limit=40)
            if not page:
                break
            seen.extend(page)
            since = page[-1].seq
        assert seen == written
        # and in one go (a long range: JetStream reads it through one ordered consumer)
        assert await store.read() == written
        assert await store.read(since_seq=10, limit=100) == written[10:110]

    async def test_two_writers_racing_for_the_same_sequence_exactly_one_wins(
        self, store: JournalStore, second: JournalStore | None
    ) -> None:
        other = second if second is not None else store
        first = await fill(store, 1)
        a, b = entry(2, first[0].id, amount=1, idem="a"), entry(2, first[0].id, amount=2, idem="b")
        results = await asyncio.gather(store.append(a, 1), other.append(b, 1), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        assert len(failures) == 1 and isinstance(failures[0], AgoraError) and failures[0].code == "ledger_conflict"
        stored = await other.read()
        assert len(stored) == 2 and stored[1] in (a, b)
        assert await store.read() == stored

    async def test_a_closed_store_refuses_calls(self, store: JournalStore) -> None:
        await store.close()
        with pytest.raises(AgoraError) as raised:
            await store.append(entry(1, ""), 0)
        assert raised.value.code == "store_closed"
