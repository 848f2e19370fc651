"""The replicas of a redundant unit as data (pure: no I/O): what each one is, how results compare.

- `Replica`: one run of a unit on one provider (its placement, allocation, verified receipt, verdict);
  `to_doc` is what `unit.replicas` holds (`agora job status` / `why`).
- `output_set` / `fingerprint`: what replicas are compared on (path, sha256, size of every output file in
  the signed receipt) and its short name (`digest`).
- `tally`: the first output set `agree` replicas signed is the answer; `impossible` once none can be.
- `verification_needs_market`, `replicas_summary`, `replica_orphans`: the runner's small needs (the error of
  a `verification` block with `--node`, the line of `why`, the allocations to cancel after a restart).

`redundancy.py` drives them (placement, starts, follows, the end).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agora.errors import AgoraError
from agora.models.job import Verification
from agora.orchestrator.placement import Placed
from agora.orchestrator.provider import ProviderLink
from agora.orchestrator.record import UnitRecord
from agora.wire.usage import UsageReceipt

# replica states
R_COMMITTED = "committed"
R_RUNNING = "running"
R_COMPLETED = "completed"
R_FAILED = "failed"
R_LOST = "lost"  # failed in a way the retry policy retries: its slot is placed again elsewhere
R_CANCELLED = "cancelled"
REPLICA_ENDED = frozenset({R_COMPLETED, R_FAILED, R_LOST, R_CANCELLED})

OutputSet = tuple[tuple[str, str, int], ...]


def output_set(receipt: UsageReceipt) -> OutputSet:
    """What replicas are compared on: (path, sha256, size) of every output file, in path order."""
    return tuple(sorted((o.path, o.sha256, o.size) for o in receipt.outputs))


def fingerprint(outputs: OutputSet) -> str:
    """A short name of an output set (equal sets, equal names)."""
    data = json.dumps([list(o) for o in outputs], separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()[:16]


@dataclass(frozen=True)
class Tally:
    """Where the comparison stands: `agreed` (the answer is `groups[answer]`), `undecided` (more results may
    still decide it) or `impossible` (no group can reach `agree` any more)."""

    outcome: str
    groups: dict[str, tuple[int, ...]]  # fingerprint -> slots with that output set, in order of arrival
    answer: str | None = None

    @property
    def disagree(self) -> bool:
        """Completed replicas signed different output sets."""
        return len(self.groups) > 1


def tally(results: Sequence[tuple[int, str]], agree: int, still_possible: int) -> Tally:
    """Compare the (slot, fingerprint) of each completed replica, in the order they completed: the first
    group with `agree` members is the answer; with `still_possible` more results to come at most, a
    result is impossible when even the largest group cannot reach `agree`."""
    groups: dict[str, list[int]] = {}
    for slot, fp in results:
        groups.setdefault(fp, []).append(slot)
        if len(groups[fp]) >= agree:
            return Tally("agreed", {f: tuple(s) for f, s in groups.items()}, fp)
    frozen = {f: tuple(s) for f, s in groups.items()}
    largest = max((len(s) for s in groups.values()), default=0)
    return Tally("impossible" if largest + still_possible < agree else "undecided", frozen)


@dataclass
class Replica:
    """One run of the unit on one provider."""

    slot: int  # 1..replicas: which replica of the unit (a slot placed again keeps its number)
    placed: Placed
    state: str = R_COMMITTED
    alloc_id: str | None = None
    link: ProviderLink | None = None
    receipt: UsageReceipt | None = None
    error: dict[str, Any] | None = None
    verdict: str | None = None  # agreed | disagreed (None: not compared: it did not complete)
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def provider(self) -> str:
        return self.placed.provider

    def key(self, unit_key: str) -> str:
        """What its log lines and its allocation go by in the job (`<unit>~r<slot>`)."""
        return replica_key(unit_key, self.slot)

    @property
    def digest(self) -> str:
        """The short name of its output set (of an empty one before it completed)."""
        return fingerprint(self.outputs)

    @property
    def outputs(self) -> OutputSet:
        return output_set(self.receipt) if self.receipt is not None else ()

    def to_doc(self) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "provider": self.provider,
            "price": self.placed.bid.price,
            "state": self.state,
            "alloc_id": self.alloc_id,
            "receipt": str(self.receipt.cid) if self.receipt is not None else None,
            "outputs": [{"path": p, "sha256": h, "size": n} for p, h, n in self.outputs],
            "digest": self.digest if self.receipt is not None and self.state == R_COMPLETED else None,
            "verdict": self.verdict,
            "error": self.error,
            "history": list(self.history),
        }


def replica_key(unit_key: str, slot: int) -> str:
    """What a replica's log lines and its allocation go by in the job (`<unit>~r<slot>`)."""
    return f"{unit_key}~r{slot}"


def receipt_cid(rep: Replica) -> str | None:
    return str(rep.receipt.cid) if rep.receipt is not None else None


def verification_needs_market(verification: Verification, node: str | None) -> AgoraError:
    """The error of a job with a `verification` block that the market does not place (`--node`)."""
    return AgoraError(
        "job_spec_invalid",
        f"verification runs each unit on {verification.replicas} distinct providers the market picks; "
        f"--node {node} names one",
        hint="Leave --node out and let the market place the replicas, or remove the verification block.",
        details={
            "errors": [
                {
                    "path": "verification",
                    "expected": "a job placed by the market (no --node)",
                    "got": verification.to_dict(),
                }
            ]
        },
    )


def replicas_summary(replicas: Sequence[dict[str, Any]]) -> str:
    """`; replicas: r1 <did> completed agreed, ...` for `job why`'s one-line summary ("" without replicas)."""
    if not replicas:
        return ""
    parts = [
        f"r{r['slot']} {r['provider']} {r['state']}" + (f" {r['verdict']}" if r.get("verdict") else "")
        for r in replicas
    ]
    return "; replicas: " + ", ".join(parts)


def replica_orphans(job_id: str, unit: UnitRecord) -> list[tuple[str, str, str, str]]:
    """(job, replica key, provider, allocation) of each replica that may still run after a restart."""
    return [
        (job_id, replica_key(unit.key, int(r["slot"])), str(r["provider"]), str(r["alloc_id"]))
        for r in unit.replicas
        if r.get("alloc_id") and r.get("state") not in REPLICA_ENDED
    ]


__all__ = [
    "REPLICA_ENDED",
    "R_CANCELLED",
    "R_COMMITTED",
    "R_COMPLETED",
    "R_FAILED",
    "R_LOST",
    "R_RUNNING",
    "OutputSet",
    "Replica",
    "Tally",
    "fingerprint",
    "output_set",
    "receipt_cid",
    "replica_key",
    "replica_orphans",
    "replicas_summary",
    "tally",
    "verification_needs_market",
]
