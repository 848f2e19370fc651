"""Chain validation: is this invocation authorized, right now, by the proofs it cites?

Checks, in this order (the first failure raises AgoraError with the code in brackets):
 1. the invocation's signature [ucan_signature_invalid], its expiry [ucan_expired], and its `iat`,
    which may not be further ahead than the skew [ucan_not_yet_valid]: a token "issued" in the future
    says its issuer's clock is wrong, or that it was made to outlive a replay window keyed on iat;
 2. `audience` given: the invocation is addressed to it (its `aud`, else its `sub`) [ucan_audience_mismatch];
 3. every cited proof is supplied, under the CID cited [ucan_proof_missing];
    no proofs at all is only valid when the invoker is the subject [ucan_invalid_claim];
 4. every proof's signature [ucan_signature_invalid] and time bounds [ucan_expired, ucan_not_yet_valid];
 5. principal alignment, root first: each delegation's `aud` is the next one's `iss`, and the last
    `aud` is the invoker [ucan_audience_mismatch];
 6. every non-null delegation `sub` is the invocation's `sub` [ucan_subject_mismatch];
 7. the root delegation has a subject (no powerline root) and was issued by it [ucan_invalid_claim];
 8. every delegation's command covers the invoked command [ucan_command_not_delegated];
 9. every delegation's policy holds for the invocation's args [ucan_policy_violation];
10. `replay` given: the invocation's CID was not accepted before [ucan_replayed] (remembered only
    once everything else passed, so a rejected message cannot poison the cache).

Time: a token is valid while `nbf - skew <= now <= exp + skew`. The default skew of 60 s (what the
spec recommends) applies both ways: a token that expired 30 s ago still passes, one whose nbf is 30 s
ahead already passes. Pass skew=0 for exact bounds.

Speed: a delegation's signature is verified once and remembered by CID in a bounded LRU. The CID is a
hash of the exact signed bytes, so a verified CID stays verified; per message the only signature
check is the invocation's own.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Mapping

from agora.codec import CID
from agora.errors import AgoraError
from agora.ucan.command import covers
from agora.ucan.replay import ReplayCache
from agora.ucan.token import Delegation, Invocation

ProofSource = Mapping[CID, Delegation] | Callable[[CID], Delegation | None]

VERIFIED_CACHE_SIZE = 65_536
_verified: OrderedDict[bytes, bool] = OrderedDict()


def _is_verified(d: Delegation) -> bool:
    key = bytes(d.cid)
    if key in _verified:
        try:
            _verified.move_to_end(key)
        except KeyError:  # evicted by another thread between the test and the move
            pass
        return True
    if not d.verify():
        return False
    _verified[key] = True
    if len(_verified) > VERIFIED_CACHE_SIZE:
        try:
            _verified.popitem(last=False)
        except KeyError:
            pass
    return True


def clear_verified_cache() -> None:
    """Forget which delegations verified (tests; or after changing how signatures are checked)."""
    _verified.clear()


def _fail(code: str, message: str, inv: Invocation) -> AgoraError:
    return AgoraError(code, message, details={"invocation": str(inv.cid)})


def _lookup(proofs: ProofSource, cid: CID) -> Delegation | None:
    found = proofs(cid) if callable(proofs) and not isinstance(proofs, Mapping) else proofs.get(cid)
    if isinstance(found, Delegation) and found.cid == cid:
        return found
    return None


def validate_invocation(
    inv: Invocation,
    proofs: ProofSource,
    *,
    now: float,
    audience: str | None = None,
    replay: ReplayCache | None = None,
    skew: float = 60,
) -> None:
    """Raise AgoraError unless `inv` is authorized at `now` by the delegations it cites."""
    if not isinstance(inv, Invocation):
        raise AgoraError("invalid_argument", "validate_invocation takes an Invocation (decode the bytes first)")
    if skew < 0:
        raise AgoraError("invalid_argument", "skew must be >= 0")
    if not inv.verify():
        raise _fail("ucan_signature_invalid", f"the invocation's signature does not verify for {inv.iss}", inv)
    if inv.exp is not None and now > inv.exp + skew:
        raise _fail("ucan_expired", f"the invocation expired at {inv.exp}", inv)
    if inv.iat is not None and inv.iat > now + skew:
        raise _fail("ucan_not_yet_valid", f"the invocation claims to be issued at {inv.iat}, in the future", inv)
    if audience is not None and inv.audience != audience:
        raise _fail("ucan_audience_mismatch", f"the invocation is addressed to {inv.audience}, not {audience}", inv)

    chain: list[Delegation] = []
    for cid in inv.prf:
        d = _lookup(proofs, cid)
        if d is None:
            raise _fail("ucan_proof_missing", f"proof {cid} was not supplied", inv)
        chain.append(d)
    if not chain and inv.iss != inv.sub:
        raise _fail("ucan_invalid_claim", f"no proofs, and the invoker {inv.iss} is not the subject {inv.sub}", inv)

    for d in chain:
        if not _is_verified(d):
            raise _fail("ucan_signature_invalid", f"proof {d.cid}'s signature does not verify for {d.iss}", inv)
        if d.exp is not None and now > d.exp + skew:
            raise _fail("ucan_expired", f"proof {d.cid} expired at {d.exp}", inv)
        if d.nbf is not None and now < d.nbf - skew:
            raise _fail("ucan_not_yet_valid", f"proof {d.cid} is not valid before {d.nbf}", inv)

    if chain:
        for prev, nxt in itertools.pairwise(chain):
            if prev.aud != nxt.iss:
                raise _fail(
                    "ucan_audience_mismatch", f"proof {prev.cid} is addressed to {prev.aud}, not to {nxt.iss}", inv
                )
        if chain[-1].aud != inv.iss:
            raise _fail(
                "ucan_audience_mismatch",
                f"the last proof is addressed to {chain[-1].aud}, not the invoker {inv.iss}",
                inv,
            )
        for d in chain:
            if d.sub is not None and d.sub != inv.sub:
                raise _fail("ucan_subject_mismatch", f"proof {d.cid} is about {d.sub}, not {inv.sub}", inv)
        root = chain[0]
        if root.sub is None:
            raise _fail(
                "ucan_invalid_claim", "the root proof is a powerline (sub null); a chain must start at its subject", inv
            )
        if root.iss != inv.sub:
            raise _fail(
                "ucan_invalid_claim", f"the root proof was issued by {root.iss}, not the subject {inv.sub}", inv
            )
        for d in chain:
            if not covers(d.cmd, inv.cmd):
                raise _fail("ucan_command_not_delegated", f"proof {d.cid} delegates {d.cmd}, not {inv.cmd}", inv)
        for d in chain:
            if d.pol and not d.policy.matches(inv.args):
                raise _fail("ucan_policy_violation", f"the args break the policy of proof {d.cid}", inv)

    if replay is not None:
        replay.check_and_remember(inv.cid, inv.exp, now, skew)


__all__ = ["ProofSource", "clear_verified_cache", "validate_invocation"]
