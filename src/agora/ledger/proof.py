"""Slashing on proof (pure: no I/O): what a requester's slash claim must prove before the hub slashes a stake.

A claim carries the **signed usage receipts themselves** (not CIDs: a CID proves nothing the hub can check):
the accused provider's receipt and `agree` (at least `MIN_AGREEING`) receipts of the same unit signed by
other providers. `check_claim` verifies, on the bytes received:

1. every receipt's provider signature (`UsageReceipt.open`: `receipt_invalid` for a forged one);
2. they all name the same requester (the claimant: only the requester that commissioned the unit may claim
   it, the operator on its behalf), the same job and the same task, on distinct allocations;
3. every one is a clean end (`exited`, exit 0): a failed run is no answer to compare;
4. the agreeing receipts come from `agree` distinct providers, none of them the accused, and signed the same
   output set (path, sha256, size of every output: what redundancy compares, `orchestrator/replicas.py`);
5. the accused signed a different output set.

Anything else is `slash_unproven`, naming the check. What such a proof shows: `agree` providers signed one
answer and the accused signed another for the same work. It cannot show which is right on its own; it relies
on the agreeing providers being distinct parties (a requester that runs its own "agreeing" providers could
frame an honest one: docs/ledger.md "Slashing" says why the slashed stake goes to `fees`, so a requester
gains nothing from a slash, and what else is and is not provable).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from agora.errors import AgoraError
from agora.wire.usage import UsageReceipt

MIN_AGREEING = 2  # one receipt against one is a disagreement, not a proof: who lied is unknown
MAX_AGREEING = 16


def _unproven(message: str) -> AgoraError:
    return AgoraError("slash_unproven", f"slash claim: {message}")


def output_set(receipt: UsageReceipt) -> tuple[tuple[str, str, int], ...]:
    """What receipts are compared on: (path, sha256, size) of every output file, in path order."""
    return tuple(sorted((o.path, o.sha256, o.size) for o in receipt.outputs))


@dataclass(frozen=True)
class SlashProof:
    """A checked claim: who is slashed, for which unit, on which receipts (the accused's first)."""

    accused: str
    requester: str
    job: str
    task: str
    receipts: tuple[UsageReceipt, ...]

    @property
    def cids(self) -> tuple[str, ...]:
        return tuple(str(r.cid) for r in self.receipts)

    @property
    def agreeing(self) -> tuple[str, ...]:
        return tuple(r.provider for r in self.receipts[1:])

    @property
    def idem(self) -> str:
        """One slash per (job, unit, provider), whatever receipts a retry carries."""
        digest = hashlib.sha256(json.dumps([self.job, self.task, self.accused]).encode()).hexdigest()
        return f"slash:{digest[:40]}"


def check_claim(accused: bytes, agreeing: Sequence[bytes], *, claimant: str, operator: bool = False) -> SlashProof:
    """The proof in a slash claim, or `slash_unproven`/`receipt_invalid` naming what does not hold."""
    if not isinstance(agreeing, Sequence) or not MIN_AGREEING <= len(agreeing) <= MAX_AGREEING:
        raise _unproven(f"needs {MIN_AGREEING}..{MAX_AGREEING} agreeing receipts, got {len(agreeing)}")
    bad = UsageReceipt.open(bytes(accused))
    good = [UsageReceipt.open(bytes(raw)) for raw in agreeing]
    everyone = [bad, *good]
    if not operator and bad.requester != claimant:
        raise _unproven(f"the receipts are for requester {bad.requester}, not the claimant {claimant}")
    for r in good:
        if (r.requester, r.job, r.task) != (bad.requester, bad.job, bad.task):
            raise _unproven(
                f"receipt {r.cid} is for {r.requester} job {r.job} task {r.task}, "
                f"not {bad.requester} job {bad.job} task {bad.task}"
            )
    if len({r.alloc_id for r in everyone}) != len(everyone):
        raise _unproven("two receipts name the same allocation")
    for r in everyone:
        if not r.ok:
            raise _unproven(f"receipt {r.cid} of {r.provider} is not a clean end ({r.reason}, exit {r.exit_code})")
    providers = [r.provider for r in good]
    if bad.provider in providers:
        raise _unproven(f"the accused {bad.provider} is among the agreeing providers")
    if len(set(providers)) != len(providers):
        raise _unproven("the agreeing receipts must come from distinct providers")
    answer = output_set(good[0])
    if any(output_set(r) != answer for r in good[1:]):
        raise _unproven("the agreeing receipts do not sign the same outputs")
    if output_set(bad) == answer:
        raise _unproven(f"the accused {bad.provider} signed the same outputs as the others: nothing contradicts it")
    return SlashProof(bad.provider, bad.requester, bad.job, bad.task, tuple(everyone))


__all__ = ["MAX_AGREEING", "MIN_AGREEING", "SlashProof", "check_claim", "output_set"]
