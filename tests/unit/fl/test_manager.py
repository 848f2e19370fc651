"""The manager's pieces that need no sandbox: a rejected update becomes a `failure` in the provider's trust
record (citing contract and run), and the initial weights have the model's shapes."""

from __future__ import annotations

from typing import Any

from agora.errors import AgoraError
from agora.fl.manager import initial_params, late_evidence, rejection_evidence
from agora.fl.rounds import Participant

from .helpers import spec


class Recorder:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, str], str]] = []

    async def record(self, provider: str, kind: str, cites: dict[str, str], detail: str = "") -> None:
        self.records.append((provider, kind, cites, detail))


async def test_a_rejected_update_is_trust_evidence() -> None:
    trust = Recorder()
    on_rejected = rejection_evidence(trust, "run-1")
    p = Participant("did:key:z6MkProvider", "run-1-c0", "data-1", 5, link=Any)  # type: ignore[arg-type]
    err = AgoraError("training_update_rejected", "NaN", details={"reason": "not_finite"})
    await on_rejected(p, 2, err)
    assert trust.records == [
        ("did:key:z6MkProvider", "failure", {"contract": "run-1-c0", "job": "run-1"}, "round 2: not_finite")
    ]


async def test_a_missed_round_is_late_evidence() -> None:
    trust = Recorder()
    p = Participant("did:key:z6MkProvider", "run-1-c0", "data-1", 5, link=Any)  # type: ignore[arg-type]
    await late_evidence(trust, "run-1")(p, 3, "deadline")
    assert trust.records == [
        ("did:key:z6MkProvider", "late", {"contract": "run-1-c0", "job": "run-1"}, "round 3: deadline")
    ]


def test_initial_weights_have_the_model_shapes() -> None:
    assert [a.shape for a in initial_params(spec())] == [(3, 2), (2,)]
    mlp = initial_params(spec(trainer="mlp", hyper={"hidden": 4}))
    assert [a.shape for a in mlp] == [(3, 4), (4,), (4, 2), (2,)]
