"""The pure core: account names, the entry hash chain, the rules `Books` applies to every entry, and
`verify` naming the first entry that was edited in a stored journal."""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from agora.clock import ManualClock
from agora.codec import encode
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.ledger import (
    FEES,
    ISSUANCE,
    Books,
    Entry,
    InternalLedgerSettlement,
    Ledger,
    MemoryJournalStore,
    Posting,
    SqliteJournalStore,
    account_kind,
    account_owner,
    escrow_account,
    may_go_negative,
    pro_rata,
    stake_account,
    verify_chain,
    wallet,
)

A, B = "did:key:z6MkA", "did:key:z6MkB"


def make(books: Books, kind: str, *legs: tuple[str, int], idem: str = "", **kw: object) -> Entry:
    return Entry.build(
        seq=books.seq + 1,
        prev=books.last_id,
        time=1.0,
        kind=kind,
        postings=[Posting(a, n) for a, n in legs],
        idem=idem or f"k{books.seq + 1}",
        actor="did:key:z6MkOp",
        **kw,  # type: ignore[arg-type]
    )


def refused(books: Books, entry: Entry, code: str) -> None:
    before = (books.seq, dict(books.balances))
    with pytest.raises(AgoraError) as raised:
        books.apply(entry)
    assert raised.value.code == code, raised.value
    assert (books.seq, books.balances) == before


def test_account_names_and_kinds() -> None:
    assert [account_kind(x) for x in (wallet(A), escrow_account("c"), stake_account(A), FEES, ISSUANCE)] == [
        "wallet",
        "escrow",
        "stake",
        "fees",
        "issuance",
    ]
    assert account_owner(wallet(A)) == A and account_owner(FEES) == ""
    assert may_go_negative(ISSUANCE) and not any(may_go_negative(x) for x in (wallet(A), FEES, escrow_account("c")))
    for bad in ("wallet:", "bank:x", "wallet:a b", "", "x" * 600):
        with pytest.raises(AgoraError) as raised:
            account_kind(bad)
        assert raised.value.code == "invalid_argument"
    with pytest.raises(AgoraError):
        wallet("")


def test_the_id_covers_every_field_and_the_stored_form_round_trips() -> None:
    e = make(Books(), "mint", (ISSUANCE, -5), (wallet(A), 5), receipts=("bafy",), memo="m", meta={"k": "v"})
    assert e.id == e.compute_id() and len(e.id) == 64
    assert Entry.decode(e.encode()) == e
    # the stored form is spliced from the hashed one: exactly the canonical encoding of every field
    assert e.encode() == encode({**e.hash_fields(), "id": e.id}) == replace(e).encode()
    assert replace(e, memo="n").encode() == encode({**replace(e, memo="n").hash_fields(), "id": e.id})
    for changed in (
        replace(e, memo="n"),
        replace(e, prev="x"),
        replace(e, postings=(Posting(ISSUANCE, -6), Posting(wallet(A), 6))),
    ):
        assert changed.compute_id() != e.id
    for junk in (b"\xa0", b"not cbor"):
        with pytest.raises(AgoraError) as raised:
            Entry.decode(junk)
        assert raised.value.code == "ledger_corrupt"


