"""Helpers shared by the test suite.

`require(condition, reason)`: skip a test when a system component is missing, except under
`AGORA_REQUIRE_ALL=1` (set by .ci/run), where a missing component fails the run instead of hiding it.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared" / "fixtures"


def require(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("AGORA_REQUIRE_ALL") == "1":
        pytest.fail(f"required component missing (AGORA_REQUIRE_ALL=1): {reason}")
    pytest.skip(reason)


def require_binary(name: str, package_hint: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"{name} not found on PATH (install {package_hint})")
    assert path is not None
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
