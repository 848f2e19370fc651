"""Grants: the delegations this node issues to others, and the ones others issued to it.

A provider lets a requester run tasks by signing a UCAN delegation `iss = sub = provider node,
aud = requester, cmd = /agora/alloc` (optionally with a policy on the args, e.g. wasm only). Granting is
a local act of the operator (the local API's POST /grants, `agora node grant DID`), never a remote
command: no message from the network can make a node hand out authority over itself.

The signed token then has to reach the requester. The provider offers it through the public behavior
`/agora/node/delegation/offer`; anyone may call it (it only accepts tokens addressed to this node, with
a valid signature, about their own issuer, with an `exp` at most MAX_TTL_S ahead), because a token gives
authority only to its audience and is worthless to whoever carries it. Offered tokens are kept in their own
bounded LRU (`max_offered`), so a flood of junk offers evicts junk but never blocks a token imported by hand
(`agora grant add TOKEN`, POST /delegations), which gets the same checks but may have no `exp`.

When this node calls a protected command on another node, `proofs_for(target, command)` picks the
held delegation that covers it (the longest-lived one), so callers never handle tokens themselves.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections import OrderedDict
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
START_COMMAND = "/agora/alloc/start"
DEFAULT_TTL_S = 30 * 24 * 3600
MAX_TTL_S = 366 * 24 * 3600
MIN_TTL_S = 60
DEFAULT_MAX_HELD = 1024
DEFAULT_MAX_OFFERED = 256
MAX_OFFERED_PER_ISSUER = 2  # a provider needs one live grant to us (two: while it rotates to a new one)
OFFER_SKEW_S = 300
"""Slack on the offered exp bound for a provider clock that runs a little ahead."""


def _is_network_source(source: str) -> bool:
    """Offers from the network are recorded with the caller's DID; local imports with "api", "cli"..."""
    return source.startswith("did:")


def _offer_lifetime_ok(d: Delegation, now: float) -> bool:
    return d.exp is not None and d.exp <= now + MAX_TTL_S + OFFER_SKEW_S


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


def starts_only(command: str, policy: Sequence[Any]) -> list[Any]:
    """A grant's policy constrains what is started, not the calls that follow on an allocation.

    A UCAN policy holds for every command the delegation covers, and `/agora/alloc` covers status, logs,
    cancel, fetch and upload too, whose args carry no `.task`: `[["==", ".task.engine", "wasm"]]` would let
    the task start and then refuse every status call (the result lost to `ucan_policy_violation`). So a
    policy on a grant that covers `/agora/alloc/start` and more is issued as "no task in the args, or the
    policy holds": a start (which needs a task) is always checked, the follow-ups are authorized by the
    allocation's ownership (the manager answers only the requester that started it)."""
    rules = list(policy)
    if not rules or command == START_COMMAND or not covers(command, START_COMMAND):
        return rules
    return [["or", [["==", ".task?", None], ["and", rules]]]]


