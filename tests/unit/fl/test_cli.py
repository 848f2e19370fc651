"""`agora dataset add|list` and `agora train start|status` against a mock node (httpx.MockTransport): the
requests they send and what they print (the unmatched reasons with counts, rounds, pending summary)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from agora.cli import dataset as dataset_cli
from agora.cli import train as train_cli
from agora.cli.main import app
from agora.client import AgoraClient

runner = CliRunner()
OFFER = {
    "offer_id": "data-1",
    "name": "part0",
    "format": "csv",
    "rows": 300,
    "schema": {"features": ["a", "b"], "label": "y", "classes": []},
    "tags": ["digits"],
    "licence": "MIT",
    "price_per_update": 2,
    "custom_code": False,
    "content_hash": "sha256:" + "0" * 64,
}
RUN = {
    "run_id": "run-1",
    "state": "completed",
    "reason": None,
    "rounds": [
        {
            "round": 1,
            "attempt": 1,
            "accepted": ["p"],
            "late": [],
            "rejected": [],
            "wall_s": 0.1,
            "metrics": {"train_loss": 0.5, "eval_accuracy": 0.91},
        },
    ],
    "providers": [{"contract_id": "run-1-c0", "delivered": [1], "late": [], "rejected": [], "paid": 2}],
}


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, Any]]:
    calls: list[tuple[str, str, Any]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        calls.append((request.method, request.url.path, body))
        if request.url.path == "/datasets" and request.method == "POST":
            return httpx.Response(201, json=OFFER)
        if request.url.path == "/datasets":
            return httpx.Response(200, json={"datasets": [OFFER]})
        if request.url.path == "/training/runs":
            if body.get("data_tags") == ["x-ray"]:
                return httpx.Response(
                    201, json={"run_id": "run-2", "state": "unmatched", "match": {"counts": {"data_tags_missing": 3}}}
                )
            return httpx.Response(201, json={**RUN, "state": "running"})
        if request.url.path == "/training/runs/run-1":
            return httpx.Response(200, json=RUN)
        if request.url.path == "/training/status":
            return httpx.Response(200, json={"runs": [RUN], "pending": {"contracts": 0, "escrow_outstanding": 0}})
        return httpx.Response(
            404, json={"error": {"code": "not_found", "message": "no", "hint": "", "retryable": False}}
        )

    class Mocked(AgoraClient):
        def __init__(self, base_url: str | None = None, **kw: Any) -> None:
            super().__init__("http://127.0.0.1:1", transport=httpx.MockTransport(handle))

    monkeypatch.setattr(dataset_cli, "AgoraClient", Mocked)
    monkeypatch.setattr(train_cli, "AgoraClient", Mocked)
    return calls


def test_dataset_add_sends_the_offer_and_prints_it(seen: list[tuple[str, str, Any]], tmp_path: Path) -> None:
    out = runner.invoke(
        app,
        [
            "dataset",
            "add",
            str(tmp_path / "d.csv"),
            "--tags",
            "digits, images",
            "--licence",
            "MIT",
            "--price-per-update",
            "2",
        ],
    )
    assert out.exit_code == 0, out.output
    method, path, body = seen[0]
    assert (method, path) == ("POST", "/datasets") and body["tags"] == ["digits", "images"]
    assert body["price_per_update"] == 2 and body["custom_code"] is False
    assert "data-1" in out.output and "300" in out.output
    listed = runner.invoke(app, ["dataset", "list"])
    assert listed.exit_code == 0 and "part0" in listed.output


def test_train_start_waits_and_shows_rounds(seen: list[tuple[str, str, Any]], tmp_path: Path) -> None:
    spec = tmp_path / "train.yaml"
    spec.write_text("data_tags: [digits]\nrounds: 1\nschema: {features: [a, b], label: y}\n")
    out = runner.invoke(app, ["train", "start", str(spec), "--wait", "5"])
    assert out.exit_code == 0, out.output
    assert seen[0][2]["rounds"] == 1 and seen[1][1] == "/training/runs/run-1"
    assert "run run-1: completed" in out.output and "0.9100" in out.output


def test_train_start_unmatched_names_the_reasons(seen: list[tuple[str, str, Any]], tmp_path: Path) -> None:
    spec = tmp_path / "train.json"
    spec.write_text(json.dumps({"data_tags": ["x-ray"]}))
    out = runner.invoke(app, ["train", "start", str(spec)])
    assert out.exit_code == 1 and "data_tags_missing x3" in out.output


def test_train_status_shows_the_pending_summary(seen: list[tuple[str, str, Any]]) -> None:
    out = runner.invoke(app, ["train", "status"])
    assert out.exit_code == 0 and "pending: 0 contracts" in out.output and "run-1-c0" in out.output
