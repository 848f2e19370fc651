"""Behaviors: a command path mapped to a handler, declared on an actor class with `@behavior`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agora.actor.runtime import Runtime
    from agora.ucan import Delegation, Invocation


@dataclass(frozen=True)
class CallContext:
    """What a handler knows about the call: who invoked, with which token, and the runtime to call back."""

    invocation: Invocation
    delegations: tuple[Delegation, ...]
    runtime: Runtime

    @property
    def args(self) -> dict[str, Any]:
        return self.invocation.args

    @property
    def invoker(self) -> str:
        return self.invocation.iss

    @property
    def command(self) -> str:
        return self.invocation.cmd


Handler = Callable[[CallContext], Awaitable[Any]]


@dataclass(frozen=True)
class Behavior:
    command: str
    handler: Handler
    public: bool = False  # public: any signed caller may invoke it about itself (sub == iss, no proofs)
    summary: str = ""
    # mutating: running it twice could change state twice, so its invocation's CID is journaled durably
    # before it runs (replays refused across restarts); read-only or idempotent behaviors say False
    mutating: bool = True


_MARK = "__agora_behavior__"


def behavior(command: str, *, public: bool = False, mutating: bool = True, summary: str = "") -> Callable[[Any], Any]:
    """Mark an actor method as the handler of `command`. Public behaviors (ping, info) still need a
    valid signature, audience and freshness; they only waive the delegation from the node.

    `mutating=False` declares the behavior read-only or idempotent: a replay of it (after a restart,
    when the in-memory replay cache is empty) changes nothing, so its invocations are not journaled.
    The default is the safe one: every behavior is treated as state-changing unless it says otherwise."""

    if not command.startswith("/agora/") or command.endswith("/") or command != command.lower():
        raise ValueError(f"behavior command must be a lowercase path under /agora/: {command!r}")

    def mark(fn: Any) -> Any:
        setattr(fn, _MARK, (command, public, summary or (fn.__doc__ or "").strip().split("\n")[0], mutating))
        return fn

    return mark


class Actor:
    """An actor owns its state and is reached only through messages to its behaviors."""

    name = "actor"

    def behaviors(self) -> list[Behavior]:
        found = []
        for attr in dir(type(self)):
            fn = getattr(type(self), attr, None)
            mark = getattr(fn, _MARK, None)
            if mark is not None:
                command, public, summary, mutating = mark
                found.append(Behavior(command, getattr(self, attr), public, summary, mutating))
        return found


__all__ = ["Actor", "Behavior", "CallContext", "Handler", "behavior"]
