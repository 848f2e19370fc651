"""Command paths: syntax and coverage by whole segments."""

from __future__ import annotations

import pytest

from agora.ucan import covers, is_valid_command


@pytest.mark.parametrize(
    ("delegated", "invoked", "expected"),
    [
        ("/", "/", True),
        ("/", "/anything/at/all", True),
        ("/a", "/a", True),
        ("/a", "/a/b", True),
        ("/a", "/a/b/c", True),
        ("/a/b", "/a/b", True),
        ("/a", "/ab", False),
        ("/a/b", "/a", False),
        ("/a/b", "/a/bc", False),
        ("/agora/job", "/agora/jobs-admin", False),
        ("/a", "/", False),
        ("/a/b", "/a/c", False),
    ],
)
def test_coverage(delegated: str, invoked: str, expected: bool) -> None:
    assert covers(delegated, invoked) is expected


@pytest.mark.parametrize("cmd", ["/", "/a", "/agora/job/bid", "/msg/send", "/a-b/c_d/1.0"])
def test_valid_commands(cmd: str) -> None:
    assert is_valid_command(cmd)


@pytest.mark.parametrize("cmd", ["", "a", "a/b", "/a/", "//", "/a//b", "/A", "/a/B", "/a b", "/a\n", 5, None])
def test_invalid_commands(cmd: object) -> None:
    assert not is_valid_command(cmd)
