from __future__ import annotations

from agora.devnet.demo_training import steps


def test_a_timeline_shows_a_run_of_the_same_step_once_with_its_count() -> None:
    events = ["created", "bound_to_round", "bound_to_round", "bound_to_round", "escrow_locked", "running"]
    events += ["update_released", "update_late", "update_released", "delivered"]
    assert steps([{"event": e} for e in events]) == [
        "created",
        "bound_to_round ×3",
        "escrow_locked",
        "running",
        "update_released",
        "update_late",
        "update_released",
        "delivered",
    ]
    assert steps([]) == []