class DelegationBook:
    """Issued and held delegations, persisted in the store; held ones are also kept decoded in memory.

    Held delegations live in two books. Imported ones (the local API or CLI: the operator chose them) are
    bounded by `max_held` and refused beyond it. Offered ones (the public offer behavior: anyone can send
    them) are a separate, evicting LRU of `max_offered`, must carry an `exp` at most MAX_TTL_S ahead, and
    are pruned once expired, so junk from throw-away keys can neither pile up forever nor block an import.
    """

    def __init__(
        self,
        keypair: Keypair,
        store: Store,
        *,
        clock: Clock = SYSTEM_CLOCK,
        max_held: int = DEFAULT_MAX_HELD,
        max_offered: int = DEFAULT_MAX_OFFERED,
    ) -> None:
        self.keypair = keypair
        self.did = keypair.did
        self.store = store
        self.clock = clock
        self.max_held = max_held
        self.max_offered = max_offered
        self._held: dict[str, Delegation] = {}
        self._offered: OrderedDict[str, Delegation] = OrderedDict()
        # Offers this node's own jobs have cited (`proofs_for`): evicted only once every unused offer is gone, so
        # a flood of offers from fresh keys cannot push out a grant in use (kept in memory: a restart forgets)
        self._used: set[str] = set()

    async def load(self) -> int:
        """Read the held delegations back at start; expired, undecodable or over-bound ones are dropped."""
        rows = await self.store.query(HELD, limit=(self.max_held + self.max_offered) * 2)
        now = self.clock.now()
        offered_rows: list[tuple[float, Delegation]] = []
        for row in rows:
            try:
                d = Delegation.decode(base64.b64decode(row["token"]))
            except (AgoraError, KeyError, ValueError, binascii.Error):
                log.warning("dropping an unreadable held delegation %s", row.get("cid"))
                await self.store.delete(HELD, str(row.get("cid")))
                continue
            offered = bool(row.get("offered", _is_network_source(str(row.get("source", "")))))
            if (d.exp is not None and d.exp < now) or (offered and not _offer_lifetime_ok(d, now)):
                await self.store.delete(HELD, str(d.cid))
                continue
            if offered:
                offered_rows.append((float(row.get("received_at") or 0), d))
            elif len(self._held) < self.max_held:
                self._held[str(d.cid)] = d
        offered_rows.sort(key=lambda item: item[0])
        for _, d in offered_rows:
            self._offered[str(d.cid)] = d
        while len(self._offered) > self.max_offered:
            key, _ = self._offered.popitem(last=False)
            await self.store.delete(HELD, key)
        return len(self._held) + len(self._offered)

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
        pol = starts_only(command, policy)
        d = delegate(self.keypair, aud=aud, sub=self.did, cmd=command, pol=pol, exp=now + ttl_s, nbf=now)
        doc = describe(d, issued_at=now)
        await self.store.put(ISSUED, str(d.cid), doc)
        await self.store.append_event("grant.issued", str(d.cid), {"aud": aud, "cmd": command, "exp": d.exp})
        return d

    async def issued(self, limit: int = 100) -> list[dict[str, Any]]:
        return await self.store.query(ISSUED, order_by="issued_at", desc=True, limit=limit)

    # -- holding (requester side) -------------------------------------------------------------
    async def accept(self, raw: bytes, *, source: str, offered: bool | None = None) -> tuple[Delegation, bool]:
        """Check and keep a delegation addressed to this node; returns it and whether it was new.

        `offered` says whether it came unsolicited from the network (default: when `source` is a DID, which
        is what the offer behavior passes; "api"/"cli" are the operator's imports).
        """
        if offered is None:
            offered = _is_network_source(source)
        try:
            d = Delegation.decode(raw)  # ucan_malformed / ucan_policy_invalid
        except AgoraError as err:
            if err.code != "cbor_malformed":
                raise
            # a cut or mistyped token is the usual cause, not a broken or hostile sender (cbor_malformed's hint)
            raise AgoraError(
                "ucan_malformed",
                f"the token is not a delegation ({err.message})",
                hint="A token is the whole base64 line that `agora node grant` prints after `token:`; copy all of it.",
            ) from None
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
        if offered and not _offer_lifetime_ok(d, now):
            raise AgoraError(
                "ucan_lifetime_invalid",
                f"an offered delegation needs an exp at most {MAX_TTL_S} s ahead, got {d.exp}",
                hint="Grants from `agora node grant` always have one; import others with `agora grant add`.",
            )
        key = str(d.cid)
        if key in self._held:
            return self._held[key], False
        if key in self._offered:
            if not offered:  # the operator imports what was only offered: it becomes a kept grant
                return await self._keep_imported(d, now, source), False
            self._offered.move_to_end(key)
            return self._offered[key], False
        if offered:
            await self._make_room_for_offer(d.iss)
            doc = describe(d, received_at=now, source=source, offered=True)
            await self.store.put(HELD, key, doc)
            self._offered[key] = d
        else:
            await self._keep_imported(d, now, source)
        await self.store.append_event(
            "delegation.received", key, {"iss": d.iss, "cmd": d.cmd, "source": source, "offered": offered}
        )
        return d, True

    async def _keep_imported(self, d: Delegation, now: float, source: str) -> Delegation:
        key = str(d.cid)
        if len(self._held) >= self.max_held:
            await self.prune()
        if len(self._held) >= self.max_held:
            raise AgoraError("delegation_limit", f"this node already holds {len(self._held)} delegations")
        await self.store.put(HELD, key, describe(d, received_at=now, source=source, offered=False))
        self._offered.pop(key, None)
        self._held[key] = d
        return d

    async def _make_room_for_offer(self, issuer: str) -> None:
        """Room for one more offer from `issuer`: its own oldest beyond MAX_OFFERED_PER_ISSUER goes first (one key
        cannot flush the book); then, when the book is full, expired offers, then the least recently used offer
        no job of this node has cited, and only then the least recently used at all."""
        own = [k for k, d in self._offered.items() if d.iss == issuer]
        for key in own[: max(0, len(own) - MAX_OFFERED_PER_ISSUER + 1)]:
            await self._evict(key)
        if len(self._offered) >= self.max_offered:
            await self.prune()
        while len(self._offered) >= self.max_offered and self._offered:
            key = next((k for k in self._offered if k not in self._used), next(iter(self._offered)))
            await self._evict(key)

    async def _evict(self, key: str) -> None:
        self._offered.pop(key, None)
        self._used.discard(key)
        await self.store.delete(HELD, key)
        log.info("evicted the offered delegation %s", key)

    async def prune(self) -> int:
        now = self.clock.now()
        gone = 0
        for book in (self._held, self._offered):
            for key in [k for k, d in book.items() if d.exp is not None and d.exp < now]:
                book.pop(key, None)
                self._used.discard(key)
                await self.store.delete(HELD, key)
                gone += 1
        return gone

    def proofs_for(self, target: str, command: str) -> list[Delegation]:
        """The chain (root first) to invoke `command` on `target`, or [] when this node holds none."""
        now = self.clock.now()
        best: Delegation | None = None
        for d in [*self._held.values(), *self._offered.values()]:
            if d.iss != target or d.sub != target or not covers(d.cmd, command):
                continue
            if d.exp is not None and d.exp < now:
                continue
            if d.nbf is not None and d.nbf > now + 60:
                continue
            if best is None or (best.exp is not None and (d.exp is None or d.exp > best.exp)):
                best = d
        if best is None:
            return []
        if str(best.cid) in self._offered:
            self._offered.move_to_end(str(best.cid))  # in use: the last to be evicted
            self._used.add(str(best.cid))
        return [best]

    def held(self) -> list[dict[str, Any]]:
        rows = [(d, False) for d in self._held.values()] + [(d, True) for d in self._offered.values()]
        return [describe(d, offered=o) for d, o in sorted(rows, key=lambda r: (r[0].iss, r[0].exp or 0))]


class GrantsActor(Actor):
    """Receives delegations other nodes offer to this one."""

    name = "grants"

    def __init__(self, book: DelegationBook) -> None:
        self.book = book

    # Not journaled: an offer is idempotent (a replay is answered `stored: false`), and strangers may call it
    @behavior(OFFER_COMMAND, public=True, mutating=False)
    async def offer(self, ctx: CallContext) -> dict[str, Any]:
        """Keep a delegation addressed to this node (checked: signature, audience, issuer, expiry)."""
        token = ctx.args.get("token")
        if not isinstance(token, bytes):
            raise AgoraError("invalid_argument", "args.token must be the delegation's bytes")
        d, new = await self.book.accept(token, source=ctx.invoker, offered=True)
        return {"cid": str(d.cid), "stored": new}


__all__ = [
    "DEFAULT_COMMAND",
    "DEFAULT_MAX_OFFERED",
    "DEFAULT_TTL_S",
    "HELD",
    "ISSUED",
    "OFFER_COMMAND",
    "START_COMMAND",
    "DelegationBook",
    "GrantsActor",
    "describe",
    "parse_token",
    "starts_only",
    "token_text",
]
