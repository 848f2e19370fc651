"""Shared principals and a ready-made chain for the ucan tests (all in-memory: the package is pure)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from agora.identity import Keypair
from agora.ucan import Delegation, delegate

NOW = 1_760_000_000


@dataclass
class Chain:
    """alice (the subject) -> bob -> carol; carol invokes on alice."""

    alice: Keypair
    bob: Keypair
    carol: Keypair
    root: Delegation
    leaf: Delegation

    @property
    def proofs(self) -> dict:
        return {self.root.cid: self.root, self.leaf.cid: self.leaf}

    @property
    def prf(self) -> list:
        return [self.root.cid, self.leaf.cid]


def _seeded(n: int) -> Keypair:
    return Keypair.from_seed(bytes([n]) * 32)


@pytest.fixture(scope="session")
def chain() -> Chain:
    alice, bob, carol = _seeded(1), _seeded(2), _seeded(3)
    root = delegate(alice, aud=bob.did, sub=alice.did, cmd="/agora", pol=[["==", ".kind", "job"]], exp=NOW + 3600)
    leaf = delegate(bob, aud=carol.did, sub=alice.did, cmd="/agora/job", pol=[["<=", ".price", 100]], exp=NOW + 3600)
    return Chain(alice, bob, carol, root, leaf)


@pytest.fixture(scope="session")
def mallory() -> Keypair:
    return _seeded(66)
