from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from agora.errors import AgoraError
from agora.telemetry import REDACTED, configure_logging, is_sensitive_key, log_event, redact


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Configure logging into a buffer and put the root logger back as it was afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buffer = io.StringIO()
    configure_logging("DEBUG", stream=buffer)
    try:
        yield buffer
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_one_json_object_per_line_with_core_keys(stream: io.StringIO) -> None:
    log = logging.getLogger("agora.test")
    log.info("first %s", "line", extra={"fields": {"peer": "did:key:z6Mk", "n": 3}})
    log_event(log, "second", level=logging.WARNING, job={"id": "j1", "tasks": [1, 2]}, ok=True)
    first, second = lines(stream)
    assert first["msg"] == "first line" and first["level"] == "info" and first["logger"] == "agora.test"
    assert (first["peer"], first["n"]) == ("did:key:z6Mk", 3)
    assert datetime.fromisoformat(first["ts"].replace("Z", "+00:00")).tzinfo is not None
    assert first["ts"].endswith("Z")
    assert second["level"] == "warning" and second["job"] == {"id": "j1", "tasks": [1, 2]} and second["ok"] is True
    assert list(first)[:4] == ["ts", "level", "logger", "msg"]


def test_secrets_are_redacted_at_any_depth(stream: io.StringIO) -> None:
    log_event(
        "agora.test",
        "keys",
        seed="00ff" * 8,
        nkey_seed="SUAB...",
        passphrase="correct horse",
        config={"hub": {"api_token": "t0k3n", "url": "nats://127.0.0.1:4222"}, "list": [{"Authorization": "Bearer x"}]},
        privateKey="pk",
        secret_key="sk",
        prompt="tell me my secrets",
        prompt_hash="bafy...",
        prompt_tokens=12,
        tokens_in=5,
        public_key="z6Mk",
        raw=b"\x01\x02\x03",
    )
    (line,) = lines(stream)
    for key in ("seed", "nkey_seed", "passphrase", "privateKey", "secret_key", "prompt"):
        assert line[key] == REDACTED, key
    assert line["config"]["hub"] == {"api_token": REDACTED, "url": "nats://127.0.0.1:4222"}
    assert line["config"]["list"] == [{"Authorization": REDACTED}]
    assert (line["prompt_hash"], line["prompt_tokens"], line["tokens_in"]) == ("bafy...", 12, 5)
    assert line["public_key"] == "z6Mk"
    assert line["raw"] == "<3 bytes>"
    text = stream.getvalue()
    for secret in ("00ff00ff", "SUAB", "correct horse", "t0k3n", "Bearer x", "tell me my secrets"):
        assert secret not in text


@pytest.mark.parametrize(
    ("key", "sensitive"),
    [
        ("seed", True),
        ("nkeySeed", True),
        ("AGORA_PASSPHRASE", True),
        ("x-api-key", True),
        ("apiKey", True),
        ("bearer_token", True),
        ("client_secret", True),
        ("password", True),
        ("prompt", True),
        ("prompt_sha256", False),
        ("token_count", False),
        ("max_tokens", False),
        ("did", False),
        ("public_key", False),
        ("kind", False),
    ],
)
def test_sensitive_key_names(key: str, sensitive: bool) -> None:
    assert is_sensitive_key(key) is sensitive


def test_redact_makes_anything_json_safe() -> None:
    out = redact({"nan": float("nan"), "set": {1}, "tuple": (1, "a"), "obj": ValueError("boom"), 3: "int key"})
    assert out == {"nan": "nan", "set": [1], "tuple": [1, "a"], "obj": "boom", "3": "int key"}
    deep: dict[str, Any] = {}
    cursor = deep
    for _ in range(20):
        cursor["d"] = {}
        cursor = cursor["d"]
    json.dumps(redact(deep), allow_nan=False)


def test_core_keys_are_never_overwritten(stream: io.StringIO) -> None:
    log_event("agora.test", "real message", msg="field", logger="field", ts=1)
    (line,) = lines(stream)
    assert line["msg"] == "real message" and line["logger"] == "agora.test"
    assert (line["msg_"], line["logger_"], line["ts_"]) == ("field", "field", 1)


def test_exceptions_are_one_line_of_json(stream: io.StringIO) -> None:
    try:
        raise RuntimeError("kaput")
    except RuntimeError:
        logging.getLogger("agora.test").exception("it failed", extra={"fields": {"job": "j1"}})
    assert len(stream.getvalue().splitlines()) == 1
    (line,) = lines(stream)
    assert line["exc_type"] == "RuntimeError" and "kaput" in line["exc"] and line["job"] == "j1"


def test_level_filters_and_reconfigure_does_not_duplicate(stream: io.StringIO) -> None:
    configure_logging("WARNING", stream=stream)
    configure_logging(logging.WARNING, stream=stream)
    log = logging.getLogger("agora.test")
    log.info("hidden")
    log_event(log, "hidden too")
    log.warning("shown")
    assert [line["msg"] for line in lines(stream)] == ["shown"]


@pytest.mark.parametrize("level", ["LOUD", "", True])
def test_bad_level(level: Any) -> None:
    with pytest.raises(AgoraError) as err:
        configure_logging(level, stream=io.StringIO())
    assert err.value.code == "config_invalid"


def test_text_mode_is_for_people_and_still_redacts(stream: io.StringIO) -> None:
    configure_logging("INFO", json=False, stream=stream)
    log_event("agora.test", "hello ✓", peer="did:key:z", seed="s3cr3t")
    text = stream.getvalue()
    assert "INFO agora.test: hello ✓" in text and 'peer="did:key:z"' in text
    assert "s3cr3t" not in text and REDACTED in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
