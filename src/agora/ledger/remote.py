"""`RemoteSettlement`: the `Settlement` interface over signed RPC to the hub that runs the ledger.

What a node uses on a real network: each call is a UCAN invocation signed by this node's key to a hub's
ledger service (`agora.ledger.service`), so the `actor` of every entry is this node's DID, proven by its
signature; a call naming another actor is refused here (`ledger_unauthorized`) before anything is sent.

Failover: `hubs` lists the ledger hubs in order of preference (one per hub of a cluster; they share the
replicated journal). A call the first hub does not answer (no responder, timeout, the hub lost its
stream) goes to the next, a few rounds with a short backoff. A write is safe to send again: it carries
its idempotency key, so a write that did land the first time returns that first entry.

The hub is believed for nothing it cannot prove: every entry it returns is decoded and its id recomputed
(`ledger_corrupt` otherwise), a write's entry must carry the key and actor it was sent with, and `verify`
fetches the whole journal and walks the chain here, not on the hub's word.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from agora.actor import Runtime
from agora.errors import AgoraError
from agora.ledger.core import verify_chain
from agora.ledger.interfaces import Entry, EscrowState, VerifyReport
from agora.ledger.proof import check_claim
from agora.wire import ledger as wl

HubSource = Sequence[str] | Callable[[], Sequence[str]]
# a hub that does not answer, answers that it cannot reach its journal, or that this node calls it too often
# (its public-call rate limit): try the next one, and after a round of all of them, back off and try again
FAILOVER_CODES = frozenset(
    {"peer_unreachable", "timeout", "hub_unreachable", "unavailable", "ledger_conflict", "rate_limited"}
)
_DISCOVERY_POLL_S = 0.05  # while no ledger hub is known yet (discovery in progress)
MAX_PAGES = 1 << 20  # entries pages: a bound far beyond any journal this protocol serves


class RemoteSettlement:
    """`Settlement` for the node whose `runtime` signs the calls, served by the ledger hubs `hubs`."""

    def __init__(
        self,
        runtime: Runtime,
        hubs: HubSource,
        *,
        timeout: float = 10.0,
        rounds: int = 3,
        backoff: float = 0.25,
    ) -> None:
        self._runtime = runtime
        self._hubs = hubs
        self._timeout = timeout
        self._rounds = max(1, rounds)
        self._backoff = backoff

    @property
    def did(self) -> str:
        return self._runtime.did

    def hubs(self) -> list[str]:
        """The ledger hubs now, in order (a callable source is asked again each time)."""
        return list(self._hubs() if callable(self._hubs) else self._hubs)

    # -- the call -------------------------------------------------------------------------------------

    async def _known_hubs(self) -> list[str]:
        """The ledger hubs; a node that just joined may not have heard its hub's announcement yet, so wait for
        one (bounded by the call timeout) before saying that no hub runs the ledger."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while not (hubs := self.hubs()):
            if loop.time() >= deadline:
                raise AgoraError(
                    "ledger_unavailable",
                    f"this node knows no hub that runs the ledger (waited {self._timeout:g} s for one to announce it)",
                    hint="Dial a hub that serves the ledger (it announces it), or name it: --ledger-hubs DID.",
                )
            await asyncio.sleep(_DISCOVERY_POLL_S)
        return hubs

    async def _call(self, command: str, args: dict[str, Any]) -> Any:
        last: AgoraError | None = None
        refused: AgoraError | None = None
        for attempt in range(self._rounds):
            hubs = await self._known_hubs()
            for hub in hubs:
                try:
                    return await self._runtime.call(hub, command, args, timeout=self._timeout)
                except AgoraError as exc:
                    if exc.code == "ledger_unauthorized" and last is not None:
                        # reached only because a hub before it failed: that one may be the hub that knows this
                        # node as an operator (a hub node asks itself first). Try it again before believing this.
                        refused = exc
                        continue
                    if exc.code not in FAILOVER_CODES:
                        raise
                    last = exc
            if attempt + 1 < self._rounds:
                await asyncio.sleep(self._backoff * (2**attempt))
        if refused is not None:
            raise refused
        assert last is not None
        raise AgoraError(
            "ledger_unavailable",
            f"no ledger hub answered {command} ({last.code}: {last.message})",
            details={"last_code": last.code},
        )

    def _as_self(self, actor: str) -> None:
        if actor != self.did:
            raise AgoraError(
                "ledger_unauthorized",
                f"this node signs as {self.did}; it cannot act as {str(actor)[:80]}",
                hint="The hub acts for the DID that signed the call: ask that node to do it.",
            )

    async def _write(self, message: Any, *, actor: str, idem: str) -> Entry:
        self._as_self(actor)
        raw = wl.read_entry_reply(await self._call(message.COMMAND, wl.to_args(message)))
        entry = checked_entry(raw)
        if entry.idem != idem or entry.actor != actor:
            raise AgoraError(
                "receipt_invalid",
                f"the hub answered {message.COMMAND} with entry {entry.seq}, made for key {entry.idem[:40]!r} "
                f"by {entry.actor[:80]}",
            )
        return entry

    # -- reads ----------------------------------------------------------------------------------------

    async def info(self) -> wl.InfoReply:
        return wl.InfoReply.from_wire(await self._call(wl.INFO, {"v": wl.LEDGER_RPC_VERSION}))

    async def balance(self, account: str) -> int:
        reply = await self._call(wl.BALANCE, wl.to_args(wl.BalanceArgs(account)))
        return wl.BalanceReply.from_wire(reply).balance

    async def stakes(self, dids: Sequence[str]) -> dict[str, int]:
        """Every candidate's stake in one call (a round of matching asks once, not once per candidate)."""
        names = tuple(dict.fromkeys(dids))
        reply = wl.StakesReply.from_wire(await self._call(wl.STAKES, wl.to_args(wl.StakesArgs(names))))
        if set(reply.stakes) != set(names):
            raise AgoraError("receipt_invalid", "the hub answered stakes for other DIDs than asked")
        return dict(reply.stakes)

    async def escrow(self, contract: str) -> EscrowState | None:
        fields = wl.read_escrow_reply(await self._call(wl.ESCROW, wl.to_args(wl.EscrowArgs(contract))))
        return None if fields is None else EscrowState(**fields)

    async def entries_page(self, account: str | None, since: int, limit: int) -> tuple[list[Entry], int]:
        """One page of entries after `since` (each id checked) and the journal's head seq."""
        args = wl.to_args(wl.EntriesArgs(account, since, min(max(1, limit), wl.MAX_ENTRIES_PAGE)))
        page = wl.EntriesReply.from_wire(await self._call(wl.ENTRIES, args))
        entries = [checked_entry(raw) for raw in page.entries]
        seqs = [e.seq for e in entries]
        if any(s <= since for s in seqs) or seqs != sorted(set(seqs)):
            raise AgoraError("receipt_invalid", "the hub sent entries out of order or before the cursor")
        return entries, page.head

    async def entries(self, account: str | None = None, since: int = 0, limit: int = 1000) -> list[Entry]:
        out: list[Entry] = []
        cursor = since
        for _ in range(MAX_PAGES):
            if len(out) >= limit:
                break
            page, _head = await self.entries_page(account, cursor, limit - len(out))
            out.extend(page)
            if not page:
                break
            cursor = page[-1].seq
        return out[:limit]

    async def hub_verify(self) -> VerifyReport:
        """The hub's own walk of its stored journal (its word; `verify` checks for itself)."""
        r = wl.VerifyReply.from_wire(await self._call(wl.VERIFY, {"v": wl.LEDGER_RPC_VERSION}))
        return VerifyReport(r.ok, r.entries, r.last_id, r.problems, dict(r.balances))

    async def verify(self) -> VerifyReport:
        """Fetch the whole journal and walk it here: every id, every link, every rule, sum 0. An entry the hub
        left out (the chain's seqs must run 1, 2, 3, ... up to the head it named) is a problem too."""
        chain: list[Entry] = []
        head = 0
        for _ in range(MAX_PAGES):
            page, head = await self.entries_page(None, chain[-1].seq if chain else 0, wl.MAX_ENTRIES_PAGE)
            chain.extend(page)
            if not page or chain[-1].seq >= head:
                break
        report = verify_chain(chain)
        last = chain[-1].seq if chain else 0
        if last < head:
            missing = (last + 1, f"the hub named head {head} but sent entries only up to {last}")
            return VerifyReport(False, report.entries, report.last_id, (*report.problems, missing), report.balances)
        return report

    # -- writes ---------------------------------------------------------------------------------------

    async def mint(self, to_did: str, amount: int, *, actor: str, idem: str, memo: str = "") -> Entry:
        return await self._write(wl.MintArgs(to_did, amount, idem, memo), actor=actor, idem=idem)

    async def transfer(self, src: str, dst: str, amount: int, *, actor: str, idem: str, memo: str = "") -> Entry:
        return await self._write(wl.TransferArgs(src, dst, amount, idem, memo), actor=actor, idem=idem)

    async def lock(self, contract: str, payer: str, payee: str, amount: int, *, actor: str, idem: str) -> Entry:
        return await self._write(wl.LockArgs(contract, payer, payee, amount, idem), actor=actor, idem=idem)

    async def deliver(self, contract: str, usage_receipt: bytes, *, actor: str, idem: str) -> Entry:
        return await self._write(wl.DeliverArgs(contract, bytes(usage_receipt), idem), actor=actor, idem=idem)

    async def release(self, contract: str, metering_receipt: bytes, *, actor: str, idem: str) -> Entry:
        if not isinstance(metering_receipt, bytes | bytearray):
            raise AgoraError("receipt_invalid", "metering receipt: expected the signed bytes")
        msg = wl.ReleaseArgs(contract, bytes(metering_receipt), idem)
        return await self._write(msg, actor=actor, idem=idem)

    async def refund(self, contract: str, *, actor: str, idem: str, reason: str = "") -> Entry:
        return await self._write(wl.RefundArgs(contract, idem, reason), actor=actor, idem=idem)

    async def dispute(self, contract: str, *, actor: str, idem: str, reason: str) -> Entry:
        return await self._write(wl.DisputeArgs(contract, idem, reason), actor=actor, idem=idem)

    async def resolve(self, contract: str, payee_amount: int, *, actor: str, idem: str, decision: str) -> Entry:
        return await self._write(wl.ResolveArgs(contract, payee_amount, idem, decision), actor=actor, idem=idem)

    async def stake(self, did: str, amount: int, *, actor: str, idem: str) -> Entry:
        return await self._write(wl.StakeArgs(did, amount, idem), actor=actor, idem=idem)

    async def unstake(self, did: str, amount: int, *, actor: str, idem: str) -> Entry:
        return await self._write(wl.UnstakeArgs(did, amount, idem), actor=actor, idem=idem)

    async def slash(
        self, did: str, amount: int, *, evidence: Sequence[str], to: str, actor: str, idem: str, memo: str = ""
    ) -> Entry:
        msg = wl.SlashArgs(did, amount, tuple(evidence), to, idem, memo)
        return await self._write(msg, actor=actor, idem=idem)

    async def slash_proven(self, accused: bytes, agreeing: Sequence[bytes], amount: int, *, actor: str) -> Entry:
        """The claim is checked here first (a claim that proves nothing is not sent); the hub checks it again."""
        proof = check_claim(accused, agreeing, claimant=actor, operator=True)
        msg = wl.SlashClaimArgs(bytes(accused), tuple(bytes(r) for r in agreeing), amount)
        return await self._write(msg, actor=actor, idem=proof.idem)


def checked_entry(raw: bytes) -> Entry:
    """An entry as the hub sent it, its id recomputed from its content (`ledger_corrupt` when it differs)."""
    entry = Entry.decode(raw)
    if entry.compute_id() != entry.id:
        raise AgoraError(
            "ledger_corrupt",
            f"the hub sent entry {entry.seq} whose id does not match its content",
            details={"seq": entry.seq},
        )
    return entry


__all__ = ["FAILOVER_CODES", "HubSource", "RemoteSettlement", "checked_entry"]
