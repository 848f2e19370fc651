"""Trainers in numpy (no deep-learning framework needed), in the shape of Flower's NumPyClient.

A trainer is an object with

    get_parameters(config) -> list[ndarray]
    fit(parameters, config) -> (parameters, num_examples, metrics)
    evaluate(parameters, config) -> (loss, num_examples, metrics)

which is exactly what a Flower `NumPyClient` subclass defines, so a Flower user's client class ports
unchanged as a custom trainer (`load_custom`: a Python file defining `client_fn(x, y, x_test, y_test,
config)` or a class `Client` built with those arrays). The built-ins:

- `SoftmaxRegression`: multinomial logistic regression (W: features x classes, b: classes), mini-batch
  SGD, optional FedProx proximal term `mu/2 ||w - w_global||^2`.
- `MLP`: one hidden ReLU layer (`hidden` units), the same loss and optimiser.

Pure compute: the data arrive as arrays; seeds come from the config; nothing here touches files or
the network (the sandbox runner in `fl/worker.py` loads the data and calls these).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]
Params = list[Array]


class Trainer(Protocol):
    def get_parameters(self, config: Mapping[str, Any]) -> Params: ...

    def fit(self, parameters: Params, config: Mapping[str, Any]) -> tuple[Params, int, dict[str, float]]: ...

    def evaluate(self, parameters: Params, config: Mapping[str, Any]) -> tuple[float, int, dict[str, float]]: ...


def _softmax(z: Array) -> Array:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: Array = e / e.sum(axis=1, keepdims=True)
    return out


def _loss_acc(p: Array, y: Array) -> tuple[float, float]:
    if len(y) == 0:
        return 0.0, 0.0
    loss = float(-np.mean(np.log(p[np.arange(len(y)), y] + 1e-12)))
    acc = float(np.mean(p.argmax(axis=1) == y))
    return loss, acc


class _Base:
    """Shared SGD loop; subclasses define `init`, `forward` and `grads`."""

    def __init__(
        self,
        x: Array,
        y: Array,
        *,
        classes: int,
        x_test: Array | None = None,
        y_test: Array | None = None,
        hyper: Mapping[str, Any] | None = None,
    ) -> None:
        self.x, self.y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64)
        self.x_test = self.x if x_test is None else np.asarray(x_test, dtype=np.float64)
        self.y_test = self.y if y_test is None else np.asarray(y_test, dtype=np.int64)
        self.features, self.classes = self.x.shape[1], classes
        h = dict(hyper or {})
        self.lr = float(h.get("learning_rate", 0.1))
        self.epochs = int(h.get("local_epochs", 1))
        self.batch = int(h.get("batch_size", 32))
        self.hidden = int(h.get("hidden", 32))
        self.mu = float(h.get("proximal_mu", 0.0))
        self.seed = int(h.get("seed", 0))

    def init(self, rng: np.random.Generator) -> Params:
        raise NotImplementedError

    def forward(self, params: Params, x: Array) -> Array:
        raise NotImplementedError

    def grads(self, params: Params, x: Array, y: Array) -> Params:
        raise NotImplementedError

    def get_parameters(self, config: Mapping[str, Any]) -> Params:
        return self.init(np.random.default_rng(self.seed))

    def fit(self, parameters: Params, config: Mapping[str, Any]) -> tuple[Params, int, dict[str, float]]:
        start = [np.array(p, dtype=np.float64) for p in parameters]
        params = [p.copy() for p in start]
        rnd = int(config.get("round", 0))
        rng = np.random.default_rng(self.seed * 100_003 + rnd)
        n = len(self.y)
        for _ in range(self.epochs):
            order = rng.permutation(n)
            for i in range(0, n, self.batch):
                idx = order[i : i + self.batch]
                g = self.grads(params, self.x[idx], self.y[idx])
                for j, (p, gj) in enumerate(zip(params, g, strict=True)):
                    if self.mu:
                        gj = gj + self.mu * (p - start[j])
                    p -= self.lr * gj
        loss, acc = _loss_acc(self.forward(params, self.x), self.y)
        return params, n, {"train_loss": loss, "train_accuracy": acc}

    def evaluate(self, parameters: Params, config: Mapping[str, Any]) -> tuple[float, int, dict[str, float]]:
        loss, acc = _loss_acc(self.forward(parameters, self.x_test), self.y_test)
        return loss, len(self.y_test), {"accuracy": acc}


class SoftmaxRegression(_Base):
    def init(self, rng: np.random.Generator) -> Params:
        return [np.zeros((self.features, self.classes)), np.zeros(self.classes)]

    def forward(self, params: Params, x: Array) -> Array:
        return _softmax(x @ params[0] + params[1])

    def grads(self, params: Params, x: Array, y: Array) -> Params:
        p = self.forward(params, x)
        p[np.arange(len(y)), y] -= 1.0
        p /= max(len(y), 1)
        return [x.T @ p, p.sum(axis=0)]


class MLP(_Base):
    def init(self, rng: np.random.Generator) -> Params:
        s1 = math.sqrt(2.0 / self.features)
        return [
            rng.normal(0.0, s1, (self.features, self.hidden)),
            np.zeros(self.hidden),
            rng.normal(0.0, math.sqrt(1.0 / self.hidden), (self.hidden, self.classes)),
            np.zeros(self.classes),
        ]

    def forward(self, params: Params, x: Array) -> Array:
        h = np.maximum(x @ params[0] + params[1], 0.0)
        return _softmax(h @ params[2] + params[3])

    def grads(self, params: Params, x: Array, y: Array) -> Params:
        pre = x @ params[0] + params[1]
        h = np.maximum(pre, 0.0)
        p = _softmax(h @ params[2] + params[3])
        p[np.arange(len(y)), y] -= 1.0
        p /= max(len(y), 1)
        dh = (p @ params[2].T) * (pre > 0)
        return [x.T @ dh, dh.sum(axis=0), h.T @ p, p.sum(axis=0)]


BUILTIN: dict[str, type[_Base]] = {"softmax": SoftmaxRegression, "mlp": MLP}


def load_custom(
    source: str,
    x: Array,
    y: Array,
    *,
    x_test: Array,
    y_test: Array,
    config: Mapping[str, Any],
) -> Trainer:
    """A custom trainer from its Python source: `client_fn(x, y, x_test, y_test, config)` or `Client(...)`.

    Runs the source in this process: call it only inside the sandbox (`fl/worker.py`), never in a node."""
    namespace: dict[str, Any] = {"__name__": "agora_custom_trainer"}
    exec(compile(source, "custom_trainer.py", "exec"), namespace)
    factory = namespace.get("client_fn") or namespace.get("Client")
    if not callable(factory):
        raise ValueError("a custom trainer defines client_fn(x, y, x_test, y_test, config) or a class Client")
    client = factory(x, y, x_test, y_test, dict(config))
    for name in ("get_parameters", "fit", "evaluate"):
        if not callable(getattr(client, name, None)):
            raise ValueError(f"the custom trainer's client has no {name}()")
    trainer: Trainer = client
    return trainer


def flatten(params: Sequence[Array]) -> Array:
    return np.concatenate([np.ravel(p) for p in params]) if params else np.zeros(0)


__all__ = ["BUILTIN", "MLP", "Params", "SoftmaxRegression", "Trainer", "flatten", "load_custom"]
