"""Inline inputs: small content written straight into the job spec, as text or base64.

Inline content travels inside signed messages, so it is capped (default 256 KiB decoded): anything
bigger belongs in a store and the spec should carry its reference. Base64 is decoded strictly (no
silently skipped characters), so a typo in a spec is an error, not different bytes.
"""

from __future__ import annotations

import base64
import binascii
from typing import Literal

from agora.errors import AgoraError

InlineEncoding = Literal["text", "base64"]

DEFAULT_MAX_INLINE_BYTES = 256 * 1024


def decode_inline(content: str, encoding: InlineEncoding = "text", max_bytes: int = DEFAULT_MAX_INLINE_BYTES) -> bytes:
    """The bytes an inline input stands for (text is UTF-8), or invalid_argument / input_too_large."""
    if not isinstance(content, str):
        raise AgoraError("invalid_argument", f"inline content must be a string, got {type(content).__name__}")
    if encoding == "text":
        data = content.encode("utf-8")
    elif encoding == "base64":
        # a base64 string is 4/3 of its bytes: refuse a huge one before decoding it
        if len(content) > (max_bytes * 4) // 3 + 4:
            raise _too_big(max_bytes)
        try:
            data = base64.b64decode(content.strip(), validate=True)
        except (binascii.Error, ValueError) as e:
            raise AgoraError("invalid_argument", f"inline content is not valid base64: {e}") from None
    else:
        raise AgoraError("invalid_argument", f"inline encoding must be 'text' or 'base64', got {encoding!r}")
    if len(data) > max_bytes:
        raise _too_big(max_bytes)
    return data


def encode_inline(data: bytes) -> tuple[str, InlineEncoding]:
    """The shortest faithful inline form of `data`: text when it is UTF-8, otherwise base64."""
    try:
        return data.decode("utf-8"), "text"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def _too_big(limit: int) -> AgoraError:
    return AgoraError(
        "input_too_large",
        f"inline content is larger than {limit} bytes",
        hint="Put the data in storage (S3, HTTP, the hub) and reference it from the spec.",
        details={"limit_bytes": limit},
    )


__all__ = ["DEFAULT_MAX_INLINE_BYTES", "InlineEncoding", "decode_inline", "encode_inline"]
