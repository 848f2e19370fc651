"""`BaseStore`: validation, serialization of callers and transactions, shared by every backend.

Why one base class: the two backends must reject the same inputs and isolate callers the same way,
so that logic lives once. A backend only supplies primitive operations that run while the caller
holds the store (its lock, or an open transaction), with arguments already checked and documents
already encoded as JSON text.

Isolation is simple on purpose: one `asyncio.Lock` per store. A plain call takes it for the length
of the call; `transaction()` takes it for the length of the block, and calls made from inside the
block (found through a context variable, so it works across helper functions and child tasks) run
without taking it again. A node's database is small and local, so serializing calls costs little
and rules out dirty reads and lost updates by construction.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
from abc import abstractmethod
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Self

from agora.clock import Clock
from agora.errors import AgoraError
from agora.store import validation as v
from agora.store.interfaces import Event, JSONDict, Record, Scalar, Store


class _Tx:
    """An open transaction: which store it belongs to, whether it is still open, savepoint names."""

    __slots__ = ("active", "names", "open_savepoints", "store")

    def __init__(self, store: BaseStore) -> None:
        self.store = store
        self.active = True
        self.names = itertools.count(1)
        self.open_savepoints: list[str] = []


_OPEN_TX: contextvars.ContextVar[tuple[_Tx, ...]] = contextvars.ContextVar("agora_store_open_tx", default=())


class BaseStore(Store):
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = asyncio.Lock()
        self._closed = False

    # --- what a backend supplies -------------------------------------------------------------------

    @abstractmethod
    async def _put(self, collection: str, id: str, text: str, expected: int | None) -> int: ...

    @abstractmethod
    async def _get(self, collection: str, id: str) -> tuple[JSONDict, int] | None: ...

    @abstractmethod
    async def _delete(self, collection: str, id: str, expected: int | None) -> bool: ...

    @abstractmethod
    async def _query(self, collection: str, spec: v.QuerySpec) -> list[Record]: ...

    @abstractmethod
    async def _count(self, collection: str, spec: v.QuerySpec) -> int: ...

    @abstractmethod
    async def _append_event(self, ts: float, kind: str, subject: str, text: str) -> int: ...

    @abstractmethod
    async def _events(self, after_seq: int, kind: str | None, subject: str | None, limit: int) -> list[Event]: ...

    @abstractmethod
    async def _begin(self) -> None: ...

    @abstractmethod
    async def _commit(self) -> None: ...

    @abstractmethod
    async def _rollback(self) -> None: ...

    @abstractmethod
    async def _savepoint(self, name: str) -> None: ...

    @abstractmethod
    async def _release(self, name: str) -> None: ...

    @abstractmethod
    async def _rollback_to(self, name: str) -> None: ...

    @abstractmethod
    async def _open(self) -> None:
        """Set up on first use; called with the lock held."""

    @abstractmethod
    async def _close(self) -> None: ...

    # --- serialization ------------------------------------------------------------------------------

    def _my_tx(self) -> _Tx | None:
        for tx in _OPEN_TX.get():
            if tx.store is self and tx.active:
                return tx
        return None

    def _check_open(self) -> None:
        if self._closed:
            raise AgoraError("store_closed", f"{type(self).__name__} is closed")

    @asynccontextmanager
    async def _access(self) -> AsyncIterator[None]:
        if self._my_tx() is not None:
            self._check_open()
            yield
            return
        async with self._lock:
            self._check_open()
            await self._open()
            yield

    async def open(self) -> Self:
        async with self._access():
            pass
        return self

    async def close(self) -> None:
        if self._my_tx() is not None:
            raise AgoraError("invalid_argument", "cannot close a store from inside its own transaction")
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            await self._close()

    # --- documents ------------------------------------------------------------------------------------

    async def put(self, collection: str, id: str, doc: JSONDict, *, expected_version: int | None = None) -> int:
        v.check_collection(collection)
        v.check_id(id)
        expected = v.check_expected_version(expected_version)
        text = v.encode_doc(doc)
        async with self._access():
            return await self._put(collection, id, text, expected)

    async def get(self, collection: str, id: str) -> JSONDict | None:
        found = await self.get_with_version(collection, id)
        return None if found is None else found[0]

    async def get_with_version(self, collection: str, id: str) -> tuple[JSONDict, int] | None:
        v.check_collection(collection)
        v.check_id(id)
        async with self._access():
            return await self._get(collection, id)

    async def delete(self, collection: str, id: str, *, expected_version: int | None = None) -> bool:
        v.check_collection(collection)
        v.check_id(id)
        expected = v.check_expected_version(expected_version)
        async with self._access():
            return await self._delete(collection, id, expected)

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
        v.check_collection(collection)
        spec = v.build_query(where, order_by=order_by, desc=desc, limit=limit, offset=offset, contains=contains)
        async with self._access():
            return await self._query(collection, spec)

    async def count(
        self, collection: str, where: dict[str, Scalar] | None = None, *, contains: str | None = None
    ) -> int:
        v.check_collection(collection)
        spec = v.build_query(where, contains=contains)
        async with self._access():
            return await self._count(collection, spec)

    # --- events -----------------------------------------------------------------------------------------

    async def append_event(self, kind: str, subject: str, data: JSONDict) -> Event:
        v.check_kind(kind)
        v.check_subject(subject)
        text = v.encode_doc(data, "data")
        async with self._access():
            ts = float(self._clock.now())
            seq = await self._append_event(ts, kind, subject, text)
        return Event(seq=seq, ts=ts, kind=kind, subject=subject, data=v.decode_doc(text))

    async def events(
        self, *, after_seq: int = 0, kind: str | None = None, subject: str | None = None, limit: int = 100
    ) -> list[Event]:
        if isinstance(after_seq, bool) or not isinstance(after_seq, int) or after_seq < 0:
            raise AgoraError("store_query_invalid", "after_seq must be a non-negative integer")
        if kind is not None and not isinstance(kind, str):
            raise AgoraError("store_query_invalid", "kind must be a string")
        if subject is not None and not isinstance(subject, str):
            raise AgoraError("store_query_invalid", "subject must be a string")
        lim, _ = v.check_limit(limit)
        async with self._access():
            return await self._events(after_seq, kind, subject, lim)

    # --- transactions -------------------------------------------------------------------------------------

    @staticmethod
    def _pop_savepoint(tx: _Tx, name: str) -> None:
        # Savepoints nest like a stack; two child tasks that open nested blocks at once would close
        # them out of order and SQLite would release the wrong one. Fail loudly instead: the
        # exception reaches the outer block, which then rolls everything back.
        if not tx.open_savepoints or tx.open_savepoints[-1] != name:
            raise AgoraError(
                "internal", "nested transactions of one transaction overlapped (opened concurrently by two tasks)"
            )
        tx.open_savepoints.pop()

    def transaction(self) -> AbstractAsyncContextManager[Self]:
        return self._transaction()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Self]:
        outer = self._my_tx()
        if outer is not None:
            self._check_open()
            name = f"agora_sp{next(outer.names)}"
            await self._savepoint(name)
            outer.open_savepoints.append(name)
            try:
                yield self
            except BaseException:
                self._pop_savepoint(outer, name)
                await asyncio.shield(self._rollback_to(name))
                raise
            self._pop_savepoint(outer, name)
            await self._release(name)
            return
        async with self._lock:
            self._check_open()
            await self._open()
            try:
                # Shielded: a BEGIN that is cancelled half-way could still run in a worker thread
                # and leave the connection inside a transaction nobody will ever end.
                await asyncio.shield(self._begin())
            except BaseException:
                await asyncio.shield(self._rollback())
                raise
            tx = _Tx(self)
            token = _OPEN_TX.set((*_OPEN_TX.get(), tx))
            try:
                try:
                    yield self
                except BaseException:
                    await asyncio.shield(self._rollback())
                    raise
                try:
                    await asyncio.shield(self._commit())
                except BaseException:
                    await asyncio.shield(self._rollback())
                    raise
            finally:
                tx.active = False
                _OPEN_TX.reset(token)
