"""Strategies (FedAvg weighted by examples, median, trimmed mean against a poisoned update), the update
checks (shape, NaN, norm: rejected with the reason), clipping and noise, the update's bytes."""

from __future__ import annotations

import numpy as np
import pytest

from agora.errors import AgoraError
from agora.fl.strategies import Update, add_noise, check_update, clip, decode, encode, strategy


def arrs(v: float) -> list[np.ndarray]:
    return [np.full((2, 2), v), np.full(3, v)]


def test_fedavg_weights_by_examples() -> None:
    out = strategy("fedavg").aggregate([Update(arrs(1.0), 1), Update(arrs(4.0), 3)])
    assert np.allclose(out[0], 3.25) and np.allclose(out[1], 3.25)


def test_robust_strategies_resist_one_poisoned_update() -> None:
    ups = [Update(arrs(1.0), 10), Update(arrs(1.2), 10), Update(arrs(0.8), 10), Update(arrs(1e6), 10)]
    assert np.allclose(strategy("median").aggregate(ups)[0], 1.1)
    trimmed = strategy("trimmed_mean", trim_ratio=0.25).aggregate(ups)
    assert np.allclose(trimmed[0], 1.1)
    assert strategy("fedavg").aggregate(ups)[0][0, 0] > 1000


@pytest.mark.parametrize(
    ("update", "reason"),
    [
        ([np.zeros((2, 3)), np.zeros(3)], "shape"),
        ([np.zeros((2, 2))], "shape"),
        ([np.full((2, 2), np.nan), np.zeros(3)], "not_finite"),
        ([np.full((2, 2), 100.0), np.zeros(3)], "norm"),
    ],
)
def test_bad_updates_are_rejected_with_the_reason(update: list[np.ndarray], reason: str) -> None:
    with pytest.raises(AgoraError) as err:
        check_update(update, arrs(0.0), max_norm=10.0)
    assert err.value.code == "training_update_rejected" and err.value.details["reason"] == reason


def test_a_good_update_passes_with_its_norm() -> None:
    assert check_update(arrs(1.0), arrs(0.0), max_norm=10.0) == pytest.approx(np.sqrt(7))


def test_clip_bounds_the_distance_and_noise_is_seeded() -> None:
    clipped = clip(arrs(10.0), arrs(0.0), 1.0)
    norm = np.linalg.norm(np.concatenate([a.ravel() for a in clipped]))
    assert norm == pytest.approx(1.0)
    a = add_noise(arrs(0.0), clip_norm=1.0, noise_multiplier=1.0, n=2, seed=7)
    b = add_noise(arrs(0.0), clip_norm=1.0, noise_multiplier=1.0, n=2, seed=7)
    assert np.array_equal(a[0], b[0]) and not np.allclose(a[0], 0.0)
    assert add_noise(arrs(0.0), clip_norm=1.0, noise_multiplier=0.0, n=2, seed=7)[0].sum() == 0


def test_update_bytes_round_trip_and_refuse_garbage() -> None:
    data = encode(arrs(2.0))
    assert all(np.array_equal(x, y) for x, y in zip(decode(data), arrs(2.0), strict=True))
    with pytest.raises(AgoraError) as err:
        decode(b"not an npz")
    assert err.value.details["reason"] == "shape"