def test_books_refuse_unbalanced_misrouted_overdrawn_and_reused_entries() -> None:
    books = Books()
    books.apply(make(books, "mint", (ISSUANCE, -10), (wallet(A), 10)))
    refused(books, make(books, "transfer", (wallet(A), -5), (wallet(B), 4)), "ledger_entry_invalid")  # sum -1
    refused(books, make(books, "transfer", (wallet(A), -11), (wallet(B), 11)), "insufficient_funds")
    refused(books, make(books, "transfer", (ISSUANCE, -1), (wallet(B), 1)), "ledger_entry_invalid")  # mint as transfer
    refused(books, make(books, "mint", (wallet(A), -1), (wallet(B), 1)), "ledger_entry_invalid")
    refused(books, make(books, "transfer", (wallet(A), -1), (escrow_account("c"), 1)), "ledger_entry_invalid")
    refused(books, make(books, "stake_lock", (wallet(A), -1), (stake_account(B), 1)), "ledger_entry_invalid")
    refused(books, make(books, "transfer", (wallet(A), 0), (wallet(B), 0)), "ledger_entry_invalid")
    refused(books, make(books, "bogus", (wallet(A), -1), (wallet(B), 1)), "ledger_entry_invalid")
    refused(books, make(books, "transfer", (wallet(A), -1), (wallet(B), 1), idem="k1"), "idempotency_conflict")
    stale = make(books, "transfer", (wallet(A), -1), (wallet(B), 1))
    books.apply(make(books, "transfer", (wallet(A), -2), (wallet(B), 2)))
    refused(books, stale, "ledger_conflict")  # planned against an older journal
    refused(
        books, replace(make(books, "transfer", (wallet(A), -1), (wallet(B), 1)), id="0" * 64), "ledger_entry_invalid"
    )
    # an escrow lock that does not name two parties, or a payout that keeps money in the escrow
    refused(
        books,
        make(
            books, "escrow_lock", (wallet(A), -1), (escrow_account("c"), 1), contract="c", meta={"payer": A, "payee": A}
        ),
        "ledger_entry_invalid",
    )
    books.apply(
        make(
            books, "escrow_lock", (wallet(A), -4), (escrow_account("c"), 4), contract="c", meta={"payer": A, "payee": B}
        )
    )
    refused(
        books,
        make(books, "escrow_release", (escrow_account("c"), -3), (wallet(B), 3), contract="c"),
        "ledger_entry_invalid",
    )
    books.apply(make(books, "escrow_release", (escrow_account("c"), -4), (wallet(B), 3), (wallet(A), 1), contract="c"))
    assert books.escrows["c"].state == "partially_released"
    assert books.total == 0 and books.balances == {ISSUANCE: -10, wallet(A): 5, wallet(B): 5}
    assert verify_chain([e for e in books.by_idem.values()]).ok


async def _journal(store: MemoryJournalStore | SqliteJournalStore) -> list[Entry]:
    operator, a, b = Keypair.generate(), Keypair.generate(), Keypair.generate()
    bank = InternalLedgerSettlement(Ledger(store, clock=ManualClock()), operator.did)
    await bank.mint(a.did, 100, actor=operator.did, idem="m")
    for i in range(4):
        await bank.transfer(a.did, b.did, 10, actor=a.did, idem=f"t{i}")
    assert (await bank.verify()).ok
    return await store.read()


async def test_editing_one_stored_entry_makes_verify_name_it_memory() -> None:
    store = MemoryJournalStore()
    entries = await _journal(store)
    e3 = entries[2]
    store.tamper(3, replace(e3, postings=tuple(Posting(p.account, p.amount * 5) for p in e3.postings)))
    report = await Ledger(store).verify()
    assert not report.ok and report.first_bad_seq == 3
    assert report.problems == ((3, "its id is not the hash of its fields (edited after it was written)"),)
    # an edit that recomputes the id breaks the next entry's link instead, and the edit is caught by its rules
    forged = Entry.build(
        **{
            **{k: getattr(e3, k) for k in e3.__dataclass_fields__ if k not in ("id", "_hashed")},
            "postings": (
                Posting(wallet(account_owner(e3.postings[0].account)), -1000),
                Posting(e3.postings[1].account, 1000),
            ),
        }
    )
    store.tamper(3, forged)
    report = await Ledger(store).verify()
    assert [seq for seq, _ in report.problems] == [3, 4] and "insufficient_funds" in report.problems[0][1]


async def test_editing_one_stored_entry_makes_verify_name_it_sqlite(tmp_path: Path) -> None:
    store = SqliteJournalStore(tmp_path / "j.db")
    entries = await _journal(store)
    await store.close()
    edited = replace(entries[1], memo="I was here")
    with contextlib.closing(sqlite3.connect(tmp_path / "j.db")) as raw, raw:
        raw.execute("UPDATE journal SET body = ? WHERE seq = 2", (edited.encode(),))
    again = SqliteJournalStore(tmp_path / "j.db")
    try:
        report = await Ledger(again).verify()
        assert not report.ok and report.first_bad_seq == 2 and report.to_dict()["problems"][0]["seq"] == 2
        with pytest.raises(AgoraError) as raised:  # a ledger refuses to work on a journal that breaks its rules
            await InternalLedgerSettlement(Ledger(again), "did:key:z6MkOp").balance(FEES)
        assert raised.value.code == "ledger_corrupt"
    finally:
        await again.close()


def test_pro_rata_rounds_down_and_refuses_nonsense() -> None:
    assert [pro_rata(100, u, 3) for u in range(4)] == [0, 33, 66, 100]
    assert pro_rata(0, 1, 1) == 0
    for args in ((100, 4, 3), (100, 1, 0), (-1, 1, 1), (100, True, 2)):
        with pytest.raises(AgoraError) as raised:
            pro_rata(*args)
        assert raised.value.code == "invalid_argument"
