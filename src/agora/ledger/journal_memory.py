"""`MemoryJournalStore`: the journal in a list (tests, the simulator, a single process that needs no history).

It keeps the stored form (DAG-CBOR bytes), not the objects, so it behaves like the durable stores: what
is read back is decoded, and a test can edit one stored entry (`tamper`) to check that `verify` notices.
"""

from __future__ import annotations

from agora.errors import AgoraError
from agora.ledger.interfaces import Entry


class MemoryJournalStore:
    def __init__(self) -> None:
        self._rows: list[bytes] = []
        self._closed = False

    def _open(self) -> None:
        if self._closed:
            raise AgoraError("store_closed", "the journal store was closed")

    async def append(self, entry: Entry, expected_seq: int) -> None:
        self._open()
        if expected_seq != len(self._rows) or entry.seq != expected_seq + 1:
            raise AgoraError(
                "ledger_conflict",
                f"the journal is at entry {len(self._rows)}, the writer expected {expected_seq}",
                details={"last_seq": len(self._rows)},
            )
        self._rows.append(entry.encode())

    async def read(self, since_seq: int = 0, limit: int = 1000) -> list[Entry]:
        self._open()
        start = max(0, since_seq)
        return [Entry.decode(raw) for raw in self._rows[start : start + max(0, limit)]]

    async def last(self) -> Entry | None:
        self._open()
        return Entry.decode(self._rows[-1]) if self._rows else None

    async def close(self) -> None:
        self._closed = True

    def tamper(self, seq: int, entry: Entry) -> None:
        """Overwrite the stored entry `seq` (tests of `verify` only: the journal is otherwise append-only)."""
        self._rows[seq - 1] = entry.encode()


__all__ = ["MemoryJournalStore"]
