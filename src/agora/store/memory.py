"""`MemoryStore`: the same semantics as `SqliteStore`, kept in dicts, for tests and the simulator.

Why it evaluates queries with `validation.matches`/`sort_key`: those functions are the reference
semantics the SQLite SQL is written against, so the conformance suite running on both stores checks
the SQL against the reference. Documents are kept as their JSON text (and a parsed copy for queries),
so a caller can never mutate what is stored, and what comes back is exactly what JSON round-trips.

Transactions keep an undo log: each change made inside a transaction records how to revert it, and a
rollback (or a rollback to a savepoint) replays the log backwards.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

from agora.clock import Clock
from agora.store import validation as v
from agora.store.base import BaseStore
from agora.store.interfaces import Event, JSONDict, Record


@dataclass(frozen=True, slots=True)
class _Doc:
    version: int
    text: str
    parsed: JSONDict


@dataclass(frozen=True, slots=True)
class _Evt:
    seq: int
    ts: float
    kind: str
    subject: str
    text: str

    def to_event(self) -> Event:
        return Event(seq=self.seq, ts=self.ts, kind=self.kind, subject=self.subject, data=v.decode_doc(self.text))


class MemoryStore(BaseStore):
    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self._docs: dict[str, dict[str, _Doc]] = {}
        self._log: list[_Evt] = []
        self._seqs: list[int] = []  # parallel to _log, for bisect
        self._next_seq = 1
        self._undo: list[Callable[[], None]] | None = None
        self._marks: dict[str, int] = {}

    async def _open(self) -> None:
        return None

    async def _close(self) -> None:
        self._docs.clear()
        self._log.clear()
        self._seqs.clear()

    # --- transactions ----------------------------------------------------------------------------------

    def _remember(self, undo: Callable[[], None]) -> None:
        if self._undo is not None:
            self._undo.append(undo)

    def _unwind(self, mark: int) -> None:
        assert self._undo is not None
        while len(self._undo) > mark:
            self._undo.pop()()

    async def _begin(self) -> None:
        self._undo = []
        self._marks = {}

    async def _commit(self) -> None:
        self._undo = None
        self._marks = {}

    async def _rollback(self) -> None:
        if self._undo is not None:
            self._unwind(0)
        self._undo = None
        self._marks = {}

    async def _savepoint(self, name: str) -> None:
        assert self._undo is not None
        self._marks[name] = len(self._undo)

    async def _release(self, name: str) -> None:
        self._marks.pop(name, None)

    async def _rollback_to(self, name: str) -> None:
        self._unwind(self._marks.pop(name))

    # --- documents ---------------------------------------------------------------------------------------

    def _restore(self, collection: str, id: str, previous: _Doc | None) -> None:
        docs = self._docs.setdefault(collection, {})
        if previous is None:
            docs.pop(id, None)
        else:
            docs[id] = previous

    async def _put(self, collection: str, id: str, text: str, expected: int | None) -> int:
        docs = self._docs.setdefault(collection, {})
        previous = docs.get(id)
        current = previous.version if previous else 0
        if expected is not None and expected != current:
            raise v.conflict_error(collection, id, expected, current)
        docs[id] = _Doc(current + 1, text, v.decode_doc(text))
        self._remember(lambda: self._restore(collection, id, previous))
        return current + 1

    async def _get(self, collection: str, id: str) -> tuple[JSONDict, int] | None:
        found = self._docs.get(collection, {}).get(id)
        return None if found is None else (v.decode_doc(found.text), found.version)

    async def _delete(self, collection: str, id: str, expected: int | None) -> bool:
        docs = self._docs.get(collection, {})
        previous = docs.get(id)
        current = previous.version if previous else 0
        if expected is not None and expected != current:
            raise v.conflict_error(collection, id, expected, current)
        if previous is None:
            return False
        del docs[id]
        self._remember(lambda: self._restore(collection, id, previous))
        return True

    def _matching(self, collection: str, spec: v.QuerySpec) -> list[tuple[str, _Doc]]:
        return [(id, d) for id, d in self._docs.get(collection, {}).items() if v.matches(d.parsed, spec)]

    async def _query(self, collection: str, spec: v.QuerySpec) -> list[Record]:
        found = sorted(self._matching(collection, spec), key=lambda item: item[0])
        if spec.order_by is not None:
            path = spec.order_by
            # Python's sort is stable, also with reverse=True, so ties keep the id order as SQL does.
            found.sort(key=lambda item: v.sort_key(item[1].parsed, path), reverse=spec.desc)
        page = found[spec.offset : spec.offset + spec.limit]
        return [Record(id=id, version=d.version, doc=v.decode_doc(d.text)) for id, d in page]

    async def _count(self, collection: str, spec: v.QuerySpec) -> int:
        return len(self._matching(collection, spec))

    # --- events --------------------------------------------------------------------------------------------

    def _drop_last_event(self, next_seq: int) -> None:
        self._log.pop()
        self._seqs.pop()
        self._next_seq = next_seq

    async def _append_event(self, ts: float, kind: str, subject: str, text: str) -> int:
        seq = self._next_seq
        self._log.append(_Evt(seq, ts, kind, subject, text))
        self._seqs.append(seq)
        self._next_seq = seq + 1
        self._remember(lambda: self._drop_last_event(seq))
        return seq

    async def _events(self, after_seq: int, kind: str | None, subject: str | None, limit: int) -> list[Event]:
        out: list[Event] = []
        for evt in self._log[bisect.bisect_right(self._seqs, after_seq) :]:
            if len(out) >= limit:
                break
            if (kind is None or evt.kind == kind) and (subject is None or evt.subject == subject):
                out.append(evt.to_event())
        return out


__all__ = ["MemoryStore"]
