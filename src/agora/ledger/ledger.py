"""`Ledger`: the pure books (`core.Books`) kept in step with a `JournalStore`.

Every operation runs under one asyncio lock (callers of this process serialize) and follows the same
steps: look its idempotency key up (a retry returns the FIRST entry and changes nothing; the same key
with other arguments is `idempotency_conflict`), plan the entry against the books (`plan` raises the
domain error), check it, and append it naming the seq it expects. When another writer (a second hub,
another process on the same file) appended first, the store raises `ledger_conflict`: the ledger reads
what it missed and tries again from the idempotency check, at most `max_retries` times. So the append
is the only commit point, and nothing is ever spent twice: two writers planning from the same balance
race for the same seq, and exactly one wins.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agora.clock import Clock, SystemClock
from agora.errors import AgoraError
from agora.ledger.core import Books, check_idem, request_digest, verify_chain
from agora.ledger.interfaces import Entry, EscrowState, JournalStore, Posting, VerifyReport

READ_PAGE = 1000


@dataclass(frozen=True)
class Plan:
    """What an operation wants to append (the ledger adds seq, prev, time, idem, actor and the id)."""

    kind: str
    postings: tuple[Posting, ...]
    contract: str = ""
    receipts: tuple[str, ...] = ()
    memo: str = ""
    meta: Mapping[str, str] = field(default_factory=dict)


Planner = Callable[[Books], Plan]


class Ledger:
    """The journal's books plus its store; `execute` is the one way an entry is written."""

    def __init__(self, store: JournalStore, *, clock: Clock | None = None, max_retries: int = 16) -> None:
        self._store = store
        self._clock = clock or SystemClock()
        self._books = Books()
        self._lock = asyncio.Lock()
        self._max_retries = max_retries
        self._loaded = False

    @property
    def store(self) -> JournalStore:
        return self._store

    @property
    def books(self) -> Books:
        """The books as of the last entry this ledger saw (call `refresh` first to see other writers')."""
        return self._books

    async def refresh(self) -> Books:
        """Read every entry the books have not seen yet (another writer's), checking each."""
        async with self._lock:
            await self._catch_up()
            return self._books

    async def _catch_up(self) -> None:
        for _ in range(1 << 30):  # bounded by the journal's length: each page moves `seq` on or ends the loop
            page = await self._store.read(self._books.seq, READ_PAGE)
            for entry in page:
                try:
                    self._books.apply(entry)
                except AgoraError as exc:
                    raise AgoraError(
                        "ledger_corrupt",
                        f"the journal's entry {entry.seq} does not follow the rules: {exc.message}",
                        details={"seq": entry.seq},
                    ) from None
            if len(page) < READ_PAGE:
                break
        self._loaded = True

    async def execute(self, op: str, args: Mapping[str, Any], *, actor: str, idem: str, plan: Planner) -> Entry:
        """Append the entry `plan` makes from the current books, once per idempotency key."""
        check_idem(idem)
        digest = request_digest(op, {**args, "actor": actor})
        async with self._lock:
            if not self._loaded:
                await self._catch_up()
            fresh = False  # refused against books that may be stale: read the journal once, then decide
            for _ in range(self._max_retries):
                first = self._books.by_idem.get(idem)
                if first is not None:
                    if first.request != digest:
                        raise AgoraError(
                            "idempotency_conflict",
                            f"idempotency key {idem[:80]!r} was used by entry {first.seq} ({first.kind}) "
                            "with other arguments",
                            details={"seq": first.seq},
                        )
                    return first
                try:
                    p = plan(self._books)
                except AgoraError:
                    if fresh or not await self._moved_on():
                        raise
                    fresh = True
                    continue
                entry = Entry.build(
                    seq=self._books.seq + 1,
                    prev=self._books.last_id,
                    time=self._clock.now(),
                    kind=p.kind,
                    postings=p.postings,
                    idem=idem,
                    actor=actor,
                    contract=p.contract,
                    receipts=p.receipts,
                    memo=p.memo,
                    request=digest,
                    meta=p.meta,
                )
                try:
                    new_escrow = self._books.check(entry, id_known_good=True)
                except AgoraError:
                    if fresh or not await self._moved_on():
                        raise
                    fresh = True
                    continue
                try:
                    await self._store.append(entry, self._books.seq)
                except AgoraError as exc:
                    if exc.code != "ledger_conflict":
                        raise
                    await self._catch_up()
                    continue
                self._books._commit(entry, new_escrow)
                return entry
        raise AgoraError(
            "ledger_conflict", f"{op}: other writers kept appending first ({self._max_retries} tries); retry later"
        )

    async def _moved_on(self) -> bool:
        before = self._books.seq
        await self._catch_up()
        return self._books.seq != before

    async def balance(self, account: str) -> int:
        return (await self.refresh()).balance(account)

    async def escrow(self, contract: str) -> EscrowState | None:
        return (await self.refresh()).escrow(contract)

    async def iter_entries(self, since: int = 0) -> AsyncIterator[Entry]:
        """Every stored entry after `since`, in order, page by page."""
        seq = since
        for _ in range(1 << 30):
            page = await self._store.read(seq, READ_PAGE)
            for entry in page:
                yield entry
            if len(page) < READ_PAGE:
                return
            seq = page[-1].seq

    async def entries(self, account: str | None = None, since: int = 0, limit: int = 1000) -> list[Entry]:
        """Entries after `since` (touching `account` when given), oldest first, at most `limit`."""
        out: list[Entry] = []
        if limit <= 0:
            return out
        async for entry in self.iter_entries(since):
            if account is None or entry.touches(account) or _names(entry, account):
                out.append(entry)
                if len(out) >= limit:
                    break
        return out

    async def verify(self) -> VerifyReport:
        """Walk the whole stored journal (not the books in memory): links, ids, rules, sum 0."""
        return verify_chain([e async for e in self.iter_entries(0)])

    async def close(self) -> None:
        await self._store.close()


def _names(entry: Entry, account: str) -> bool:
    """An escrow entry that moves no money still belongs to its escrow account's history."""
    return bool(entry.contract) and account == f"escrow:{entry.contract}"


__all__ = ["Ledger", "Plan", "Planner"]
