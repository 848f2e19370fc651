"""The `Store` interface: JSON documents in named collections plus an append-only event log.

Every implementation (SQLite for nodes, memory for tests and the simulator) passes the one
conformance suite in `tests/integration/store/conformance.py`, so callers may rely on exactly the
semantics written here and nothing more.

Documents: a `dict` of JSON values (str keys; str, int in the signed 64-bit range, finite float,
bool, None, list, dict). Anything else (tuples, bytes, NaN, sets, non-str keys, strings holding
NUL or lone surrogates...) raises `invalid_argument` and writes nothing. Every write bumps the
document's version (1 on create); `expected_version` turns a write into a compare-and-set (0 means
"must not exist yet") and a mismatch raises `store_conflict`. Deleting a document forgets its
version: a re-created document starts again at 1.

Queries: `where` maps a field name (`status`, or a dotted path such as `spec.engine`) to a JSON
scalar. A field matches when it equals the value (bool only equals bool, numbers compare by value,
`1 == 1.0`) or when it is a list with an element equal to the value. `None` matches an explicit null
and a missing field. `contains` is a case-insensitive (Unicode casefold) substring search over every
string value in the document (keys and numbers are not searched). Results are ordered by `order_by`
(nulls/missing < booleans < numbers < strings < lists/objects, which tie among themselves), then by
id ascending, so paging with `offset` is stable; without `order_by`, by id.

Events: `append_event` gives each event the next `seq` (strictly increasing over committed events)
and `ts` from the store's injected `Clock`. There is no API to change or remove an event.

Transactions: `async with store.transaction():` groups every call made on the store from inside the
block (from the same task, or tasks it starts while the block is open) into one atomic unit; an
exception leaves nothing behind. Other tasks wait until the block ends, so they never see half of it.
Nested blocks are savepoints: a failing inner block that the outer block catches undoes only itself
(nested blocks must nest: two child tasks opening nested blocks at once is refused as `internal`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

Scalar = str | int | float | bool | None
"""A value `where` can compare a field with."""

JSONDict = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of the event log: what happened (`kind`), to what (`subject`), when and details."""

    seq: int
    ts: float
    kind: str
    subject: str
    data: JSONDict = field(default_factory=dict)

    def to_dict(self) -> JSONDict:
        return {"seq": self.seq, "ts": self.ts, "kind": self.kind, "subject": self.subject, "data": self.data}


@dataclass(frozen=True, slots=True)
class Record:
    """A document together with its id and version, as `query_records` returns it."""

    id: str
    version: int
    doc: JSONDict


class Store(ABC):
    """Documents in named collections with optimistic concurrency, queries and an event log."""

    @abstractmethod
    async def put(self, collection: str, id: str, doc: JSONDict, *, expected_version: int | None = None) -> int:
        """Create or replace a document; return its new version."""

    @abstractmethod
    async def get(self, collection: str, id: str) -> JSONDict | None:
        """Return a copy of the document, or None when it does not exist."""

    @abstractmethod
    async def get_with_version(self, collection: str, id: str) -> tuple[JSONDict, int] | None:
        """Return the document and its version (feed the version to `put(expected_version=)`)."""

    @abstractmethod
    async def delete(self, collection: str, id: str, *, expected_version: int | None = None) -> bool:
        """Remove a document; False when it did not exist (a conflict still raises)."""

    @abstractmethod
    async def query_records(
        self,
        collection: str,
        where: dict[str, Scalar] | None = None,
        *,
        order_by: str | None = None,
        desc: bool = False,
        limit: int = 100,
        offset: int = 0,
        contains: str | None = None,
    ) -> list[Record]:
        """Documents that match every `where` entry and `contains`, with ids and versions."""

    async def query(
        self,
        collection: str,
        where: dict[str, Scalar] | None = None,
        *,
        order_by: str | None = None,
        desc: bool = False,
        limit: int = 100,
        offset: int = 0,
        contains: str | None = None,
    ) -> list[JSONDict]:
        """Like `query_records`, documents only."""
        records = await self.query_records(
            collection, where, order_by=order_by, desc=desc, limit=limit, offset=offset, contains=contains
        )
        return [r.doc for r in records]

    @abstractmethod
    async def count(
        self, collection: str, where: dict[str, Scalar] | None = None, *, contains: str | None = None
    ) -> int:
        """How many documents `query` would return without a limit."""

    @abstractmethod
    async def append_event(self, kind: str, subject: str, data: JSONDict) -> Event:
        """Append to the event log; the event gets the next seq and the clock's time."""

    @abstractmethod
    async def events(
        self, *, after_seq: int = 0, kind: str | None = None, subject: str | None = None, limit: int = 100
    ) -> list[Event]:
        """Events with seq > after_seq in seq order; page by passing the last seq seen."""

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Self]:
        """Group the calls made inside the block into one atomic unit (see the module docstring)."""

    async def open(self) -> Self:
        """Do the setup that can fail (files, migrations) now rather than on the first call."""
        return self

    @abstractmethod
    async def close(self) -> None:
        """Release resources; later calls raise `store_closed`. Closing twice is harmless."""

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
