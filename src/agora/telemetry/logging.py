"""Structured logs: one JSON object per line, with secrets redacted before anything is written.

Why JSON lines: operators feed node logs to Loki/ELK/jq; a line per event with stable keys
(`ts`, `level`, `logger`, `msg`, then the event's own fields) needs no parsing rules. Fields travel
as `extra={"fields": {...}}` (or through `log_event`), so they never clash with `LogRecord` attributes.

Why redact by key name: the values that must never reach a log (key seeds, passphrases, tokens,
inference prompts; SPEC 10 says prompts are never logged, only their hashes) are passed around under
recognizable names. A key whose words include a sensitive one is replaced by "[redacted]" unless it
also names something derived and safe (`prompt_hash`, `prompt_tokens`, `token_count`). Raw bytes are
never written either: they show as `<N bytes>`, since key material is usually bytes.
"""

from __future__ import annotations

import json as _json
import logging
import math
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import IO, Any, Final

from agora.errors import AgoraError

REDACTED: Final = "[redacted]"
SENSITIVE_WORDS: Final = frozenset(
    {
        "seed",
        "secret",
        "secrets",
        "passphrase",
        "password",
        "passwd",
        "token",
        "prompt",
        "prompts",
        "credential",
        "credentials",
        "privkey",
        "private",
        "apikey",
        "authorization",
        "cookie",
        "mnemonic",
    }
)
SENSITIVE_JOINED: Final = ("apikey", "privatekey", "secretkey", "accesskey", "authtoken", "sessionkey")
SAFE_WORDS: Final = frozenset({"hash", "hashes", "digest", "sha256", "cid", "count", "len", "length", "size", "tokens"})
CORE_KEYS: Final = ("ts", "level", "logger", "msg")
_MAX_DEPTH: Final = 8
_WORD_SPLIT: Final = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
_HANDLER_MARK: Final = "_agora_telemetry_handler"


@lru_cache(maxsize=4096)
def is_sensitive_key(key: str) -> bool:
    """Whether a field named `key` may hold a secret (cached: the same names come by again and again)."""
    words = {w.lower() for w in _WORD_SPLIT.split(key) if w}
    if words & SAFE_WORDS:
        return False
    if words & SENSITIVE_WORDS:
        return True
    joined = "".join(ch for ch in key.lower() if ch.isalnum())
    return any(part in joined for part in SENSITIVE_JOINED)


def redact(value: Any, _depth: int = 0) -> Any:
    """A JSON-safe copy of `value` with sensitive keys masked, bytes summarized, odd values stringified."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if _depth >= _MAX_DEPTH:
        return "<...>"
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = str(key)
            out[name] = REDACTED if is_sensitive_key(name) else redact(item, _depth + 1)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(item, _depth + 1) for item in value]
    return str(value)


def _iso(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    if not isinstance(fields, Mapping):
        return {}
    redacted = redact(fields)
    assert isinstance(redacted, dict)
    return redacted


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", ...fields, "exc"?}`; a field named like a core key gets a `_`."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record_fields(record).items():
            while key in out:
                key = f"{key}_"
            out[key] = value
        if record.exc_info:
            out.setdefault("exc_type", record.exc_info[0].__name__ if record.exc_info[0] else None)
            out.setdefault("exc", self.formatException(record.exc_info))
        if record.stack_info:
            out.setdefault("stack", self.formatStack(record.stack_info))
        return _json.dumps(out, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class TextFormatter(logging.Formatter):
    """For a person at a terminal: `ts LEVEL logger: msg key=value ...`, redacted the same way."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_iso(record.created), record.levelname, f"{record.name}:", record.getMessage()]
        parts += [f"{k}={_json.dumps(v, ensure_ascii=False)}" for k, v in record_fields(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _level(level: int | str) -> int:
    if isinstance(level, bool):
        raise AgoraError("config_invalid", "the log level must be a name such as INFO or a number")
    if isinstance(level, int):
        return level
    number = logging.getLevelNamesMapping().get(str(level).upper())
    if number is None:
        raise AgoraError(
            "config_invalid", f"unknown log level {level!r}", hint="Use DEBUG, INFO, WARNING, ERROR or CRITICAL."
        )
    return number


def configure_logging(
    level: int | str = "INFO", *, json: bool = True, stream: IO[str] | None = None
) -> logging.Handler:
    """Send every log record of the process (agora's and libraries') to `stream` (stderr) as JSON lines.

    Calling it again replaces the handler it installed before, so tests and re-configuration never
    duplicate lines; handlers installed by others (pytest's capture, for one) are left alone.
    """
    number = _level(level)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(number)
    return handler


def log_event(logger: logging.Logger | str, msg: str, /, level: int = logging.INFO, **fields: Any) -> None:
    """`log_event(log, "peer joined", peer=did, addr=addr)`: a message with structured fields."""
    target = logging.getLogger(logger) if isinstance(logger, str) else logger
    if target.isEnabledFor(level):
        target.log(level, msg, extra={"fields": fields})


__all__ = [
    "REDACTED",
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "is_sensitive_key",
    "log_event",
    "redact",
]
