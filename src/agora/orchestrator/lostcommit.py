"""A committed placement lost before its start: the provider died or restarted between its commit and our start.

A provider's reservation book lives in its memory (`agora.compute.bidder`): a provider killed after it
committed holds nothing once it is gone, and after a restart it holds nothing either, so its capacity is
free again and a start citing the old reservation is `reservation_not_found`. The requester therefore owns
the recovery: a start on a committed placement that fails because the provider is gone (no one serves its
inbox, no answer) or no longer knows the reservation (`reservation_not_found`; `bid_expired` when it came
too late) is not a failure of the task, which never ran: the unit is placed again with that provider
excluded (a job whose one candidate it is, `--node` without a grant, is placed on it again: once restarted,
it bids anew), and no retry attempt of the spec is spent. At most `MAX_LOST_COMMITS` times per unit; past that,
the error is handled like any other (retry policy, then `failed` with its code).

A `timeout` is counted as lost too: a provider that does not answer its start within the call timeout is
as good as gone for this unit. If it did start the task after all, that allocation runs there unobserved
until its own end (its capacity is accounted on that provider; the requester has no allocation id to
cancel it with), as with any retried start.
"""

from __future__ import annotations

from agora.errors import AgoraError

# a start on a committed placement that failed with one of these: the provider or its reservation is gone
COMMIT_LOST_CODES = frozenset(
    {"reservation_not_found", "bid_expired", "peer_unreachable", "timeout", "unavailable", "transport_closed"}
)
MAX_LOST_COMMITS = 8  # per unit: re-placements after a lost commit (each one excludes one more provider)


class CommitLost(AgoraError):
    """The start of a committed placement on `provider` failed because the commit is gone (same code and
    message as the error it wraps, so whoever does not care reads it as that error)."""

    def __init__(self, err: AgoraError, provider: str) -> None:
        super().__init__(err.code, err.message, hint=err.hint, retryable=err.retryable, details=err.details)
        self.provider = provider


def commit_lost(exc: BaseException, provider: str) -> CommitLost | None:
    """`exc`, raised by the start of a placement committed on `provider`, as a `CommitLost` when it says the
    commit is gone; None for anything else (a refused task, a bad spec, a cancel)."""
    if isinstance(exc, AgoraError) and not isinstance(exc, CommitLost) and exc.code in COMMIT_LOST_CODES:
        return CommitLost(exc, provider)
    return None


__all__ = ["COMMIT_LOST_CODES", "MAX_LOST_COMMITS", "CommitLost", "commit_lost"]
