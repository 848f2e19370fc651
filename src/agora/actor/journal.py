"""The replay journal: the CIDs of state-changing invocations, kept on disk until they expire.

The replay cache lives in memory, so on its own it forgets everything when the node restarts or
crashes, and an invocation captured before that would run again. A state-changing (mutating) behavior
therefore runs only after its invocation's CID is committed to the node's store, with the time until
which it could still be accepted (`exp + skew`); a CID already there is a replay. The write comes
*before* the handler: a crash between the two loses that invocation (the caller sends a fresh one)
but can never run it twice. Entries whose time has passed are pruned (the validator refuses those
invocations as expired anyway).

Durability is the store's: `SqliteStore` commits in WAL mode with `synchronous=NORMAL`, which survives
a crash of the process (kill -9); a power loss may lose the last commits before a checkpoint.
"""

from __future__ import annotations

from typing import Protocol

from agora.codec import CID
from agora.errors import AgoraError
from agora.store import Store

COLLECTION = "ucan_replay"
PRUNE_EVERY_S = 60.0
PRUNE_BATCH = 1000
PRUNE_ROUNDS = 100


class ReplayJournal(Protocol):
    async def remember(self, cid: CID, until: float, now: float) -> None:
        """Record `cid` until `until`; raise `ucan_replayed` if it is already recorded."""
        ...

    async def prune(self, now: float) -> int:
        """Forget entries whose time has passed; return how many were removed."""
        ...


class StoreReplayJournal:
    """A `ReplayJournal` in a collection (`ucan_replay`) of the node's store: one document per CID."""

    def __init__(self, store: Store, *, prune_every: float = PRUNE_EVERY_S, batch: int = PRUNE_BATCH) -> None:
        self.store = store
        self.prune_every = prune_every
        self.batch = batch
        self._pruned_at: float | None = None

    async def remember(self, cid: CID, until: float, now: float) -> None:
        if self._pruned_at is None or now - self._pruned_at >= self.prune_every:
            await self.prune(now)
        try:
            await self.store.put(COLLECTION, str(cid), {"until": float(until)}, expected_version=0)
        except AgoraError as err:
            if err.code == "store_conflict":
                raise AgoraError(
                    "ucan_replayed", f"invocation {cid} was already accepted (the node's journal has it)"
                ) from None
            raise

    async def prune(self, now: float) -> int:
        self._pruned_at = now
        removed = 0
        for _ in range(PRUNE_ROUNDS):  # bounded: at most PRUNE_ROUNDS * batch per call, the rest next time
            oldest = await self.store.query_records(COLLECTION, order_by="until", limit=self.batch)
            done = [r for r in oldest if float(r.doc.get("until", 0.0)) < now]
            if done:
                async with self.store.transaction():
                    for r in done:
                        await self.store.delete(COLLECTION, r.id)
                removed += len(done)
            if len(done) < self.batch:
                break
        return removed

    async def count(self) -> int:
        return await self.store.count(COLLECTION)


__all__ = ["COLLECTION", "ReplayJournal", "StoreReplayJournal"]
