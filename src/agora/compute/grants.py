"""Grants: the delegations this node issues to others, and the ones others issued to it.

A provider lets a requester run tasks by signing a UCAN delegation `iss = sub = provider node,
aud = requester, cmd = /agora/alloc` (optionally with a policy on the args, e.g. wasm only). Granting is
a local act of the operator (the local API's POST /grants, `agora node grant DID`), never a remote
command: no message from the network can make a node hand out authority over itself.

The signed token then has to reach the requester. The provider offers it through the public behavior
`/agora/node/delegation/offer`; anyone may call it (it only accepts tokens addressed to this node, with
a valid signature, about their own issuer, unexpired, and at most `max_held` of them), because a token
gives authority only to its audience and is worthless to whoever carries it. The same checks apply to a
token imported by hand (`agora grant add TOKEN`, POST /delegations).

When this node calls a protected command on another node, `proofs_for(target, command)` picks the
held delegation that covers it (the longest-lived one), so callers never handle tokens themselves.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Sequence
from typing import Any

from agora.actor import Actor, CallContext, behavior
from agora.clock import SYSTEM_CLOCK, Clock
from agora.errors import AgoraError
from agora.identity import Keypair, public_from_did
from agora.store import Store
from agora.ucan import Delegation, covers, delegate, is_valid_command

log = logging.getLogger("agora.compute.grants")

ISSUED = "grants"
HELD = "delegations"
OFFER_COMMAND = "/agora/node/delegation/offer"
DEFAULT_COMMAND = "/agora/alloc"
DEFAULT_TTL_S = 30 * 24 * 3600
MAX_TTL_S = 366 * 24 * 3600
MIN_TTL_S = 60
DEFAULT_MAX_HELD = 1024


def token_text(d: Delegation) -> str:
    """The token as one line of text to hand over out of band (standard base64 of the DAG-CBOR bytes)."""
    return base64.b64encode(d.raw).decode("ascii")


def parse_token(text: str | bytes) -> bytes:
    """Bytes of a token given as base64 (standard or URL-safe, padding optional) or as raw bytes."""
    if isinstance(text, bytes):
        return text
    if not isinstance(text, str) or not text.strip():
        raise AgoraError("ucan_malformed", "a token is a non-empty base64 string")
    s = "".join(text.split())
    s += "=" * (-len(s) % 4)
    try:
        if "-" in s or "_" in s:
            return base64.urlsafe_b64decode(s)
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise AgoraError("ucan_malformed", "the token is not base64") from None


def describe(d: Delegation, **extra: Any) -> dict[str, Any]:
    return {
        "cid": str(d.cid),
        "iss": d.iss,
        "aud": d.aud,
        "sub": d.sub,
        "cmd": d.cmd,
        "pol": d.pol,
        "exp": d.exp,
        "nbf": d.nbf,
        "token": token_text(d),
        **extra,
    }


class DelegationBook:
    """Issued and held delegations, persisted in the store; held ones are also kept decoded in memory."""

    def __init__(
        self, keypair: Keypair, store: Store, *, clock: Clock = SYSTEM_CLOCK, max_held: int = DEFAULT_MAX_HELD
    ) -> None:
        self.keypair = keypair
        self.did = keypair.did
        self.store = store
        self.clock = clock
        self.max_held = max_held
        self._held: dict[str, Delegation] = {}

    async def load(self) -> int:
        """Read the held delegations back at start; expired or undecodable ones are dropped."""
        rows = await self.store.query(HELD, limit=self.max_held * 2)
        now = self.clock.now()
        for row in rows:
            try:
                d = Delegation.decode(base64.b64decode(row["token"]))
            except (AgoraError, KeyError, ValueError, binascii.Error):
                log.warning("dropping an unreadable held delegation %s", row.get("cid"))
                await self.store.delete(HELD, str(row.get("cid")))
                continue
            if d.exp is not None and d.exp < now:
                await self.store.delete(HELD, str(d.cid))
                continue
            self._held[str(d.cid)] = d
        return len(self._held)

    # -- issuing (provider side) --------------------------------------------------------------
    async def issue(
        self,
        aud: str,
        *,
        command: str = DEFAULT_COMMAND,
        ttl_s: int = DEFAULT_TTL_S,
        policy: Sequence[Any] = (),
    ) -> Delegation:
        """Sign a delegation from this node about itself to `aud` and record it."""
        if not isinstance(aud, str):
            raise AgoraError("did_invalid", "the grantee must be a DID")
        public_from_did(aud)  # raises did_invalid / did_unsupported with the reason
        if aud == self.did:
            raise AgoraError("invalid_argument", "a node needs no grant to run tasks on itself")
        if not is_valid_command(command) or not (command == "/agora" or command.startswith("/agora/")):
            raise AgoraError("invalid_argument", f"command must be a path under /agora, got {command!r}")
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or not MIN_TTL_S <= ttl_s <= MAX_TTL_S:
            raise AgoraError("invalid_argument", f"ttl_s must be an integer from {MIN_TTL_S} to {MAX_TTL_S}")
        now = int(self.clock.now())
        d = delegate(self.keypair, aud=aud, sub=self.did, cmd=command, pol=list(policy), exp=now + ttl_s, nbf=now)
        doc = describe(d, issued_at=now)
        await self.store.put(ISSUED, str(d.cid), doc)
        await self.store.append_event("grant.issued", str(d.cid), {"aud": aud, "cmd": command, "exp": d.exp})
        return d

    async def issued(self, limit: int = 100) -> list[dict[str, Any]]:
        return await self.store.query(ISSUED, order_by="issued_at", desc=True, limit=limit)

    # -- holding (requester side) -------------------------------------------------------------
    async def accept(self, raw: bytes, *, source: str) -> tuple[Delegation, bool]:
        """Check and keep a delegation addressed to this node; returns it and whether it was new."""
        d = Delegation.decode(raw)  # ucan_malformed / ucan_policy_invalid
        if d.aud != self.did:
            raise AgoraError("ucan_audience_mismatch", f"the delegation is addressed to {d.aud}, not this node")
        if not d.verify():
            raise AgoraError("ucan_signature_invalid", f"the delegation's signature does not verify for {d.iss}")
        if d.sub is None or d.sub != d.iss:
            raise AgoraError(
                "ucan_invalid_claim",
                "only delegations issued by the node they are about are kept (iss == sub)",
                hint="Ask the node itself for a grant: `agora node grant DID` on its machine.",
            )
        now = self.clock.now()
        if d.exp is not None and d.exp < now:
            raise AgoraError("ucan_expired", f"the delegation expired at {d.exp}")
        key = str(d.cid)
        if key in self._held:
            return self._held[key], False
        if len(self._held) >= self.max_held:
            await self.prune()
        if len(self._held) >= self.max_held:
            raise AgoraError("delegation_limit", f"this node already holds {len(self._held)} delegations")
        doc = describe(d, received_at=now, source=source)
        await self.store.put(HELD, key, doc)
        await self.store.append_event("delegation.received", key, {"iss": d.iss, "cmd": d.cmd, "source": source})
        self._held[key] = d
        return d, True

    async def prune(self) -> int:
        now = self.clock.now()
        gone = [k for k, d in self._held.items() if d.exp is not None and d.exp < now]
        for key in gone:
            self._held.pop(key, None)
            await self.store.delete(HELD, key)
        return len(gone)

    def proofs_for(self, target: str, command: str) -> list[Delegation]:
        """The chain (root first) to invoke `command` on `target`, or [] when this node holds none."""
        now = self.clock.now()
        best: Delegation | None = None
        for d in self._held.values():
            if d.iss != target or d.sub != target or not covers(d.cmd, command):
                continue
            if d.exp is not None and d.exp < now:
                continue
            if d.nbf is not None and d.nbf > now + 60:
                continue
            if best is None or (best.exp is not None and (d.exp is None or d.exp > best.exp)):
                best = d
        return [best] if best is not None else []

    def held(self) -> list[dict[str, Any]]:
        return [describe(d) for d in sorted(self._held.values(), key=lambda d: (d.iss, d.exp or 0))]


class GrantsActor(Actor):
    """Receives delegations other nodes offer to this one."""

    name = "grants"

    def __init__(self, book: DelegationBook) -> None:
        self.book = book

    @behavior(OFFER_COMMAND, public=True)
    async def offer(self, ctx: CallContext) -> dict[str, Any]:
        """Keep a delegation addressed to this node (checked: signature, audience, issuer, expiry)."""
        token = ctx.args.get("token")
        if not isinstance(token, bytes):
            raise AgoraError("invalid_argument", "args.token must be the delegation's bytes")
        d, new = await self.book.accept(token, source=ctx.invoker)
        return {"cid": str(d.cid), "stored": new}


__all__ = [
    "DEFAULT_COMMAND",
    "DEFAULT_TTL_S",
    "HELD",
    "ISSUED",
    "OFFER_COMMAND",
    "DelegationBook",
    "GrantsActor",
    "describe",
    "parse_token",
    "token_text",
]
