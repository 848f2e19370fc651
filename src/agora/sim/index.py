"""Candidate sampling: providers bucketed by free cores, so a placement never scans every provider.

Each online provider sits in the bucket of its free whole cores (kept up to date on every commit and
release). A job asking for `c` cores draws from the buckets with at least `c` free cores only, and at
most `sample` providers of them, uniformly (Nomad's bounded candidate sample; Sparrow's power of d
choices): the matcher then runs its full hard filter and score on that sample. `sample = 0` hands it
every eligible provider, the reference the bench compares placement quality against.

Buckets are indexable sets (a list plus positions, swap-remove) so a draw costs O(sample + buckets),
and their order depends only on the sequence of updates: the same run draws the same candidates.
"""

from __future__ import annotations

import random


class _Bucket:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.pos: dict[str, int] = {}

    def add(self, x: str) -> None:
        if x not in self.pos:
            self.pos[x] = len(self.items)
            self.items.append(x)

    def discard(self, x: str) -> None:
        i = self.pos.pop(x, None)
        if i is None:
            return
        last = self.items.pop()
        if i < len(self.items):
            self.items[i] = last
            self.pos[last] = i


class CandidateIndex:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._buckets: dict[int, _Bucket] = {}
        self._where: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, provider: str) -> bool:
        return provider in self._where

    def update(self, provider: str, free_cores: int) -> None:
        """(Re)file an online provider under its free cores."""
        old = self._where.get(provider)
        if old == free_cores:
            return
        if old is not None:
            self._buckets[old].discard(provider)
        self._buckets.setdefault(free_cores, _Bucket()).add(provider)
        self._where[provider] = free_cores

    def remove(self, provider: str) -> None:
        old = self._where.pop(provider, None)
        if old is not None:
            self._buckets[old].discard(provider)

    def free_cores(self, provider: str) -> int | None:
        return self._where.get(provider)

    def candidates(self, cores: int, sample: int) -> list[str]:
        """Up to `sample` providers with at least `cores` free cores (0: all of them), in a seeded draw."""
        eligible = [b for k, b in sorted(self._buckets.items()) if k >= cores and b.items]
        total = sum(len(b.items) for b in eligible)
        if sample <= 0 or total <= sample:
            return [x for b in eligible for x in b.items]
        out = []
        buckets = iter(eligible)  # the sorted draws walk the buckets once, in order
        b = next(buckets)
        base = 0
        for i in sorted(self._rng.sample(range(total), sample)):
            while i - base >= len(b.items):
                base += len(b.items)
                b = next(buckets)
            out.append(b.items[i - base])
        return out

    def pick_any(self) -> str | None:
        """One online provider at random (churn picks its victim with it)."""
        everyone = [b for _, b in sorted(self._buckets.items()) if b.items]
        total = sum(len(b.items) for b in everyone)
        if not total:
            return None
        i = self._rng.randrange(total)
        for b in everyone:
            if i < len(b.items):
                return b.items[i]
            i -= len(b.items)
        return None


__all__ = ["CandidateIndex"]
