"""The numpy trainers learn (softmax regression and the MLP reach a useful accuracy on load_digits), FedProx
pulls towards the global model, and a Flower-style NumPyClient file ports as a custom trainer."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from agora.fl.trainers import MLP, SoftmaxRegression, load_custom


def digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return x / 16.0, y


def test_softmax_learns_digits() -> None:
    x, y = digits()
    t = SoftmaxRegression(
        x[:1200],
        y[:1200],
        classes=10,
        x_test=x[1200:],
        y_test=y[1200:],
        hyper={"learning_rate": 0.5, "local_epochs": 5},
    )
    params, n, metrics = t.fit(t.get_parameters({}), {"round": 1})
    _loss, m, ev = t.evaluate(params, {})
    assert n == 1200 and m == len(y) - 1200 and ev["accuracy"] > 0.85 and metrics["train_loss"] < 1.0


def test_mlp_learns_digits() -> None:
    x, y = digits()
    t = MLP(
        x[:1200],
        y[:1200],
        classes=10,
        x_test=x[1200:],
        y_test=y[1200:],
        hyper={"learning_rate": 0.3, "local_epochs": 5, "hidden": 32},
    )
    params, _, _ = t.fit(t.get_parameters({}), {"round": 1})
    assert [p.shape for p in params] == [(64, 32), (32,), (32, 10), (10,)]
    assert t.evaluate(params, {})[2]["accuracy"] > 0.85


def test_fedprox_stays_closer_to_the_global_model() -> None:
    x, y = digits()
    plain = SoftmaxRegression(x[:300], y[:300], classes=10, hyper={"learning_rate": 0.5, "local_epochs": 3})
    prox = SoftmaxRegression(
        x[:300], y[:300], classes=10, hyper={"learning_rate": 0.5, "local_epochs": 3, "proximal_mu": 1.0}
    )
    start = plain.get_parameters({})
    far = np.linalg.norm(plain.fit(start, {})[0][0])
    near = np.linalg.norm(prox.fit(start, {})[0][0])
    assert near < far


FLOWER_CLIENT = """
import numpy as np

class Client:  # a Flower NumPyClient subclass, minus the import
    def __init__(self, x, y, x_test, y_test, config):
        self.x, self.y = x, y
    def get_parameters(self, config):
        return [np.zeros(self.x.shape[1])]
    def fit(self, parameters, config):
        return [parameters[0] + self.x.mean(axis=0)], len(self.y), {"custom": 1.0}
    def evaluate(self, parameters, config):
        return float(np.abs(parameters[0]).sum()), len(self.y), {"accuracy": 0.5}
"""


def test_a_flower_style_client_ports_as_a_custom_trainer() -> None:
    x = np.ones((4, 3))
    t = load_custom(FLOWER_CLIENT, x, np.zeros(4, dtype=int), x_test=x, y_test=np.zeros(4, dtype=int), config={})
    params, n, metrics = t.fit(t.get_parameters({}), {})
    assert n == 4 and metrics == {"custom": 1.0} and np.allclose(params[0], 1.0)
    assert t.evaluate(params, {})[0] == 3.0
