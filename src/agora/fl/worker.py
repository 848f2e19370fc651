"""The trainer process that runs inside the sandbox (`python -m agora.fl.worker`), warm for one contract.

It reads its data set once (mounted read-only at the path it is told), keeps a held-out part for
federated evaluation, builds the trainer (a built-in, or the custom source where the offer allows it) and
then answers `fit` requests until told to stop or its stdin closes. Frames on stdin/stdout are a 4-byte
big-endian length and the bytes; a request is a JSON frame (`{"op": "fit", "round": n}`) followed by the
global weights (an encoded update); an answer is a JSON frame (`ok`, `n`, `metrics`, or `error`) followed,
when ok, by the new weights. The real stdout is kept for frames only: whatever the trainer prints goes to
stderr, so a custom trainer cannot forge a frame.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

MAX_FRAME = 256 * 1024 * 1024


def read_frame(stream: BinaryIO) -> bytes | None:
    head = stream.read(4)
    if len(head) < 4:
        return None
    size = int.from_bytes(head, "big")
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes is over the limit")
    data = stream.read(size)
    if len(data) < size:
        return None
    return data


def write_frame(stream: BinaryIO, data: bytes) -> None:
    stream.write(len(data).to_bytes(4, "big") + data)
    stream.flush()


def _trainer(init: dict[str, Any]) -> Any:
    from agora.fl.datasets import load_arrays
    from agora.fl.trainers import BUILTIN, load_custom
    from agora.models.dataset import DatasetSchema

    schema = DatasetSchema.from_dict(init["schema"])
    x, y = load_arrays(Path(init["data"]), schema)
    rng = np.random.default_rng(int(init.get("seed", 0)))
    held = int(len(y) * float(init.get("eval_fraction", 0.2)))
    order = rng.permutation(len(y)) if held else np.arange(len(y))
    test, train = order[:held], order[held:]
    classes = len(schema.classes) or int(y.max()) + 1
    hyper = init.get("hyper", {})
    if init["trainer"] == "custom":
        config = {"classes": classes, **hyper}
        return load_custom(init["code"], x[train], y[train], x_test=x[test], y_test=y[test], config=config)
    cls = BUILTIN[init["trainer"]]
    return cls(x[train], y[train], classes=classes, x_test=x[test], y_test=y[test], hyper=hyper)


def serve(inp: BinaryIO, out: BinaryIO) -> None:
    from agora.fl.strategies import decode, encode

    first = read_frame(inp)
    if first is None:
        return
    try:
        trainer = _trainer(json.loads(first))
    except Exception as exc:  # the owner sees why the trainer could not start
        write_frame(out, json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}).encode())
        return
    write_frame(out, json.dumps({"ok": True}).encode())
    while True:
        req_raw = read_frame(inp)
        if req_raw is None:
            return
        req = json.loads(req_raw)
        if req.get("op") != "fit":
            return
        weights = read_frame(inp)
        if weights is None:
            return
        try:
            params, n, metrics = trainer.fit(decode(weights), {"round": int(req["round"])})
            loss, n_eval, ev = trainer.evaluate(params, {"round": int(req["round"])})
            payload = encode(params)
            answer = {
                "ok": True,
                "n": int(n),
                "metrics": {
                    **{k: float(v) for k, v in metrics.items()},
                    "eval_loss": float(loss),
                    **{f"eval_{k}": float(v) for k, v in ev.items()},
                    "eval_n": float(n_eval),
                },
            }
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            write_frame(out, json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}).encode())
            continue
        write_frame(out, json.dumps(answer).encode())
        write_frame(out, payload)


def main() -> None:
    frames = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # prints of the trainer go to stderr, never the frames
    serve(sys.stdin.buffer, frames)


if __name__ == "__main__":
    main()
