"""The provider's disk: each requester's share of the CAS, and when what it stored there goes away.

Every object a requester puts in this node's CAS (an upload, an inline module, an output of its
allocation) is a *holding*: (requester, digest, size, kind, expires). A requester's usage is the sum of
its holdings, bounded by `StoreLimits.quota_bytes` (0: no bound): an upload, an inline module or a task's
outputs that would go over it are refused with `storage_quota_exceeded` before a byte is stored (for
outputs: after the task ran, when their size is known; the allocation fails, its receipt signed).

Holdings expire `retention_s` after they were made; an output fetched to its last byte expires
`fetched_grace_s` after that (the requester has it and verified it, the grace covers a retry of the
download). `sweep` drops expired holdings, takes the requester off the object's owners (`CasOwners`), and
deletes the object once no one holds it and no live allocation uses it. The manager sweeps at start and
every `sweep_interval_s`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from agora.clock import SYSTEM_CLOCK, Clock
from agora.compute.transfer import CasOwners
from agora.errors import AgoraError
from agora.storage import LocalCAS
from agora.store import Store

log = logging.getLogger("agora.compute")

HOLDINGS = "cas_holdings"
"""Store collection: one row per (requester, digest): {owner, digest, size, kind, at, expires}."""
PAGE = 10_000  # the store's largest query
MAX_PAGES = 10  # a sweep or a usage sum reads at most PAGE * MAX_PAGES rows


@dataclass(frozen=True)
class StoreLimits:
    quota_bytes: int = 0  # per requester, of the provider's CAS; 0: unbounded
    retention_s: float = 7 * 24 * 3600.0  # how long an upload or an output is kept
    fetched_grace_s: float = 300.0  # an output fetched to its end goes this long after
    sweep_interval_s: float = 300.0


def _key(owner: str, digest: str) -> str:
    return hashlib.sha256(owner.encode()).hexdigest()[:24] + ":" + digest


class StoreLedger:
    """Who holds what in the CAS, for how long, and how much of it each requester may have."""

    def __init__(
        self, store: Store, cas: LocalCAS, owners: CasOwners, limits: StoreLimits, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.store = store
        self.cas = cas
        self.owners = owners
        self.limits = limits
        self.clock = clock

    async def _rows(self, where: dict[str, str] | None = None) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for page in range(MAX_PAGES):
            got = await self.store.query(HOLDINGS, dict(where) if where else None, limit=PAGE, offset=page * PAGE)
            rows += got
            if len(got) < PAGE:
                break
        return rows

    async def usage(self, owner: str) -> int:
        rows = await self._rows({"owner": owner})
        return sum(int(r.get("size", 0)) for r in rows)

    async def require_room(self, owner: str, more: int, what: str) -> None:
        quota = self.limits.quota_bytes
        if quota <= 0:
            return
        used = await self.usage(owner)
        if used + more > quota:
            raise AgoraError(
                "storage_quota_exceeded",
                f"{what} takes {more} bytes; this requester already holds {used} of its {quota}-byte share of "
                "this node's store",
                details={"used": used, "quota": quota, "needed": more},
            )

    async def hold(self, owner: str, digest: str, size: int, kind: str) -> None:
        """Record (or renew) a holding; its retention starts now."""
        now = self.clock.now()
        doc = {
            "owner": owner,
            "digest": digest,
            "size": int(size),
            "kind": kind,
            "at": now,
            "expires": now + self.limits.retention_s,
        }
        await self.store.put(HOLDINGS, _key(owner, digest), doc)

    async def renew(self, owner: str, digest: str) -> None:
        """A start names the object again: its retention starts over."""
        key = _key(owner, digest)
        doc = await self.store.get(HOLDINGS, key)
        if doc is not None:
            await self.store.put(HOLDINGS, key, doc | {"expires": self.clock.now() + self.limits.retention_s})

    async def fetched(self, owner: str, digest: str) -> None:
        """The requester read the object to its end: keep it only for the grace period."""
        key = _key(owner, digest)
        doc = await self.store.get(HOLDINGS, key)
        if doc is None:
            return
        soon = self.clock.now() + self.limits.fetched_grace_s
        if float(doc.get("expires", 0)) > soon:
            await self.store.put(HOLDINGS, key, doc | {"expires": soon})

    async def sweep(self, in_use: Collection[str] = ()) -> int:
        """Drop expired holdings and the objects no one holds any more; returns how many objects went."""
        now = self.clock.now()
        rows = await self._rows()
        expired = [r for r in rows if float(r.get("expires", 0)) <= now]
        held = {str(r["digest"]) for r in rows if float(r.get("expires", 0)) > now}
        removed = 0
        for row in expired:
            owner, digest = str(row["owner"]), str(row["digest"])
            if digest in in_use:  # a live allocation reads it: the holding ends at a sweep after it
                continue
            await self.store.delete(HOLDINGS, _key(owner, digest))
            await self.owners.remove(owner, digest)
            if digest in held:  # someone else still holds it
                continue
            held.add(digest)  # deleted below: a second expired row of it must not count it again
            try:
                await self.cas.delete(self.cas.ref_for(digest, None))
                removed += 1
            except OSError:
                log.exception("could not remove sha256:%s from the CAS", digest)
        return removed


__all__ = ["HOLDINGS", "StoreLedger", "StoreLimits"]
