"""The runtime of one node: dispatches incoming invocations to behaviors and makes outgoing calls.

Dispatch order for every message, so that no handler ever runs for a message that should be refused:
1. size limit; 2. decode the request (strict DAG-CBOR, UCAN shapes); 3. find the behavior
(`unknown_command` otherwise); 4. authority shape: a protected behavior needs a chain rooted at this node
(sub == node), a public one takes no proofs; 5. validate the invocation and its delegation chain
(signatures over the received bytes, time bounds with skew, `iat` not in the future, audience = this node,
policies); 6. admission (`limits.py`): a public behavior's per-issuer rate limit and short lifetime, then the
replay cache, in the share of its class (granted / public) and within its issuer's quota; 7. a mutating
behavior's CID is committed to the replay journal (`journal.py`), so it is refused after a restart or a
crash too; 8. run it. Steps 3-4 come first so that nothing that could never run here costs a signature
check, a policy evaluation or a replay-cache entry. Whatever happens, the answer is a signed receipt
naming what it answers; nothing raises out of `handle`, and every reject is counted by code.

Outgoing calls build an invocation (exp = now + 5 min by default, now + 1 min without proofs, which is
how public behaviors are called), send it with the delegations it cites, and verify that the receipt is
signed by the callee and names this invocation's CID.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from agora.actor.behaviors import Actor, Behavior, CallContext
from agora.actor.journal import ReplayJournal
from agora.actor.limits import GRANTED, PUBLIC, AdmissionSettings, LimitLog, RateLimiter
from agora.clock import SYSTEM_CLOCK, Clock
from agora.codec import CID
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.telemetry import tracing
from agora.transport import Transport
from agora.ucan import Delegation, Invocation, ReplayCache, invoke, validate_invocation
from agora.wire import DEFAULT_MAX_MESSAGE, Receipt, Request, check_size, raw_cid

log = logging.getLogger("agora.actor")

DEFAULT_INVOCATION_TTL = 300.0
DEFAULT_PUBLIC_INVOCATION_TTL = 60.0  # calls without proofs (public behaviors): well inside their 120 s limit
DEFAULT_SKEW = 60.0


class MetricsSink(Protocol):
    def count_in(self, kind: str) -> None: ...
    def count_out(self, kind: str) -> None: ...
    def count_reject(self, code: str) -> None: ...
    def observe_rpc(self, command: str, seconds: float) -> None: ...


class Runtime:
    def __init__(
        self,
        keypair: Keypair,
        transport: Transport,
        *,
        clock: Clock = SYSTEM_CLOCK,
        metrics: MetricsSink | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE,
        invocation_ttl: float = DEFAULT_INVOCATION_TTL,
        public_invocation_ttl: float = DEFAULT_PUBLIC_INVOCATION_TTL,
        skew: float = DEFAULT_SKEW,
        limits: AdmissionSettings | None = None,
        journal: ReplayJournal | None = None,
    ) -> None:
        self.keypair = keypair
        self.did = keypair.did
        self.transport = transport
        self.clock = clock
        self.metrics = metrics
        self.max_message_bytes = max_message_bytes
        self.invocation_ttl = invocation_ttl
        self.public_invocation_ttl = min(public_invocation_ttl, invocation_ttl)
        self.skew = skew
        self.limits = limits or AdmissionSettings()
        # the cache holds each accepted invocation until it expires, in the share of its class
        self.replay = ReplayCache(
            max_entries=self.limits.total_entries,
            max_lifetime=self.limits.max_lifetime,
            skew=skew,
            shares=self.limits.shares(),
        )
        self.public_rate = RateLimiter(self.limits.public_rate, self.limits.public_burst, self.limits.rate_issuers)
        self.limit_log = LimitLog(self.limits.report_window)
        # mutating invocations are journaled durably before they run, so a restart forgets none of them
        self.journal = journal
        # without a journal the cache is all there is, and it starts empty: an invocation of a mutating behavior
        # issued before this runtime started could have been run by the previous one, so it is refused
        self.booted_at = clock.now()
        self._behaviors: dict[str, Behavior] = {}

    # -- registration -------------------------------------------------------------------------
    def register(self, actor: Actor) -> None:
        for b in actor.behaviors():
            if b.command in self._behaviors:
                raise ValueError(f"behavior {b.command} is registered twice")
            self._behaviors[b.command] = b

    def unregister(self, actor: Actor) -> None:
        for b in actor.behaviors():
            self._behaviors.pop(b.command, None)

    @property
    def commands(self) -> list[dict[str, Any]]:
        return [
            {"command": b.command, "public": b.public, "mutating": b.mutating, "summary": b.summary}
            for b in sorted(self._behaviors.values(), key=lambda b: b.command)
        ]

    async def start(self) -> None:
        if self.journal is not None:
            await self.journal.prune(self.clock.now())
        await self.transport.serve(self.handle)

    # -- dispatch -----------------------------------------------------------------------------
    async def handle(self, data: bytes) -> bytes:
        """Answer one request with receipt bytes. Never raises."""
        ran: CID | None = None
        try:
            check_size(data, self.max_message_bytes)
            request = Request.decode(data, max_bytes=self.max_message_bytes)
            inv = request.invocation
            ran = inv.cid
            self._count_in("request")
            # Cheap refusals first, so that no chain is verified, no policy evaluated and no replay-cache entry
            # spent on a message that could never run here.
            beh = self._behaviors.get(inv.cmd)
            if beh is None:
                raise AgoraError("unknown_command", f"{inv.cmd} is not a behavior of {self.did}")
            if beh.public and (inv.prf or request.delegations):
                raise AgoraError("ucan_invalid_claim", f"{inv.cmd} is public: invoke it about yourself, without proofs")
            if not beh.public and inv.sub != self.did:
                raise AgoraError(
                    "ucan_unauthorized",
                    f"{inv.cmd} needs a delegation from this node ({self.did}); the invocation's subject is {inv.sub}",
                    hint="Ask the node's operator for one: `agora node grant DID --command ...`.",
                )
            if self.journal is None and beh.mutating and (inv.iat is None or inv.iat < self.booted_at - self.skew):
                raise AgoraError(
                    "ucan_replayed",
                    "the invocation has no iat or was issued before this node started (it may have been seen)",
                )
            now = self.clock.now()
            proofs = request.proofs()
            validate_invocation(inv, proofs, now=now, audience=self.did, skew=self.skew)
            await self._admit(inv, beh, now, _principal(inv, proofs))
            ctx = CallContext(inv, request.delegations, self)
            try:
                with tracing.span(inv.cmd, parent=(inv.meta or {}).get(tracing.META_KEY), kind="server", node=self.did):
                    result = await beh.handler(ctx)
            except AgoraError:
                raise
            except Exception as exc:
                log.exception("behavior %s failed", inv.cmd)
                raise AgoraError("handler_failed", f"{inv.cmd} failed: {type(exc).__name__}: {exc}") from None
            try:
                return self._receipt(ran, ok=result)
            except AgoraError as exc:  # the result cannot travel as DAG-CBOR: a bug in the behavior
                log.error("behavior %s returned an unsendable result: %s", inv.cmd, exc.message)
                raise AgoraError("handler_failed", f"{inv.cmd} returned a result that cannot be sent") from None
        except AgoraError as err:
            self._count_reject(err.code)
            return self._receipt(ran if ran is not None else raw_cid(bytes(data)), error=err)
        except Exception as exc:  # a bug in agora itself: still answer, still count
            log.exception("dispatch failed")
            bug = AgoraError("internal", f"{type(exc).__name__}: {exc}")
            self._count_reject(bug.code)
            return self._receipt(ran if ran is not None else raw_cid(bytes(data)), error=bug)

    async def _admit(self, inv: Invocation, beh: Behavior, now: float, principal: str) -> None:
        """Spend what accepting `inv` costs, within the limits of its class; raise if a limit refuses it.

        Runs after the whole chain validated, so only genuine issuers spend (their own) budgets. A granted
        invocation spends the quota of `principal`, the one this node delegated to (the audience of the
        chain's root), not of its signer: a grantee re-delegating to fresh keys of its own still has one quota."""
        if beh.public and inv.iss != self.did:  # the node calling itself is no stranger
            if not self.public_rate.allow(inv.iss, now):
                self.limit_log.hit("public_rate", f"{inv.iss} over {self.limits.public_rate:g}/s", now)
                raise AgoraError(
                    "rate_limited",
                    f"{inv.iss} called public behaviors more than {self.limits.public_rate:g} times a second",
                    details={"issuer": inv.iss, "retry_after_s": round(self.public_rate.retry_after(inv.iss, now), 3)},
                )
            # an issuer holding invocations proven by this node's delegation is known: its share, its quota
            share = GRANTED if self.replay.issuer_entries(GRANTED, inv.iss) else PUBLIC
            longest: float | None = self.limits.public_max_lifetime
        else:
            share, longest = GRANTED, (self.limits.public_max_lifetime if beh.public else None)
        try:
            self.replay.check_and_remember(
                inv.cid, inv.exp, now, self.skew, share=share, issuer=principal, max_lifetime=longest
            )
        except AgoraError as err:
            if err.code == "ucan_replay_cache_full":
                self.limit_log.hit("replay_share_full", err.message, now)
            elif err.code == "rate_limited":
                self.limit_log.hit("issuer_quota", err.message, now)
            raise
        if beh.mutating and self.journal is not None:
            try:
                await self.journal.remember(inv.cid, float(inv.exp or now) + self.skew, now)
            except AgoraError as err:
                if err.code != "ucan_replayed":  # not recorded, so not run: a resend of the same bytes is fine
                    self.replay.forget(inv.cid)
                raise
            except BaseException:
                self.replay.forget(inv.cid)
                raise

    def health(self) -> dict[str, Any]:
        """What the node's /health shows of admission: reasons to be degraded, and every limit hit."""
        now = self.clock.now()
        return {
            "degraded": self.limit_log.degraded(now),
            "limits": self.limit_log.report(now),
            "replay": {
                "entries": len(self.replay),
                GRANTED: self.replay.share_size(GRANTED),
                PUBLIC: self.replay.share_size(PUBLIC),
            },
        }

    def _receipt(self, ran: CID, *, ok: Any = None, error: AgoraError | None = None) -> bytes:
        self._count_out("receipt")
        return Receipt.issue(self.keypair, ran, ok=ok, error=error, iat=int(self.clock.now())).raw

    # -- outgoing -----------------------------------------------------------------------------
    def build_request(
        self,
        target: str,
        command: str,
        args: dict[str, Any] | None = None,
        *,
        proofs: Sequence[Delegation] = (),
        sub: str | None = None,
    ) -> Request:
        """An invocation of `command` on `target`. Without proofs the caller invokes about itself
        (sub = caller), which public behaviors accept; with proofs the subject is the chain's root."""
        now = self.clock.now()
        if sub is None:
            sub = proofs[0].sub if proofs and proofs[0].sub is not None else (target if proofs else self.did)
        ttl = self.invocation_ttl if proofs else self.public_invocation_ttl
        trace = tracing.carrier()  # opt-in: the caller's trace goes with the invocation
        inv = invoke(
            self.keypair,
            sub=sub,
            aud=target,
            cmd=command,
            args=args or {},
            prf=[d.cid for d in proofs],
            exp=int(now + ttl),
            iat=int(now),
            meta={tracing.META_KEY: trace} if trace else None,
        )
        return Request(inv, tuple(proofs))

    async def call_receipt(
        self,
        target: str,
        command: str,
        args: dict[str, Any] | None = None,
        *,
        proofs: Sequence[Delegation] = (),
        sub: str | None = None,
        timeout: float = 5.0,
    ) -> Receipt:
        with tracing.span(command, kind="client", target=target):
            request = self.build_request(target, command, args, proofs=proofs, sub=sub)
            return await self.send_request(target, request, timeout=timeout)

    async def send_request(self, target: str, request: Request, *, timeout: float = 5.0) -> Receipt:
        data = request.encode()
        started = time.perf_counter()
        self._count_out("request")
        if target == self.did:
            reply = await self.handle(data)  # a local call goes through the same checks
        else:
            reply = await self.transport.request(target, data, timeout)
        receipt = Receipt.decode(reply, expected_issuer=target, max_bytes=self.max_message_bytes)
        if receipt.ran != request.invocation.cid:
            raise AgoraError("receipt_invalid", "the receipt answers another invocation")
        self._count_in("receipt")
        if self.metrics is not None:
            self.metrics.observe_rpc(request.invocation.cmd, time.perf_counter() - started)
        return receipt

    async def call(
        self,
        target: str,
        command: str,
        args: dict[str, Any] | None = None,
        *,
        proofs: Sequence[Delegation] = (),
        sub: str | None = None,
        timeout: float = 5.0,
    ) -> Any:
        """Invoke `command` on `target` and return its result; a remote error is raised as AgoraError."""
        receipt = await self.call_receipt(target, command, args, proofs=proofs, sub=sub, timeout=timeout)
        return receipt.result()

    async def tell(self, target: str, command: str, args: dict[str, Any] | None = None) -> None:
        """Fire-and-forget: the invocation is delivered if the target listens; no receipt comes back."""
        request = self.build_request(target, command, args)
        self._count_out("tell")
        await self.transport.send(target, request.encode())

    # -- metrics ------------------------------------------------------------------------------
    def _count_in(self, kind: str) -> None:
        if self.metrics is not None:
            self.metrics.count_in(kind)

    def _count_out(self, kind: str) -> None:
        if self.metrics is not None:
            self.metrics.count_out(kind)

    def _count_reject(self, code: str) -> None:
        if self.metrics is not None:
            self.metrics.count_reject(code)


def _principal(inv: Invocation, proofs: Mapping[CID, Delegation]) -> str:
    """Who answers for `inv` here: the audience of its chain's root (whom this node delegated to), or
    its issuer when it cites no proofs (a public call, or the node calling itself)."""
    root = proofs.get(inv.prf[0]) if inv.prf else None
    return root.aud if root is not None else inv.iss


__all__ = ["DEFAULT_INVOCATION_TTL", "DEFAULT_PUBLIC_INVOCATION_TTL", "MetricsSink", "Runtime"]
