"""Commands: `/`-separated lowercase paths; a delegated command covers itself and every path below it.

Coverage is by whole segments: "/a" covers "/a" and "/a/b" but not "/ab", otherwise a grant of
`/agora/job` would leak into a future `/agora/jobs-admin`.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1024)
def command_problem(cmd: str) -> str | None:
    """Why `cmd` is not a valid command, or None when it is (cached: a node sees few distinct commands)."""
    if not cmd.startswith("/"):
        return f"a command starts with '/': {cmd[:80]!r}"
    if cmd == "/":
        return None
    if cmd.endswith("/"):
        return f"a command has no trailing '/': {cmd[:80]!r}"
    if "//" in cmd:
        return f"a command has no empty segments: {cmd[:80]!r}"
    if cmd != cmd.lower():
        return f"a command is lowercase: {cmd[:80]!r}"
    if any(c.isspace() or ord(c) < 0x20 for c in cmd):
        return f"a command has no whitespace or control characters: {cmd[:80]!r}"
    return None


def is_valid_command(cmd: object) -> bool:
    return isinstance(cmd, str) and command_problem(cmd) is None


def covers(delegated: str, invoked: str) -> bool:
    """True when authority for `delegated` includes `invoked`."""
    if delegated == "/" or delegated == invoked:
        return True
    return invoked.startswith(delegated) and invoked[len(delegated)] == "/"


__all__ = ["command_problem", "covers", "is_valid_command"]
