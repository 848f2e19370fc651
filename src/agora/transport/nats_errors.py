"""nats-py's exceptions as agora's errors: one mapping for every user of the hub's JetStream (the market
and data-ad buckets, the ledger journal stream, the object store).

Two questions decide. Did the hub refuse (its permissions, or this connection's credentials)? Did the hub
not answer (a timeout, no responders, the connection gone, the server's own failure)? A caller names its
codes for both (the object store has storage codes of its own), and what anything else becomes:
by default it too reads as "the hub did not answer" (a reader of an index cannot tell more); with
`unexpected` (the object store: `internal`) an error nats-py was not expected to raise is not dressed up
as an outage. Errors a caller knows more about (a missing object, a conflicting append) it checks first.
"""

from __future__ import annotations

import nats.errors
import nats.js.errors

from agora.errors import AgoraError

_REFUSED_TEXT = ("permissions violation", "authorization", "authentication")
"""What the server's -ERR says when it refuses (nats-py passes some refusals on as a plain Error)."""

_SILENT = (
    nats.errors.TimeoutError,
    nats.errors.NoServersError,
    nats.errors.ConnectionClosedError,
    nats.errors.NoRespondersError,
    nats.errors.StaleConnectionError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.ServerError,
    OSError,
    TimeoutError,  # asyncio.timeout's (an OSError too, named for the reader)
)


def hub_refused(e: BaseException) -> bool:
    """The hub refused the call or the connection (a permission or an authorization failure)."""
    if isinstance(e, nats.errors.AuthorizationError):
        return True
    text = str(e).lower()
    return any(t in text for t in _REFUSED_TEXT)


def map_nats_error(
    e: BaseException,
    what: str,
    *,
    refused: str = "hub_permission_denied",
    unreachable: str = "hub_unreachable",
    unexpected: str | None = None,
) -> AgoraError:
    """`e` (raised while doing `what` on the hub) as an AgoraError: `refused` when the hub refused it,
    `unreachable` when it did not answer, and anything else `unexpected` (None: `unreachable` too).
    An AgoraError passes through unchanged."""
    if isinstance(e, AgoraError):
        return e
    if hub_refused(e):
        return AgoraError(refused, f"{what}: the hub refused it ({e})")
    if unexpected is None or isinstance(e, _SILENT):
        return AgoraError(unreachable, f"{what}: the hub did not answer ({type(e).__name__}: {e})")
    return AgoraError(unexpected, f"{what}: unexpected NATS error {type(e).__name__}: {e}")


__all__ = ["hub_refused", "map_nats_error"]
